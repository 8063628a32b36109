"""Polygon / Massive websocket messages <-> raw rows, both ways.

The capture decodes what the feed sends into rows of the raw tables; the replay
server encodes raw rows back into the same messages. One module owns the mapping so
the two can never drift apart.

Wire format (Massive docs, "WebSocket Quickstart" and the per-channel pages
``/docs/websocket/{stocks,options}/{trades,quotes,aggregates-per-minute}``): every
frame is a JSON array of event objects, ``ev`` names the event.

=========  =========================================================================
``ev``     fields used
=========  =========================================================================
status     ``status`` (connected, auth_success, auth_failed, success, error, ...), ``message``
T          ``sym``, ``x`` exchange id, ``i`` trade id (stocks), ``p`` price ($), ``s`` size
           (shares / contracts), ``c`` condition ids, ``t`` SIP time (Unix **ms**), ``q`` sequence
Q          ``sym``, ``bx``/``ax`` exchange ids, ``bp``/``ap`` prices ($), ``bs``/``as`` sizes
           (stocks: round lots before 2025-11-03, shares from then; options: contracts),
           ``t`` (Unix ms), ``q`` sequence
A, AM      ``sym``, ``o h l c`` ($), ``v`` volume, ``vw`` VWAP ($), ``s``/``e`` window start/end (ms)
=========  =========================================================================

Polygon's wire is coarser than the lake: millisecond times, integer exchange and
condition ids, round-lot stock quote sizes before 2025-11-03, no cancel flag. The
replay server serves lake partitions whose rows may be finer (nanosecond times,
letter exchange codes, odd lots), so an event may carry one extension object,
``"m17": {column: value}``, holding the exact value of every column the Polygon
fields do not reproduce. The decoder applies it last. A live Polygon feed never
sends it, and then the row holds what Polygon sent (``ts_ns`` = ``t`` x 1e6).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa

from m17_platform import schemas
from m17_platform.schemas import col
from m17_platform.settings import DEFAULT, PolygonSettings
from m17_platform.symbols import parse_occ_symbol

FEEDS = ("stocks", "options")
EXTENSION = "m17"
NS_PER_MS = 1_000_000

# event -> raw table, per feed
TABLE_OF_EVENT = {
    ("stocks", "T"): "stock_trades",
    ("stocks", "Q"): "stock_quotes",
    ("options", "T"): "option_trades",
    ("options", "Q"): "option_quotes",
}
EVENT_OF_TABLE = {table: (feed, ev) for (feed, ev), table in TABLE_OF_EVENT.items()}
AGGREGATE_EVENTS = ("A", "AM")

# aggregates are kept in the landing zone beside the batches (vendor bars to compare
# with the gold ``bars`` table); they are not a raw table
WS_AGGREGATES = schemas.TableSchema(
    name="ws_aggregates",
    layer="landing",
    schema=pa.schema(
        [
            col("start_ns", pa.int64(), "ns since epoch, UTC", "window start"),
            col("end_ns", pa.int64(), "ns since epoch, UTC", "window end"),
            col("event", pa.string(), "A|AM", "A per second, AM per minute"),
            col("symbol", pa.string(), "ticker", "stock ticker or OCC option symbol"),
            col("underlying", pa.string(), "ticker", "the partition's underlying"),
            col("open", pa.float64(), "dollars", "first trade price", nullable=True),
            col("high", pa.float64(), "dollars", "highest trade price", nullable=True),
            col("low", pa.float64(), "dollars", "lowest trade price", nullable=True),
            col("close", pa.float64(), "dollars", "last trade price", nullable=True),
            col("volume", pa.int64(), "shares|contracts", "volume in the window", nullable=True),
            col("vwap", pa.float64(), "dollars", "volume-weighted average price", nullable=True),
            col("source", pa.string(), "text", "where the bar came from"),
        ]
    ),
    sort_key=("symbol", "start_ns"),
    instrument="symbol",
    dedup_key=("symbol", "event", "start_ns"),
    description="vendor aggregate bars received by the capture (landing zone only)",
)
LANDING_TABLES = {t: schemas.table(t) for t in TABLE_OF_EVENT.values()} | {WS_AGGREGATES.name: WS_AGGREGATES}


class WireFormatError(ValueError):
    """A frame or event the decoder cannot accept.

    Attributes
    ----------
    kind : str
        A short class of problem for counting (``invalid_json``, ``unknown_event``,
        ``bad_field``, ``bad_symbol``, ``unmapped_root``, ...), one metric label each.
    detail : str
        What exactly is wrong, naming the event and field.
    """

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


@dataclass(frozen=True)
class Decoded:
    """One decoded data event.

    table : raw table name (or ``ws_aggregates``); trade_date : the event's trade date
    (America/New_York date of its time); row : the table's columns -> values.
    """

    table: str
    trade_date: dt.date
    row: dict[str, Any]


def parse_frame(text: str | bytes) -> list[Any]:
    """The events of one websocket frame (a JSON array; a lone object counts as one).

    Raises
    ------
    WireFormatError
        ``invalid_json`` (with the parser's position) or ``not_a_list``.
    """
    try:
        payload = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WireFormatError("invalid_json", f"frame is not JSON: {exc}") from None
    if isinstance(payload, dict):
        return [payload]
    if not isinstance(payload, list):
        raise WireFormatError("not_a_list", f"frame is a JSON {type(payload).__name__}, not an array of events")
    return payload


def channel(event: str, symbol: str) -> str:
    """Polygon's subscription name of ``event`` for ``symbol`` (``T.SPY``, ``Q.O:SPY251110C00685000``)."""
    return f"{event}.{symbol}"


class _TradeDates:
    """America/New_York trade date of ns timestamps, caching the current day's bounds."""

    def __init__(self, timezone: str) -> None:
        self._tz = ZoneInfo(timezone)
        self._lo = self._hi = 0
        self._day = dt.date(1970, 1, 1)

    def __call__(self, ts_ns: int) -> dt.date:
        if not (self._lo <= ts_ns < self._hi):
            local = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=self._tz)
            self._day = local.date()
            start = dt.datetime.combine(self._day, dt.time(), tzinfo=self._tz)
            end = dt.datetime.combine(self._day + dt.timedelta(days=1), dt.time(), tzinfo=self._tz)
            self._lo, self._hi = int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9
        return self._day


def _int(ev: Mapping, key: str, name: str, *, required: bool = True) -> int | None:
    value = ev.get(key)
    if value is None:
        if required:
            raise WireFormatError("bad_field", f"{name} event has no {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(value, float) and not value.is_integer()):
        raise WireFormatError("bad_field", f"{name} event field {key!r} is not an integer: {value!r}")
    return int(value)


def _num(ev: Mapping, key: str, name: str, *, required: bool = True) -> float | None:
    value = ev.get(key)
    if value is None:
        if required:
            raise WireFormatError("bad_field", f"{name} event has no {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise WireFormatError("bad_field", f"{name} event field {key!r} is not a finite number: {value!r}")
    return float(value)


def _code(ev: Mapping, key: str, name: str) -> str | None:
    value = ev.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise WireFormatError("bad_field", f"{name} event field {key!r} is not an id: {value!r}")
    return str(value)


def _codes(ev: Mapping, key: str, name: str) -> list[str] | None:
    value = ev.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int | str) for v in value):
        raise WireFormatError("bad_field", f"{name} event field {key!r} is not a list of ids: {value!r}")
    return [str(v) for v in value]


class Decoder:
    """Turns Polygon websocket events into raw rows for the configured underlyings.

    Parameters
    ----------
    underlyings : iterable of str
        The underlyings captured. A stock event must be for one of them; an option's
        root must be one of them or a root listed for it in ``polygon.option_roots``.
    polygon : PolygonSettings
        Option roots per underlying, and the date from which stock quote sizes are
        shares (before it ``bs``/``as`` are round lots of ``round_lot_shares``).
    timezone : str
        Time zone of the trade date (America/New_York).
    source : str
        Value of the ``source`` column.
    """

    def __init__(self, underlyings: Iterable[str], *, polygon: PolygonSettings = DEFAULT.polygon,
                 timezone: str = DEFAULT.sessions.timezone, source: str = DEFAULT.capture.source_name) -> None:
        self.underlyings = tuple(underlyings)
        self._roots = {u: u for u in self.underlyings}
        for u in self.underlyings:
            for root in polygon.option_roots.get(u, ()):
                self._roots[root] = u
        self._polygon = polygon
        self._dates = _TradeDates(timezone)
        self.source = source

    def underlying_of(self, feed: str, symbol: str) -> str:
        """The captured underlying a symbol belongs to.

        Raises
        ------
        WireFormatError
            ``bad_symbol`` (an option symbol that is not OCC) or ``unmapped_symbol``.
        """
        if feed == "options":
            try:
                root = parse_occ_symbol(symbol).root
            except ValueError as exc:
                raise WireFormatError("bad_symbol", str(exc)) from None
            if root not in self._roots:
                raise WireFormatError("unmapped_symbol", f"option root {root!r} of {symbol} is not a captured underlying {self.underlyings}")
            return self._roots[root]
        if symbol not in self._roots:
            raise WireFormatError("unmapped_symbol", f"stock {symbol!r} is not a captured underlying {self.underlyings}")
        return symbol

    def decode(self, feed: str, ev: Any) -> Decoded:
        """One data event (``T``, ``Q``, ``A``, ``AM``) as a raw row.

        Parameters
        ----------
        feed : ``stocks`` or ``options``
        ev : the JSON object of one event (not a ``status`` event).

        Returns
        -------
        Decoded

        Raises
        ------
        WireFormatError
            ``not_an_object``, ``unknown_event`` (with the ``ev`` value), ``bad_field``
            (naming the field), ``bad_symbol``, ``unmapped_symbol``, ``bad_extension``.
        """
        if not isinstance(ev, dict):
            raise WireFormatError("not_an_object", f"event is a JSON {type(ev).__name__}: {str(ev)[:80]}")
        name = ev.get("ev")
        sym = ev.get("sym")
        if name in AGGREGATE_EVENTS:
            return self._aggregate(feed, name, ev)
        table = TABLE_OF_EVENT.get((feed, name)) if isinstance(name, str) else None
        if table is None:
            raise WireFormatError("unknown_event", f"event {name!r} on the {feed} feed")
        if not isinstance(sym, str) or not sym:
            raise WireFormatError("bad_field", f"{name} event has no symbol 'sym'")
        underlying = self.underlying_of(feed, sym)
        t_ms = _int(ev, "t", name)
        row: dict[str, Any] = {"ts_ns": t_ms * NS_PER_MS, "sequence": _int(ev, "q", name)}
        if feed == "options":
            oid = parse_occ_symbol(sym)
            row |= {"option_symbol": sym, "underlying": underlying, "root": oid.root,
                    "expiration": oid.expiration, "strike": oid.strike, "right": oid.right}
        else:
            row |= {"symbol": sym, "underlying": underlying}
        if name == "T":
            row |= {
                "price": _num(ev, "p", name), "size": _int(ev, "s", name), "exchange": _code(ev, "x", name),
                "conditions": _codes(ev, "c", name), "trade_id": _code(ev, "i", name), "canceled": False,
            }
            if feed == "stocks":
                row["aggressor_side"] = None
        else:
            lots = 1
            if feed == "stocks" and self._dates(row["ts_ns"]) < self._polygon.stock_quote_sizes_in_shares_from:
                lots = self._polygon.round_lot_shares
            bs, as_ = _int(ev, "bs", name, required=False), _int(ev, "as", name, required=False)
            row |= {
                "bid": _num(ev, "bp", name, required=False), "bid_size": None if bs is None else bs * lots,
                "ask": _num(ev, "ap", name, required=False), "ask_size": None if as_ is None else as_ * lots,
                "bid_exchange": _code(ev, "bx", name), "ask_exchange": _code(ev, "ax", name),
            }
        row["source"] = self.source
        ext = ev.get(EXTENSION)
        if ext is not None:
            self._apply_extension(table, name, ext, row)
        return Decoded(table, self._dates(row["ts_ns"]), row)

    def _apply_extension(self, table: str, name: str, ext: Any, row: dict[str, Any]) -> None:
        spec = schemas.table(table)
        if not isinstance(ext, dict):
            raise WireFormatError("bad_extension", f"{name} event's {EXTENSION!r} is not an object")
        for column, value in ext.items():
            if column not in spec.columns or column in ("option_symbol", "symbol", "source"):
                raise WireFormatError("bad_extension", f"{name} event's {EXTENSION!r} names column {column!r}")
            if column == "expiration" and value is not None:
                value = dt.date.fromisoformat(value)
            row[column] = value

    def _aggregate(self, feed: str, name: str, ev: dict) -> Decoded:
        sym = ev.get("sym")
        if not isinstance(sym, str) or not sym:
            raise WireFormatError("bad_field", f"{name} event has no symbol 'sym'")
        underlying = self.underlying_of(feed, sym)
        start = _int(ev, "s", name) * NS_PER_MS
        volume = _int(ev, "v", name, required=False)
        row = {
            "start_ns": start, "end_ns": _int(ev, "e", name) * NS_PER_MS, "event": name, "symbol": sym,
            "underlying": underlying, "open": _num(ev, "o", name, required=False),
            "high": _num(ev, "h", name, required=False), "low": _num(ev, "l", name, required=False),
            "close": _num(ev, "c", name, required=False), "volume": volume,
            "vwap": _num(ev, "vw", name, required=False), "source": self.source,
        }
        return Decoded(WS_AGGREGATES.name, self._dates(start), row)


def _wire_code(value: str | None) -> int | None:
    """A vendor code as Polygon's integer id; None (left to the extension) when it is not one."""
    if value is None or not value.isdigit() or str(int(value)) != value:
        return None
    return int(value)


_MISSING = object()  # a column the decoded event does not have


def encode_rows(table: str, frame: pl.DataFrame, decoder: Decoder) -> list[dict[str, Any]]:
    """Raw rows as Polygon websocket events, exact through :meth:`Decoder.decode`.

    Each row becomes the event Polygon would send (``t`` = ``ts_ns`` // 1e6 ms, ids as
    integers where they are digits, stock quote sizes in round lots before
    2025-11-03); every column that event does not reproduce exactly rides in the
    ``"m17"`` extension, so ``decode(encode(row)) == row`` except ``source``.

    Parameters
    ----------
    table : one of the four raw tables with a websocket event
    frame : rows with the table's columns (polars)
    decoder : Decoder
        The decoder the receiving side uses (same underlyings and settings).

    Raises
    ------
    KeyError
        For a table without a websocket event.
    """
    feed, name = EVENT_OF_TABLE[table]
    spec = schemas.table(table)
    compare = [c for c in spec.columns if c != "source"]
    out = []
    lots_from = decoder._polygon.stock_quote_sizes_in_shares_from
    round_lot = decoder._polygon.round_lot_shares
    for row in frame.select(spec.columns).iter_rows(named=True):
        sym = row["option_symbol"] if feed == "options" else row["symbol"]
        ev: dict[str, Any] = {"ev": name, "sym": sym}
        if name == "T":
            ev |= {"x": _wire_code(row["exchange"]), "p": row["price"], "s": row["size"]}
            if row["conditions"] is not None:
                codes = [_wire_code(c) for c in row["conditions"]]
                if None not in codes:
                    ev["c"] = codes
            if feed == "stocks" and row["trade_id"] is not None:
                ev["i"] = row["trade_id"]
        else:
            lots = 1
            if feed == "stocks" and decoder._dates(row["ts_ns"]) < lots_from:
                lots = round_lot
            ev |= {"bx": _wire_code(row["bid_exchange"]), "bp": row["bid"],
                   "bs": None if row["bid_size"] is None else row["bid_size"] // lots,
                   "ax": _wire_code(row["ask_exchange"]), "ap": row["ask"],
                   "as": None if row["ask_size"] is None else row["ask_size"] // lots}
        ev |= {"t": row["ts_ns"] // NS_PER_MS, "q": row["sequence"]}
        ev = {k: v for k, v in ev.items() if v is not None}
        try:
            back = decoder.decode(feed, ev).row
        except WireFormatError:
            back = {}
        ext = {}
        for column in compare:
            want = row[column]
            if back.get(column, _MISSING) != want or (isinstance(want, float) and math.isnan(want)):
                ext[column] = want.isoformat() if isinstance(want, dt.date) else want
        if ext:
            ev[EXTENSION] = ext
        out.append(ev)
    return out



def frame_of(table: str, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Decoded rows of one table as a frame with exactly the table's schema."""
    spec = LANDING_TABLES[table]
    frame = pl.DataFrame(rows, schema=pl.from_arrow(spec.schema.empty_table()).schema, orient="row") if rows else (
        pl.from_arrow(spec.schema.empty_table())
    )
    return pl.from_arrow(schemas.conform(frame, spec, origin=f"websocket {table}"))
