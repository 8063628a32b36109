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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa

from m17_platform import schemas
from m17_platform.schemas import col
from m17_platform.settings import (
    DEFAULT,
    CaptureSettings,
    PolygonSettings,
    SessionSettings,
)
from m17_platform.sources.polygon_ws_fields import (
    WireFormatError,
    check_amounts,
    code_field,
    codes_field,
    deeper_than,
    extension_value,
    int_field,
    num_field,
    short_repr,
)
from m17_platform.symbols import parse_occ_symbol

FEEDS = ("stocks", "options")
EXTENSION = "m17"
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

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


@dataclass(frozen=True)
class Decoded:
    """One decoded data event.

    table : raw table name (or ``ws_aggregates``); trade_date : the event's trade date
    (America/New_York date of its time); row : the table's columns -> values.
    """

    table: str
    trade_date: dt.date
    row: dict[str, Any]


def parse_frame(text: str | bytes, *, max_chars: int = DEFAULT.capture.max_frame_chars,
                max_depth: int = DEFAULT.capture.max_frame_depth) -> list[Any]:
    """The events of one websocket frame (a JSON array; a lone object counts as one).

    Parameters
    ----------
    text : the frame as received
    max_chars : longest frame parsed (characters; ``CaptureSettings.max_frame_chars``)
    max_depth : deepest nesting of arrays / objects accepted (levels;
        ``CaptureSettings.max_frame_depth``)

    Raises
    ------
    WireFormatError
        ``too_large``, ``too_deep``, ``invalid_json`` (with the parser's position) or
        ``not_a_list``.
    """
    if len(text) > max_chars:
        raise WireFormatError("too_large", f"frame of {len(text):,} characters is longer than {max_chars:,} "
                                           "(CaptureSettings.max_frame_chars)")
    try:
        payload = json.loads(text)
    except RecursionError:
        payload = None
        too_deep = True
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4,300 digits
        raise WireFormatError("invalid_json", f"frame is not JSON: {exc}") from None
    else:
        too_deep = deeper_than(payload, max_depth)
    if too_deep:
        raise WireFormatError("too_deep", f"frame nests arrays / objects more than {max_depth} levels deep "
                                          "(CaptureSettings.max_frame_depth)")
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

    def local(self, ts_ns: int) -> dt.datetime:
        """``ts_ns`` (ns since epoch, within int64) as a local datetime."""
        return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=self._tz)

    def __call__(self, ts_ns: int) -> dt.date:
        if not (self._lo <= ts_ns < self._hi):
            self._day = self.local(ts_ns).date()
            start = dt.datetime.combine(self._day, dt.time(), tzinfo=self._tz)
            end = dt.datetime.combine(self._day + dt.timedelta(days=1), dt.time(), tzinfo=self._tz)
            self._lo, self._hi = int(start.timestamp()) * 10**9, int(end.timestamp()) * 10**9
        return self._day


class _SessionWindows:
    """The accepted event-time window of a trade date: the equity calendar's extended session
    (``calendar.session_window_ns("stock", day)``) widened by ``slack_ns`` at each end;
    ``None`` for a day that is not a session. Cached per day."""

    _CACHED_DAYS = 64

    def __init__(self, sessions: SessionSettings, slack_ns: int) -> None:
        self.sessions = sessions
        self._slack = slack_ns
        self._cache: dict[dt.date, tuple[int, int] | None] = {}

    def __call__(self, day: dt.date) -> tuple[int, int] | None:
        if day not in self._cache:
            # exchange_calendars loads on the first event only
            from m17_platform import calendar

            if len(self._cache) >= self._CACHED_DAYS:
                self._cache.clear()
            window = None
            if calendar.is_trading_day(day, self.sessions):
                lo, hi = calendar.session_window_ns("stock", day, settings=self.sessions)
                window = (lo - self._slack, hi + self._slack)
            self._cache[day] = window
        return self._cache[day]


class Decoder:
    """Turns Polygon websocket events into raw rows for the configured underlyings.

    Every row it returns fits its table's schema (types, ranges, required columns), so
    whatever a feed sends, a bad event is a :class:`WireFormatError`, never a failure
    further on.

    Parameters
    ----------
    underlyings : iterable of str
        The underlyings captured. A stock event must be for one of them; an option's
        root must be one of them or a root listed for it in ``polygon.option_roots``.
    polygon : PolygonSettings
        Option roots per underlying, and the date from which stock quote sizes are
        shares (before it ``bs``/``as`` are round lots of ``round_lot_shares``).
    sessions : SessionSettings
        Time zone of the trade date (America/New_York), the equity calendar and the
        extended session that bound the accepted event times.
    capture : CaptureSettings
        ``source_name`` (the ``source`` column) and ``event_window_slack_seconds`` (s).
    check_sessions : bool
        Reject events whose time is not in its trade date's accepted window (on by
        default; off only for tools that decode off-session data on purpose).
    """

    def __init__(self, underlyings: Iterable[str], *, polygon: PolygonSettings = DEFAULT.polygon,
                 sessions: SessionSettings = DEFAULT.sessions, capture: CaptureSettings = DEFAULT.capture,
                 check_sessions: bool = True) -> None:
        self.underlyings = tuple(underlyings)
        self._roots = {u: u for u in self.underlyings}
        for u in self.underlyings:
            for root in polygon.option_roots.get(u, ()):
                self._roots[root] = u
        self._polygon = polygon
        self._dates = _TradeDates(sessions.timezone)
        self._windows = _SessionWindows(sessions, round(capture.event_window_slack_seconds * NS_PER_S))
        self._check_sessions = check_sessions
        self._fields: dict[str, dict[str, pa.Field]] = {}
        self.source = capture.source_name

    def trade_date(self, ts_ns: int) -> dt.date:
        """The trade date (America/New_York date) of ``ts_ns`` (ns since epoch, within int64)."""
        return self._dates(ts_ns)

    def window(self, day: dt.date) -> tuple[int, int] | None:
        """The accepted event times of trade date ``day``: (first, last) ns since epoch UTC,
        inclusive, or ``None`` when ``day`` is not a trading day."""
        return self._windows(day)

    def _check_time(self, name: str, sym: str, key: str, ts_ns: int) -> dt.date:
        """The trade date of an event time, if it lies in that date's accepted window."""
        day = self._dates(ts_ns)
        if not self._check_sessions:
            return day
        window = self._windows(day)
        if window is not None and window[0] <= ts_ns <= window[1]:
            return day
        local = self._dates.local(ts_ns)
        when = f"{name} event {sym}: {key!r} {ts_ns // NS_PER_MS} ms ({local:%Y-%m-%d %H:%M:%S} {local.tzinfo})"
        if window is None:
            raise WireFormatError("not_trading_day", f"{when} is not on a trading day of the "
                                                     f"{self._windows.sessions.equity_calendar} calendar")
        lo, hi = self._dates.local(window[0]), self._dates.local(window[1])
        raise WireFormatError("outside_session", f"{when} is outside {day}'s accepted window {lo:%H:%M:%S}-"
                                                 f"{hi:%H:%M:%S} (extended session +- "
                                                 "CaptureSettings.event_window_slack_seconds)")

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
            (naming the field), ``bad_symbol``, ``unmapped_symbol``, ``bad_extension``,
            ``bad_price``, ``bad_size``, ``not_trading_day``, ``outside_session``.
        """
        if not isinstance(ev, dict):
            raise WireFormatError("not_an_object", f"event is a JSON {type(ev).__name__}: {short_repr(ev)}")
        name = ev.get("ev")
        if name in AGGREGATE_EVENTS:
            return self._aggregate(feed, name, ev)
        table = TABLE_OF_EVENT.get((feed, name)) if isinstance(name, str) else None
        if table is None:
            raise WireFormatError("unknown_event", f"event {short_repr(name)} on the {feed} feed")
        sym = ev.get("sym")
        if not isinstance(sym, str) or not sym:
            raise WireFormatError("bad_field", f"{name} event has no symbol 'sym'")
        underlying = self.underlying_of(feed, sym)
        row: dict[str, Any] = {"ts_ns": int_field(ev, "t", name, scale=NS_PER_MS),
                               "sequence": int_field(ev, "q", name)}
        if feed == "options":
            oid = parse_occ_symbol(sym)
            row |= {"option_symbol": sym, "underlying": underlying, "root": oid.root,
                    "expiration": oid.expiration, "strike": oid.strike, "right": oid.right}
        else:
            row |= {"symbol": sym, "underlying": underlying}
        if name == "T":
            row |= {
                "price": num_field(ev, "p", name), "size": int_field(ev, "s", name),
                "exchange": code_field(ev, "x", name), "conditions": codes_field(ev, "c", name),
                "trade_id": code_field(ev, "i", name), "canceled": False,
            }
            if feed == "stocks":
                row["aggressor_side"] = None
        else:
            lots = 1
            if feed == "stocks" and self._dates(row["ts_ns"]) < self._polygon.stock_quote_sizes_in_shares_from:
                lots = self._polygon.round_lot_shares
            row |= {
                "bid": num_field(ev, "bp", name, required=False),
                "bid_size": int_field(ev, "bs", name, required=False, scale=lots),
                "ask": num_field(ev, "ap", name, required=False),
                "ask_size": int_field(ev, "as", name, required=False, scale=lots),
                "bid_exchange": code_field(ev, "bx", name), "ask_exchange": code_field(ev, "ax", name),
            }
        row["source"] = self.source
        ext = ev.get(EXTENSION)
        if ext is not None:
            self._apply_extension(table, name, ext, row)
        check_amounts(name, sym, row)
        return Decoded(table, self._check_time(name, sym, "t", row["ts_ns"]), row)

    def _apply_extension(self, table: str, name: str, ext: Any, row: dict[str, Any]) -> None:
        fields = self._fields.get(table)
        if fields is None:
            fields = self._fields[table] = {f.name: f for f in schemas.table(table).schema}
        if not isinstance(ext, dict):
            raise WireFormatError("bad_extension", f"{name} event's {EXTENSION!r} is not an object")
        for column, value in ext.items():
            if column not in fields or column in ("option_symbol", "symbol", "source"):
                raise WireFormatError("bad_extension",
                                      f"{name} event's {EXTENSION!r} names column {short_repr(column)}")
            try:
                row[column] = extension_value(fields[column], value)
            except ValueError as exc:
                raise WireFormatError("bad_extension", f"{name} event's {EXTENSION!r} column {column!r} is not "
                                                       f"{exc}: {short_repr(value)}") from None
        if row["underlying"] not in self.underlyings:
            raise WireFormatError("bad_extension", f"{name} event's {EXTENSION!r} underlying {row['underlying']!r} "
                                                   f"is not a captured underlying {self.underlyings}")

    def _aggregate(self, feed: str, name: str, ev: dict) -> Decoded:
        sym = ev.get("sym")
        if not isinstance(sym, str) or not sym:
            raise WireFormatError("bad_field", f"{name} event has no symbol 'sym'")
        underlying = self.underlying_of(feed, sym)
        start, end = int_field(ev, "s", name, scale=NS_PER_MS), int_field(ev, "e", name, scale=NS_PER_MS)
        if end < start:
            raise WireFormatError("bad_field", f"{name} event {sym}: window end 'e' {end // NS_PER_MS} ms is before "
                                               f"its start 's' {start // NS_PER_MS} ms")
        row = {
            "start_ns": start, "end_ns": end, "event": name, "symbol": sym,
            "underlying": underlying, "open": num_field(ev, "o", name, required=False),
            "high": num_field(ev, "h", name, required=False), "low": num_field(ev, "l", name, required=False),
            "close": num_field(ev, "c", name, required=False), "volume": int_field(ev, "v", name, required=False),
            "vwap": num_field(ev, "vw", name, required=False), "source": self.source,
        }
        check_amounts(name, sym, row)
        return Decoded(WS_AGGREGATES.name, self._check_time(name, sym, "s", start), row)


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
