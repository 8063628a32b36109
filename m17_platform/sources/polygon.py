"""Polygon.io / Massive REST history, normalised into the raw tables.

Requests go through the official client (the ``massive`` package, ``massive.RESTClient``):
v3 trades and quotes with paging (``next_url``), the options contracts reference, the
option chain snapshot, aggregates, and the condition and exchange code tables
(https://massive.com/docs/rest). The client's HTTP pool is wrapped so the platform, not
the client, decides what a status means:

* 401 / 403 raise :class:`PolygonAuthError` naming the endpoint (key missing or invalid,
  or the plan lacks the data); the key is never in a message, a log or a file;
* 429, 5xx and dropped connections are retried ``PolygonSettings.max_retries`` times,
  waiting ``backoff_seconds`` x 2**n (or the server's longer ``Retry-After``), then
  raise :class:`PolygonRetryError`; other statuses raise :class:`PolygonRequestError`;
* a body that is not JSON raises :class:`~m17_platform.errors.SourceFormatError`
  naming the URL (the client itself would log it and return nothing).

Which contracts a partition covers (REST only; flat files carry every contract):
the underlying's contracts from ``/v3/reference/options/contracts`` *as of* the trade
date (the chain as it stood that day), expiring from the trade date to
``max_days_to_expiry`` calendar days later, with a strike within ``strike_window`` (a
fraction) of the underlying's unadjusted daily-bar open. More than ``max_contracts``
contracts is an error, so a day is a bounded number of requests: one daily bar, one
contracts listing, one condition table, then trades and quotes per contract (plus
their pages).

Vendor documentation: trades https://massive.com/docs/rest/stocks/trades-quotes/trades,
quotes .../trades-quotes/quotes, contracts https://massive.com/docs/rest/options/contracts/all-contracts,
chain snapshot https://massive.com/docs/rest/options/snapshots/option-chain-snapshot,
aggregates https://massive.com/docs/rest/stocks/aggregates/custom-bars, conditions and
exchanges https://massive.com/docs/rest/stocks/market-operations/condition-codes and
.../market-operations/exchanges. Stock quote sizes are round lots before 2025-11-03 and
shares from then on (https://polygon.io/blog/change-stocks-quotes-round-lots-to-shares);
the raw tables hold shares.

Conventions: ``ts_ns`` is the SIP timestamp (ns, UTC) of trades and quotes alike, so
both sit on one clock; a trade day is the America/New_York calendar day; ``sequence``
is the vendor's ``sequence_number`` (stocks, option quotes) or the row's position in
the contract's time-ordered stream (option trades have none). Canceled, corrected and
late prints are kept, flagged (``canceled``) and counted from the condition code table
and the trade correction indicator (:func:`flag_trades`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import polars as pl
import urllib3
from massive import RESTClient

from m17_platform import calendar, schemas
from m17_platform.errors import M17Error, SourceFormatError
from m17_platform.settings import DEFAULT, Settings
from m17_platform.sources.base import TableChunk
from m17_platform.symbols import parse_occ_symbol

if TYPE_CHECKING:
    from m17_platform.lake import PartitionRef

REST_NAME = "polygon.rest"
API_KEY_ENV = "POLYGON_API_KEY"
MASSIVE_API_KEY_ENV = "MASSIVE_API_KEY"
API_KEY_ENVS: tuple[str, ...] = (API_KEY_ENV, MASSIVE_API_KEY_ENV)
"""Where the key is read, first set wins: Polygon renamed itself Massive, both names work."""
API_KEY_HINT = f"{API_KEY_ENV} or {MASSIVE_API_KEY_ENV}"
BASE_URL_ENV = "M17_REST_BASE_URL"

SOURCE_TRADES = "polygon.rest.v3_trades"
SOURCE_QUOTES = "polygon.rest.v3_quotes"
SOURCE_CONTRACTS = "polygon.rest.v3_reference_options_contracts"
SOURCE_SNAPSHOT = "polygon.rest.v3_snapshot_options"

REST_TABLES: tuple[str, ...] = (
    "option_trades", "option_quotes", "stock_trades", "stock_quotes", "option_contracts", "option_vendor_greeks",
)

NS_PER_MS = 1_000_000

# --- errors -----------------------------------------------------------------------------------


class PolygonError(M17Error, RuntimeError):
    """A Polygon / Massive request failed (not a problem of the data's format)."""


class PolygonAuthError(PolygonError):
    """No key, an invalid key (401) or a plan without access to the data (403)."""


def api_key_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The Polygon / Massive API key: ``$POLYGON_API_KEY``, else ``$MASSIVE_API_KEY``
    (:data:`API_KEY_ENVS`, the old name first); None when neither is set or both are
    empty. The key is a secret: callers send it to the server only, never print or log it."""
    env = os.environ if environ is None else environ
    return next((env[name] for name in API_KEY_ENVS if env.get(name)), None)


class PolygonRetryError(PolygonError):
    """Rate limited (429), server errors (5xx) or dropped connections past the retries."""


class PolygonRequestError(PolygonError):
    """Any other refused request (400, 404, ...), or a flat file that does not exist."""


class PolygonNoDataError(PolygonError):
    """The vendor has no data a partition needs (e.g. no daily bar for the strike window)."""


# --- trade condition codes ----------------------------------------------------------------------

# Names that mean a print was canceled / busted, or reported late or out of sequence, in
# Polygon's condition tables (options: 201 "Canceled", 203 "Last and Canceled", 204
# "Late", 202 "Late and Out Of Sequence", ...; stocks: 30 "Sold Last", 32 "Sold (Out Of
# Sequence)", ...). Whether a code counts toward volume is the table's own
# ``update_rules.consolidated.updates_volume``.
_CANCELED_NAME = re.compile(r"\bcancel", re.IGNORECASE)
_LATE_NAME = re.compile(r"\blate\b|out of sequence|\bsold last\b", re.IGNORECASE)

# Trade correction indicator (``correction`` in v3 trades and the trades flat files; the
# CTA / NYSE TAQ "Trade Correction Indicator", which Polygon passes through: "canceled
# trades are indicated by the Trade Correction field", massive.com knowledge base):
# 0 regular; 1 original trade later corrected (superseded); 7 original later marked
# erroneous; 8 original later canceled; 10 cancel record; 11 error record; 12 correction
# record (the corrected print, valid).
CORRECTION_CANCELED = frozenset({7, 8, 10, 11})
CORRECTION_SUPERSEDED = frozenset({1})
CORRECTION_RECORD = frozenset({12})
CORRECTION_KNOWN = frozenset({0}) | CORRECTION_CANCELED | CORRECTION_SUPERSEDED | CORRECTION_RECORD


@dataclass(frozen=True)
class ConditionCode:
    """One row of Polygon's ``/v3/reference/conditions`` table.

    Attributes
    ----------
    id : int
        Polygon's condition id (one id space for stocks and options).
    name : str
        Polygon's name (e.g. ``"Canceled"``, ``"Sold (Out Of Sequence)"``).
    asset_class : str | None
        ``stocks`` or ``options``.
    type : str | None
        ``sale_condition``, ``quote_condition``, ...
    updates_volume : bool | None
        ``update_rules.consolidated.updates_volume``; None when the table does not say.
    """

    id: int
    name: str
    asset_class: str | None = None
    type: str | None = None
    updates_volume: bool | None = None

    @property
    def canceled(self) -> bool:
        """The print was canceled or busted (name mentions a cancel)."""
        return bool(_CANCELED_NAME.search(self.name))

    @property
    def late(self) -> bool:
        """The print was reported late or out of sequence."""
        return bool(_LATE_NAME.search(self.name))

    @classmethod
    def from_json(cls, record: Mapping[str, Any], origin: str, index: int) -> ConditionCode:
        """Build from one ``results`` element of the conditions endpoint.

        Raises
        ------
        SourceFormatError
            Naming ``origin`` and the field when ``id`` or ``name`` is missing or mistyped.
        """
        cid = record.get("id")
        name = record.get("name")
        if isinstance(cid, bool) or not isinstance(cid, int):
            raise SourceFormatError(origin, None, "id", f"condition #{index}: {cid!r} is not an integer id")
        if not isinstance(name, str) or not name:
            raise SourceFormatError(origin, None, "name", f"condition #{index} (id {cid}): missing name")
        rules = record.get("update_rules") or {}
        consolidated = rules.get("consolidated") if isinstance(rules, Mapping) else None
        volume = consolidated.get("updates_volume") if isinstance(consolidated, Mapping) else None
        return cls(
            id=cid,
            name=name,
            asset_class=record.get("asset_class"),
            type=record.get("type"),
            updates_volume=volume if isinstance(volume, bool) else None,
        )


# The recorded ``GET /v3/reference/conditions?asset_class=stocks`` response (polygon-io/
# client-python test mocks, commit 5d9c756b): ids 1-10 with their update rules.
RECORDED_STOCK_CONDITIONS: tuple[dict[str, Any], ...] = tuple(
    {
        "id": cid, "type": "sale_condition", "name": name, "asset_class": "stocks", "data_types": ["trade"],
        "update_rules": {"consolidated": {"updates_high_low": hl, "updates_open_close": oc, "updates_volume": True}},
    }
    for cid, name, hl, oc in (
        (1, "Acquisition", True, True),
        (2, "Average Price Trade", False, False),
        (3, "Automatic Execution", True, True),
        (4, "Bunched Trade", True, True),
        (5, "Bunched Sold Trade", True, False),
        (6, "CAP Election", True, True),
        (7, "Cash Sale", False, False),
        (8, "Closing Prints", True, True),
        (9, "Cross Trade", True, True),
        (10, "Derivatively Priced", True, False),
    )
)

# Names of the other documented trade condition ids, without update rules (Polygon's
# condition glossary, https://massive.com/docs/rest/stocks/market-operations/condition-codes
# and .../options/market-operations/condition-codes, as carried by public client code; no
# recorded options response exists to copy). Used only when the REST table is out of
# reach (flat files): they name canceled and late prints; volume rules stay unknown.
DOCUMENTED_CONDITION_NAMES: dict[int, tuple[str, str]] = {
    11: ("stocks", "Distribution"), 12: ("stocks", "Form T/Extended Hours"),
    13: ("stocks", "Extended Hours (Sold Out Of Sequence)"), 14: ("stocks", "Intermarket Sweep"),
    15: ("stocks", "Market Center Official Close"), 16: ("stocks", "Market Center Official Open"),
    17: ("stocks", "Market Center Opening Trade"), 18: ("stocks", "Market Center Reopening Trade"),
    19: ("stocks", "Market Center Closing Trade"), 20: ("stocks", "Next Day"),
    21: ("stocks", "Price Variation Trade"), 22: ("stocks", "Prior Reference Price"),
    23: ("stocks", "Rule 155 Trade (AMEX)"), 24: ("stocks", "Rule 127 (NYSE Only)"),
    25: ("stocks", "Opening Prints"), 27: ("stocks", "Stopped Stock (Regular Trade)"),
    28: ("stocks", "Re-Opening Prints"), 29: ("stocks", "Seller"), 30: ("stocks", "Sold Last"),
    31: ("stocks", "Sold Last and Stopped Stock"), 32: ("stocks", "Sold (Out Of Sequence)"),
    33: ("stocks", "Sold (Out of Sequence) and Stopped Stock"), 34: ("stocks", "Split Trade"),
    35: ("stocks", "Stock Option"), 36: ("stocks", "Yellow Flag Regular Trade"), 37: ("stocks", "Odd Lot Trade"),
    38: ("stocks", "Corrected Consolidated Close (per listing market)"), 41: ("stocks", "Trade Thru Exempt"),
    52: ("stocks", "Contingent Trade"), 53: ("stocks", "Qualified Contingent Trade"),
    201: ("options", "Canceled"), 202: ("options", "Late and Out Of Sequence"),
    203: ("options", "Last and Canceled"), 204: ("options", "Late"),
    205: ("options", "Opening Trade and Canceled"), 206: ("options", "Opening Trade, Late, and Out Of Sequence"),
    207: ("options", "Only Trade and Canceled"), 208: ("options", "Opening Trade and Late"),
    209: ("options", "Automatic Execution"), 210: ("options", "Reopening Trade"),
    219: ("options", "Intermarket Sweep Order"), 227: ("options", "Single Leg Auction Non ISO"),
    228: ("options", "Single Leg Auction ISO"), 229: ("options", "Single Leg Cross Non ISO"),
    230: ("options", "Single Leg Cross ISO"), 231: ("options", "Single Leg Floor Trade"),
    232: ("options", "Multi Leg auto-electronic trade"), 233: ("options", "Multi Leg Auction"),
    234: ("options", "Multi Leg Cross"), 235: ("options", "Multi Leg floor trade"),
    236: ("options", "Multi Leg auto-electronic trade against single leg(s)"),
    237: ("options", "Stock Options Auction"), 238: ("options", "Multi Leg Auction against single leg(s)"),
    239: ("options", "Multi Leg floor trade against single leg(s)"),
    240: ("options", "Stock Options auto-electronic trade"), 241: ("options", "Stock Options Cross"),
    242: ("options", "Stock Options floor trade"),
    243: ("options", "Stock Options auto-electronic trade against single leg(s)"),
    244: ("options", "Stock Options Auction against single leg(s)"),
    245: ("options", "Stock Options floor trade against single leg(s)"),
    246: ("options", "Multi Leg Floor Trade of Proprietary Products"),
    247: ("options", "Multilateral Compression Trade of Proprietary Products"),
    248: ("options", "Extended Hours Trade"),
}


@dataclass(frozen=True)
class ConditionTable:
    """Polygon's trade condition codes, and which of them flag a print.

    Attributes
    ----------
    codes : Mapping[int, ConditionCode]
        id -> code.
    origin : str
        Where the table came from (the REST URL, or ``bundled``).
    """

    codes: Mapping[int, ConditionCode]
    origin: str

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], origin: str) -> ConditionTable:
        """Build from ``results`` elements of ``/v3/reference/conditions`` (JSON shape).

        Raises
        ------
        SourceFormatError
            Naming ``origin`` for a record without an integer ``id`` or a ``name``.
        """
        codes = {}
        for i, record in enumerate(records):
            code = ConditionCode.from_json(record, origin, i)
            codes[code.id] = code
        return cls(codes, origin)

    @classmethod
    def bundled(cls) -> ConditionTable:
        """The table shipped with the platform, for readers that cannot reach REST (flat files):
        :data:`RECORDED_STOCK_CONDITIONS` (with update rules) and
        :data:`DOCUMENTED_CONDITION_NAMES` (names only)."""
        codes = {
            cid: ConditionCode(cid, name, asset_class, "sale_condition", None)
            for cid, (asset_class, name) in DOCUMENTED_CONDITION_NAMES.items()
        }
        recorded = cls.from_records(RECORDED_STOCK_CONDITIONS, "bundled")
        codes.update(recorded.codes)
        return cls(codes, "bundled")

    @property
    def canceled_ids(self) -> frozenset[int]:
        """Ids whose name says the print was canceled or busted."""
        return frozenset(c.id for c in self.codes.values() if c.canceled)

    @property
    def late_ids(self) -> frozenset[int]:
        """Ids whose name says the print was reported late or out of sequence."""
        return frozenset(c.id for c in self.codes.values() if c.late)

    @property
    def no_volume_ids(self) -> frozenset[int]:
        """Ids whose consolidated update rule excludes the print from volume."""
        return frozenset(c.id for c in self.codes.values() if c.updates_volume is False)


def _any_in(column: str, ids: Iterable[int]) -> pl.Expr:
    values = pl.Series(sorted(ids), dtype=pl.Int64).implode()
    return pl.col(column).list.eval(pl.element().is_in(values)).list.any().fill_null(False)


def flag_trades(frame: pl.DataFrame, table: ConditionTable) -> tuple[pl.DataFrame, dict[str, int]]:
    """Flag canceled prints and count what analytics must leave out.

    Parameters
    ----------
    frame : polars.DataFrame
        Trades with ``condition_codes`` (List(Int64), Polygon condition ids, nullable)
        and ``correction`` (Int64, trade correction indicator, nullable = 0).
    table : ConditionTable
        The condition codes (REST ``/v3/reference/conditions`` or the bundled copy).

    Returns
    -------
    frame : polars.DataFrame
        ``frame`` plus ``canceled`` (Boolean): a condition named canceled, or a
        correction indicator of 7, 8, 10 or 11 (busted / canceled / error records).
    stats : dict[str, int]
        ``canceled``; ``corrected`` (indicator 1: superseded by a correction record);
        ``correction_records`` (indicator 12); ``late`` (a late / out-of-sequence
        condition); ``excluded_from_volume`` (canceled, superseded, or a condition whose
        consolidated rule does not update volume); ``unknown_condition_codes`` and
        ``unknown_correction_codes`` (rows with a code the tables do not know).
    """
    corr = pl.col("correction").fill_null(0)
    canceled = _any_in("condition_codes", table.canceled_ids) | corr.is_in(sorted(CORRECTION_CANCELED))
    superseded = corr.is_in(sorted(CORRECTION_SUPERSEDED))
    known = pl.Series(sorted(table.codes), dtype=pl.Int64).implode()
    flags = frame.select(
        canceled.alias("canceled"),
        superseded.alias("corrected"),
        corr.is_in(sorted(CORRECTION_RECORD)).alias("correction_records"),
        _any_in("condition_codes", table.late_ids).alias("late"),
        (canceled | superseded | _any_in("condition_codes", table.no_volume_ids)).alias("excluded_from_volume"),
        pl.col("condition_codes").list.eval(~pl.element().is_in(known)).list.any().fill_null(False)
        .alias("unknown_condition_codes"),
        (~corr.is_in(sorted(CORRECTION_KNOWN))).alias("unknown_correction_codes"),
    )
    stats = {name: int(flags.get_column(name).sum()) for name in flags.columns}
    return frame.with_columns(flags.get_column("canceled")), stats


# --- shared helpers for the readers -------------------------------------------------------------


def day_bounds_ns(day: dt.date, timezone: str) -> tuple[int, int]:
    """The trade day as ``[start, end)`` in ns since the epoch, UTC: midnight to midnight
    in ``timezone`` (America/New_York), so pre- and post-market prints belong to it."""
    tz = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
    return int(start.timestamp()) * 1_000_000_000, int(end.timestamp()) * 1_000_000_000


class ChunkBuffer:
    """Rows of one raw table, handed out as :class:`TableChunk` of at most ``chunk_rows`` rows.

    Each chunk carries the counts added to :attr:`stats` since the previous chunk (plus its
    ``rows``), so the chunks' stats sum to the partition's. :meth:`finish` always hands
    out a last chunk when counts are pending or nothing was handed out, even with no rows,
    so the counts of an empty partition are not lost.
    """

    def __init__(self, table: str, chunk_rows: int, origin: str) -> None:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        self.spec = schemas.table(table)
        self.chunk_rows = chunk_rows
        self.origin = origin
        self.stats: Counter[str] = Counter()
        self._pending: list[pl.DataFrame] = []
        self._pending_rows = 0
        self._emitted = 0

    def _conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        return pl.from_arrow(schemas.conform(frame, self.spec, origin=self.origin))

    def _emit(self, frame: pl.DataFrame) -> TableChunk:
        stats = {k: int(v) for k, v in self.stats.items()}
        stats["rows"] = stats.get("rows", 0) + frame.height
        self.stats.clear()
        self._emitted += 1
        return TableChunk(self.spec.name, frame, stats)

    def add(self, frame: pl.DataFrame) -> Iterator[TableChunk]:
        """Take ``frame`` (the table's columns, castable dtypes); yield every full chunk.

        Raises
        ------
        SchemaError
            If ``frame`` does not fit the table's schema (names ``origin``).
        """
        if frame.height == 0:
            return
        self._pending.append(self._conform(frame))
        self._pending_rows += frame.height
        while self._pending_rows >= self.chunk_rows:
            whole = pl.concat(self._pending) if len(self._pending) > 1 else self._pending[0]
            head, rest = whole.head(self.chunk_rows), whole.slice(self.chunk_rows)
            self._pending = [rest] if rest.height else []
            self._pending_rows = rest.height
            yield self._emit(head)

    def finish(self) -> Iterator[TableChunk]:
        """Yield the remaining rows (and pending counts) as the last chunk."""
        if self._pending_rows or any(self.stats.values()) or self._emitted == 0:
            rest = pl.concat(self._pending) if self._pending else schemas.empty_frame(self.spec)
            self._pending, self._pending_rows = [], 0
            yield self._emit(rest)


def option_identity(symbols: Iterable[str]) -> tuple[pl.DataFrame, str | None]:
    """Parse OCC symbols (Polygon spelling) into the option identity columns.

    Returns
    -------
    frame : polars.DataFrame
        One row per distinct symbol: ``option_symbol``, ``root`` (String),
        ``expiration`` (Date), ``strike`` (Float64, dollars), ``right`` ('C' / 'P').
    bad : str | None
        The first symbol that is not an OCC symbol (its rows are not in ``frame``).
    """
    rows: dict[str, list] = {"option_symbol": [], "root": [], "expiration": [], "strike": [], "right": []}
    bad = None
    for symbol in dict.fromkeys(symbols):
        try:
            oid = parse_occ_symbol(symbol)
        except ValueError:
            bad = bad or symbol
            continue
        rows["option_symbol"].append(symbol)
        rows["root"].append(oid.root)
        rows["expiration"].append(oid.expiration)
        rows["strike"].append(oid.strike)
        rows["right"].append(oid.right)
    schema = {"option_symbol": pl.String, "root": pl.String, "expiration": pl.Date, "strike": pl.Float64,
              "right": pl.String}
    return pl.DataFrame(rows, schema=schema), bad


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every secret, and any ``apiKey=`` query value, replaced by ``***``."""
    text = re.sub(r"(?i)(apikey=)[^&\s]+", r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# --- HTTP: the client's pool with the platform's status handling --------------------------------


class _ParsedBody:
    """``custom_json`` for the client: hands back the object the transport already parsed
    (one parse per page), parses anything else itself."""

    def __init__(self) -> None:
        self._text: str | None = None
        self._obj: Any = None

    def remember(self, text: str, obj: Any) -> None:
        self._text, self._obj = text, obj

    def loads(self, text: str) -> Any:
        if self._text is not None and text == self._text:
            obj = self._obj
            self._text, self._obj = None, None
            return obj
        return json.loads(text)


class _Transport:
    """Stands in for the client's ``urllib3.PoolManager``: every request of the client
    passes here. Retries 429 / 5xx / dropped connections with exponential backoff,
    raises clear errors for refusals, checks that a 200 body is a JSON object, and
    remembers the last URL (redacted) for error messages."""

    RETRY_STATUSES = frozenset({429, *range(500, 600)})

    def __init__(self, pool: urllib3.PoolManager, *, secret: str, max_retries: int, backoff_seconds: float,
                 sleep: Callable[[float], None], parsed: _ParsedBody) -> None:
        self._pool = pool
        self._secret = secret
        self._max_retries = max_retries
        self._backoff = backoff_seconds
        self._sleep = sleep
        self._parsed = parsed
        self.requests = 0
        self.retries = 0
        self.pages = 0
        self.last_url = ""

    def _vendor_message(self, resp: Any) -> str:
        try:
            body = json.loads(resp.data.decode("utf-8"))
            message = body.get("error") or body.get("message") or body.get("status") or ""
        except (ValueError, AttributeError):
            message = ""
        return redact(str(message)[:300], self._secret)

    def _retry_after(self, resp: Any) -> float:
        value = resp.headers.get("Retry-After") if resp is not None else None
        try:
            return max(0.0, float(value)) if value is not None else 0.0
        except ValueError:
            return 0.0

    def request(self, method: str, url: str, fields: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, **kw: Any) -> Any:
        shown = url + (("&" if "?" in url else "?") + urlencode(fields) if fields else "")
        self.last_url = redact(shown, self._secret)
        endpoint = f"{method} {redact(_endpoint(shown), self._secret)}"
        attempt = 0
        while True:
            self.requests += 1
            resp, problem = None, ""
            try:
                resp = self._pool.request(method, url, fields=fields, headers=headers, retries=False, **kw)
            except urllib3.exceptions.HTTPError as exc:
                problem = redact(f"{type(exc).__name__}: {exc}", self._secret)
            else:
                if resp.status == 200:
                    self._check_json(resp)
                    self.pages += 1
                    return resp
                if resp.status == 401:
                    raise PolygonAuthError(
                        f"{endpoint}: HTTP 401 Unauthorized: the API key ({API_KEY_HINT}) is missing or invalid"
                    )
                if resp.status == 403:
                    raise PolygonAuthError(
                        f"{endpoint}: HTTP 403 Forbidden: the API key is not entitled to this data "
                        f"(the plan lacks access); vendor says: {self._vendor_message(resp)!r}"
                    )
                if resp.status not in self.RETRY_STATUSES:
                    raise PolygonRequestError(
                        f"{endpoint}: HTTP {resp.status}; vendor says: {self._vendor_message(resp)!r}"
                    )
                problem = f"HTTP {resp.status} ({self._vendor_message(resp)!r})"
            if attempt >= self._max_retries:
                raise PolygonRetryError(
                    f"{endpoint}: gave up after {attempt + 1} attempts ({attempt} retries with exponential "
                    f"backoff from {self._backoff} s); last failure: {problem}"
                )
            delay = max(self._backoff * 2**attempt, self._retry_after(resp))
            self._sleep(delay)
            attempt += 1
            self.retries += 1

    def _check_json(self, resp: Any) -> None:
        try:
            text = resp.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceFormatError(self.last_url, None, None, f"response is not UTF-8 text: {exc}") from exc
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SourceFormatError(
                self.last_url, exc.lineno, None, f"malformed JSON: {exc.msg} (column {exc.colno})"
            ) from exc
        if not isinstance(obj, dict):
            raise SourceFormatError(self.last_url, 1, None, f"the top level is a {type(obj).__name__}, not an object")
        if obj.get("status") in ("ERROR", "NOT_AUTHORIZED"):
            raise PolygonRequestError(
                f"GET {_endpoint(self.last_url)}: HTTP 200 with status {obj['status']!r}: "
                f"{redact(str(obj.get('error') or obj.get('message') or '')[:300], self._secret)!r}"
            )
        self._parsed.remember(text, obj)


# --- typed access to the client's result objects --------------------------------------------------


class _Rows:
    """Iterates the client's results, naming the page URL and the result's index on it in errors."""

    def __init__(self, results: Iterator[Any], transport: _Transport) -> None:
        self._it = iter(results)
        self._transport = transport
        self._page = -1
        self.index = -1

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                item = next(self._it)
            except StopIteration:
                return
            except (TypeError, AttributeError, KeyError) as exc:
                raise SourceFormatError(
                    self._transport.last_url, None, None, f"unexpected response shape: {exc}"
                ) from exc
            if self._transport.pages != self._page:
                self._page, self.index = self._transport.pages, -1
            self.index += 1
            yield item

    def fail(self, field: str, reason: str) -> SourceFormatError:
        return SourceFormatError(self._transport.last_url, None, field, f"result #{self.index}: {reason}")

    def integer(self, value: Any, field: str, *, required: bool = True) -> int | None:
        if value is None and not required:
            return None
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or value != int(value)):
            raise self.fail(field, f"cannot read {value!r} as an integer")
        return int(value)

    def number(self, value: Any, field: str, *, required: bool = True) -> float | None:
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(field, f"cannot read {value!r} as a number")
        return float(value)

    def codes(self, value: Any, field: str) -> list[int] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.fail(field, f"{value!r} is not a list of condition codes")
        return [self.integer(v, field) for v in value]

    def text(self, value: Any, field: str, *, required: bool = True) -> str | None:
        if value is None and not required:
            return None
        if not isinstance(value, (str, int)) or isinstance(value, bool) or value == "":
            raise self.fail(field, f"cannot read {value!r} as a text")
        return str(value)


# --- the source -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrikeWindow:
    """The strikes and expirations a REST partition covers.

    Attributes
    ----------
    open_price : float
        The underlying's unadjusted daily-bar open on the trade date (``/v2/aggs``, dollars).
    low, high : float
        Strike bounds, ``open x (1 -/+ strike_window)`` (dollars).
    first_expiration, last_expiration : datetime.date
        The trade date and ``max_days_to_expiry`` calendar days later.
    """

    open_price: float
    low: float
    high: float
    first_expiration: dt.date
    last_expiration: dt.date


class PolygonRestSource:
    """Raw partitions from Polygon / Massive REST history (the :class:`~m17_platform.sources.base.Source` protocol).

    Parameters
    ----------
    settings : Settings
        ``settings.polygon`` (pages, retries, contract selection), ``settings.ingest.chunk_rows``,
        ``settings.sessions`` (calendar, time zone), ``settings.universe`` (multiplier).
    api_key : str
        The Polygon / Massive API key (sent as a bearer header by the client; never
        logged, stored elsewhere or put in a message).
    base_url : str, optional
        REST base URL; default ``settings.polygon.rest_base_url``.
    sleep : callable, optional
        Waits between retries (seconds); tests pass a recorder.

    Raises
    ------
    PolygonAuthError
        If ``api_key`` is empty.

    Notes
    -----
    One instance per process or thread: it caches the condition tables and each
    partition's contract selection, and its HTTP counters are not synchronised.
    """

    name = REST_NAME

    def __init__(self, settings: Settings = DEFAULT, *, api_key: str | None, base_url: str | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not api_key:
            raise PolygonAuthError(f"no Polygon / Massive API key: set {API_KEY_HINT} (or pass api_key)")
        self._settings = settings
        self._poly = settings.polygon
        self.base_url = (base_url or self._poly.rest_base_url).rstrip("/")
        parsed = _ParsedBody()
        self._client = RESTClient(
            api_key=api_key,
            base=self.base_url,
            connect_timeout=self._poly.timeout_seconds,
            read_timeout=self._poly.timeout_seconds,
            retries=0,
            pagination=True,
            custom_json=parsed,
        )
        self._transport = _Transport(
            self._client.client, secret=api_key, max_retries=self._poly.max_retries,
            backoff_seconds=self._poly.backoff_seconds, sleep=sleep, parsed=parsed,
        )
        self._client.client = self._transport
        self._conditions: dict[str, ConditionTable] = {}
        self._windows: dict[tuple[dt.date, str], StrikeWindow] = {}
        self._contracts: dict[tuple[dt.date, str], tuple[pl.DataFrame, dict[str, int]]] = {}

    @classmethod
    def from_env(cls, settings: Settings = DEFAULT, environ: Mapping[str, str] | None = None) -> PolygonRestSource:
        """Build from the environment: the key from ``POLYGON_API_KEY``, else ``MASSIVE_API_KEY``
        (one is required; :func:`api_key_from_env`) and ``M17_REST_BASE_URL`` (optional base
        URL override).

        Raises
        ------
        PolygonAuthError
            Naming the variable when the key is not set.
        """
        env = os.environ if environ is None else environ
        return cls(settings, api_key=api_key_from_env(env), base_url=env.get(BASE_URL_ENV) or None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    @property
    def http_stats(self) -> dict[str, int]:
        """HTTP requests made (pages and retries included) and retries, since construction."""
        return {"http_requests": self._transport.requests, "http_retries": self._transport.retries}

    def tables(self) -> tuple[str, ...]:
        """The raw tables this source fills."""
        return REST_TABLES

    # --- reference data ---------------------------------------------------------------------

    def conditions(self, asset_class: str) -> ConditionTable:
        """Polygon's trade condition codes of ``asset_class`` (``stocks`` / ``options``), from
        ``GET /v3/reference/conditions?asset_class=...&data_type=trade`` (cached).

        Raises
        ------
        PolygonError, SourceFormatError
            On a refused request or a malformed response (naming the URL).
        """
        if asset_class not in self._conditions:
            rows = _Rows(
                self._client.list_conditions(asset_class=asset_class, data_type="trade",
                                             limit=self._poly.reference_page_limit),
                self._transport,
            )
            records = []
            for c in rows:
                rules = c.update_rules
                consolidated = rules.consolidated if rules is not None else None
                records.append({
                    "id": c.id, "name": c.name, "asset_class": c.asset_class, "type": c.type,
                    "update_rules": {"consolidated": {
                        "updates_volume": None if consolidated is None else consolidated.updates_volume,
                    }},
                })
            self._conditions[asset_class] = ConditionTable.from_records(records, self._transport.last_url)
        return self._conditions[asset_class]

    def exchanges(self, asset_class: str | None = None) -> pl.DataFrame:
        """Polygon's exchange ids (``GET /v3/reference/exchanges``), the code space of every
        ``exchange`` / ``bid_exchange`` / ``ask_exchange`` column this source writes.

        Returns
        -------
        polars.DataFrame
            ``id`` (Int64), ``type``, ``asset_class``, ``locale``, ``name``, ``acronym``,
            ``mic``, ``operating_mic``, ``participant_id``, ``url`` (String, nullable).
            An id may appear more than once (FINRA's TRFs share id 4).
        """
        result = self._client.get_exchanges(asset_class=asset_class)
        text_fields = ("type", "asset_class", "locale", "name", "acronym", "mic", "operating_mic", "participant_id",
                       "url")
        rows: dict[str, list] = {"id": [], **{f: [] for f in text_fields}}
        for i, e in enumerate(result):
            if isinstance(e.id, bool) or not isinstance(e.id, int):
                raise SourceFormatError(
                    self._transport.last_url, None, "id", f"result #{i}: {e.id!r} is not an integer id"
                )
            rows["id"].append(e.id)
            for f in text_fields:
                rows[f].append(getattr(e, f))
        return pl.DataFrame(rows, schema={"id": pl.Int64, **{f: pl.String for f in text_fields}})

    def aggregates(self, ticker: str, multiplier: int, timespan: str, start: dt.date | str, end: dt.date | str,
                   *, adjusted: bool = False) -> pl.DataFrame:
        """Aggregate bars (``GET /v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from}/{to}``).

        Parameters
        ----------
        ticker : str
            ``SPY``, ``I:SPX`` (index), ``O:SPY...`` (option).
        multiplier, timespan : int, str
            Bar size, e.g. 1 ``day``, 5 ``minute``.
        start, end : datetime.date or str
            Inclusive date range (YYYY-MM-DD).
        adjusted : bool
            Split-adjusted prices; default False (prices as traded on the day, what
            strikes listed that day are quoted against).

        Returns
        -------
        polars.DataFrame
            ``ts_ns`` (Int64, bar start, ns UTC), ``open``, ``high``, ``low``, ``close``,
            ``vwap`` (Float64, dollars), ``volume`` (Float64, shares or contracts),
            ``transactions`` (Int64, count), in time order.
        """
        start_s = start.isoformat() if isinstance(start, dt.date) else start
        end_s = end.isoformat() if isinstance(end, dt.date) else end
        result = self._client.get_aggs(ticker, multiplier, timespan, start_s, end_s, adjusted=adjusted,
                                       sort="asc", limit=50_000)
        rows = _Rows(iter(result), self._transport)
        names = ("ts_ns", "open", "high", "low", "close", "vwap", "volume", "transactions")
        cols: dict[str, list] = {k: [] for k in names}
        for bar in rows:
            cols["ts_ns"].append(rows.integer(bar.timestamp, "t") * NS_PER_MS)
            for name in ("open", "high", "low", "close"):
                cols[name].append(rows.number(getattr(bar, name), name[0]))
            cols["vwap"].append(rows.number(bar.vwap, "vw", required=False))
            cols["volume"].append(rows.number(bar.volume, "v"))
            cols["transactions"].append(rows.integer(bar.transactions, "n", required=False))
        schema = {"ts_ns": pl.Int64, **{k: pl.Float64 for k in ("open", "high", "low", "close", "vwap", "volume")},
                  "transactions": pl.Int64}
        return pl.DataFrame(cols, schema=schema)

    def strike_window(self, ref: PartitionRef) -> StrikeWindow:
        """The strikes and expirations partition ``ref`` covers (see the module doc), from
        the underlying's unadjusted daily bar (``I:<ticker>`` for index underlyings).

        Raises
        ------
        PolygonNoDataError
            If Polygon has no daily bar for the underlying on the trade date.
        """
        key = (ref.trade_date, ref.underlying)
        if key not in self._windows:
            ticker = f"I:{ref.underlying}" if ref.underlying in self._poly.index_underlyings else ref.underlying
            bars = self.aggregates(ticker, 1, "day", ref.trade_date, ref.trade_date)
            if bars.is_empty():
                raise PolygonNoDataError(
                    f"GET {_endpoint(self._transport.last_url)}: no daily bar for {ticker} on {ref.trade_date}; "
                    "the strike window around its open cannot be placed"
                )
            open_price = float(bars.get_column("open")[0])
            w = self._poly.strike_window
            self._windows[key] = StrikeWindow(
                open_price, open_price * (1 - w), open_price * (1 + w),
                ref.trade_date, ref.trade_date + dt.timedelta(days=self._poly.max_days_to_expiry),
            )
        return self._windows[key]

    def option_contracts(self, ref: PartitionRef) -> tuple[pl.DataFrame, dict[str, int]]:
        """The contracts partition ``ref`` covers, from ``GET /v3/reference/options/contracts``
        as of the trade date within :meth:`strike_window` (cached per partition).

        Returns
        -------
        contracts : polars.DataFrame
            Rows of the ``option_contracts`` table (identity from the OCC symbol;
            ``multiplier`` = ``shares_per_contract``; ``expiry_ts_ns`` the session close
            of the expiration day).
        stats : dict[str, int]
            ``contracts``; ``contracts_outside_window`` and ``contracts_other_underlying``
            (listed by the server but outside the request, left out);
            ``contracts_terms_differ_from_symbol`` (the reference's strike, expiration
            or type disagree with the OCC symbol, which is kept);
            ``contracts_default_multiplier`` (no ``shares_per_contract`` given).

        Raises
        ------
        PolygonError
            If more than ``max_contracts`` contracts fall in the window.
        SourceFormatError
            For a contract whose ticker is not an OCC symbol (naming the page URL).
        """
        key = (ref.trade_date, ref.underlying)
        if key in self._contracts:
            return self._contracts[key]
        win = self.strike_window(ref)
        rows = _Rows(
            self._client.list_options_contracts(
                underlying_ticker=ref.underlying, as_of=ref.trade_date.isoformat(),
                expiration_date_gte=win.first_expiration.isoformat(),
                expiration_date_lte=win.last_expiration.isoformat(),
                strike_price_gte=round(win.low, 4), strike_price_lte=round(win.high, 4),
                limit=self._poly.contracts_page_limit, sort="ticker", order="asc",
            ),
            self._transport,
        )
        stats: Counter[str] = Counter()
        out: dict[str, list] = {k: [] for k in ("option_symbol", "multiplier", "exercise_style")}
        for c in rows:
            ticker = rows.text(c.ticker, "ticker")
            try:
                oid = parse_occ_symbol(ticker)
            except ValueError as exc:
                raise rows.fail("ticker", str(exc)) from exc
            if c.underlying_ticker is not None and c.underlying_ticker not in (ref.underlying, f"I:{ref.underlying}"):
                stats["contracts_other_underlying"] += 1
                continue
            in_window = (win.first_expiration <= oid.expiration <= win.last_expiration
                         and win.low <= oid.strike <= win.high)
            if not in_window:
                stats["contracts_outside_window"] += 1
                continue
            right = {"call": "C", "put": "P"}.get(str(c.contract_type).lower())
            strike = rows.number(c.strike_price, "strike_price", required=False)
            if (right != oid.right or strike is None or abs(strike - oid.strike) > 1e-9
                    or c.expiration_date != oid.expiration.isoformat()):
                stats["contracts_terms_differ_from_symbol"] += 1
            multiplier = rows.integer(c.shares_per_contract, "shares_per_contract", required=False)
            if multiplier is None:
                stats["contracts_default_multiplier"] += 1
                multiplier = self._settings.universe.default_multiplier
            out["option_symbol"].append(ticker)
            out["multiplier"].append(multiplier)
            out["exercise_style"].append({"american": "A", "european": "E"}.get(str(c.exercise_style).lower()))
        if len(out["option_symbol"]) > self._poly.max_contracts:
            raise PolygonError(
                f"{ref}: {len(out['option_symbol'])} contracts within strikes {win.low:.2f}-{win.high:.2f} and "
                f"expirations {win.first_expiration}..{win.last_expiration} exceed max_contracts="
                f"{self._poly.max_contracts}; narrow PolygonSettings.strike_window or max_days_to_expiry"
            )
        identity, _ = option_identity(out["option_symbol"])
        frame = pl.DataFrame(
            out, schema={"option_symbol": pl.String, "multiplier": pl.Int64, "exercise_style": pl.String}
        )
        frame = frame.unique("option_symbol", keep="first", maintain_order=True).join(
            identity, on="option_symbol", how="left"
        )
        expirations = frame.get_column("expiration").unique()
        expiry = {d: calendar.expiry_instant_ns(d, self._settings.sessions) for d in expirations}
        frame = frame.with_columns(
            pl.lit(ref.underlying).alias("underlying"),
            pl.Series("expiry_ts_ns", [expiry[d] for d in frame.get_column("expiration")], dtype=pl.Int64),
            pl.lit(SOURCE_CONTRACTS).alias("source"),
        ).select(schemas.OPTION_CONTRACTS.columns)
        stats["contracts"] = frame.height
        self._contracts[key] = (frame, dict(stats))
        return self._contracts[key]

    # --- raw tables ---------------------------------------------------------------------------

    def chunks(self, table: str, ref: PartitionRef) -> Iterator[TableChunk]:
        """The rows of raw table ``table`` for partition ``ref``, in chunks of at most
        ``settings.ingest.chunk_rows`` rows (see :class:`ChunkBuffer` for the stats).

        Stats of every table: ``rows``, ``http_requests``, ``http_retries``; trades add
        the counts of :func:`flag_trades`; stock quotes add
        ``quote_sizes_converted_from_round_lots``; option tables add the contract
        counts of :meth:`option_contracts`; vendor greeks add ``snapshot_rows_other_day``
        and ``snapshot_rows_without_time``.

        Raises
        ------
        ValueError
            For a table this source does not fill.
        CalendarError
            If the trade date is not a session.
        PolygonError, SourceFormatError
            See the module doc.
        """
        readers: dict[str, Callable[[PartitionRef, ChunkBuffer], Iterator[TableChunk]]] = {
            "stock_trades": self._stock_trades,
            "stock_quotes": self._stock_quotes,
            "option_trades": self._option_trades,
            "option_quotes": self._option_quotes,
            "option_contracts": self._option_contracts,
            "option_vendor_greeks": self._vendor_greeks,
        }
        if table not in readers:
            raise ValueError(f"{self.name} does not fill table {table!r}; it fills {list(REST_TABLES)}")
        calendar.require_trading_day(ref.trade_date, self._settings.sessions)
        buf = ChunkBuffer(table, self._settings.ingest.chunk_rows, origin=f"{self.name} {table} {ref}")
        before = self.http_stats
        yield from readers[table](ref, buf)
        after = self.http_stats
        buf.stats.update({k: after[k] - before[k] for k in after})
        yield from buf.finish()

    def _day(self, ref: PartitionRef) -> tuple[int, int]:
        return day_bounds_ns(ref.trade_date, self._settings.sessions.timezone)

    def _trade_frames(self, ticker: str, ref: PartitionRef, *, positional: bool) -> Iterator[pl.DataFrame]:
        """``list_trades`` of one ticker over the trade day, as frames of at most a page of rows."""
        start, end = self._day(ref)
        rows = _Rows(
            self._client.list_trades(ticker, timestamp_gte=start, timestamp_lt=end, sort="timestamp",
                                     order="asc", limit=self._poly.page_limit),
            self._transport,
        )
        names = ("ts_ns", "sequence", "price", "size", "exchange", "condition_codes", "correction", "trade_id")
        cols: dict[str, list] = {k: [] for k in names}
        position = 0
        for t in rows:
            cols["ts_ns"].append(rows.integer(t.sip_timestamp, "sip_timestamp"))
            cols["sequence"].append(position if positional else rows.integer(t.sequence_number, "sequence_number"))
            cols["price"].append(rows.number(t.price, "price"))
            cols["size"].append(rows.integer(t.size, "size"))
            cols["exchange"].append(rows.text(t.exchange, "exchange", required=False))
            cols["condition_codes"].append(rows.codes(t.conditions, "conditions"))
            cols["correction"].append(rows.integer(t.correction, "correction", required=False))
            cols["trade_id"].append(rows.text(t.id, "id", required=False))
            position += 1
            if len(cols["ts_ns"]) >= self._poly.page_limit:
                yield self._trade_frame(cols)
                cols = {k: [] for k in names}
        if cols["ts_ns"]:
            yield self._trade_frame(cols)

    @staticmethod
    def _trade_frame(cols: dict[str, list]) -> pl.DataFrame:
        frame = pl.DataFrame(cols, schema={
            "ts_ns": pl.Int64, "sequence": pl.Int64, "price": pl.Float64, "size": pl.Int64, "exchange": pl.String,
            "condition_codes": pl.List(pl.Int64), "correction": pl.Int64, "trade_id": pl.String,
        })
        return frame.with_columns(pl.col("condition_codes").list.eval(pl.element().cast(pl.String)).alias("conditions"))

    def _quote_frames(self, ticker: str, ref: PartitionRef) -> Iterator[pl.DataFrame]:
        """``list_quotes`` of one ticker over the trade day, as frames of at most a page of rows."""
        start, end = self._day(ref)
        rows = _Rows(
            self._client.list_quotes(ticker, timestamp_gte=start, timestamp_lt=end, sort="timestamp",
                                     order="asc", limit=self._poly.page_limit),
            self._transport,
        )
        names = ("ts_ns", "sequence", "bid", "bid_size", "ask", "ask_size", "bid_exchange", "ask_exchange")
        cols: dict[str, list] = {k: [] for k in names}
        for q in rows:
            cols["ts_ns"].append(rows.integer(q.sip_timestamp, "sip_timestamp"))
            cols["sequence"].append(rows.integer(q.sequence_number, "sequence_number"))
            cols["bid"].append(rows.number(q.bid_price, "bid_price", required=False))
            cols["bid_size"].append(rows.integer(q.bid_size, "bid_size", required=False))
            cols["ask"].append(rows.number(q.ask_price, "ask_price", required=False))
            cols["ask_size"].append(rows.integer(q.ask_size, "ask_size", required=False))
            cols["bid_exchange"].append(rows.text(q.bid_exchange, "bid_exchange", required=False))
            cols["ask_exchange"].append(rows.text(q.ask_exchange, "ask_exchange", required=False))
            if len(cols["ts_ns"]) >= self._poly.page_limit:
                yield self._quote_frame(cols)
                cols = {k: [] for k in names}
        if cols["ts_ns"]:
            yield self._quote_frame(cols)

    @staticmethod
    def _quote_frame(cols: dict[str, list]) -> pl.DataFrame:
        return pl.DataFrame(cols, schema={
            "ts_ns": pl.Int64, "sequence": pl.Int64, "bid": pl.Float64, "bid_size": pl.Int64, "ask": pl.Float64,
            "ask_size": pl.Int64, "bid_exchange": pl.String, "ask_exchange": pl.String,
        })

    def _stock_trades(self, ref: PartitionRef, buf: ChunkBuffer) -> Iterator[TableChunk]:
        if ref.underlying in self._poly.index_underlyings:
            return
        table = self.conditions("stocks")
        for frame in self._trade_frames(ref.underlying, ref, positional=False):
            flagged, stats = flag_trades(frame, table)
            buf.stats.update(stats)
            yield from buf.add(flagged.drop("condition_codes", "correction").with_columns(
                pl.lit(ref.underlying).alias("symbol"), pl.lit(ref.underlying).alias("underlying"),
                pl.lit(None, dtype=pl.String).alias("aggressor_side"), pl.lit(SOURCE_TRADES).alias("source"),
            ))

    def _stock_quotes(self, ref: PartitionRef, buf: ChunkBuffer) -> Iterator[TableChunk]:
        if ref.underlying in self._poly.index_underlyings:
            return
        round_lots = ref.trade_date < self._poly.stock_quote_sizes_in_shares_from
        for frame in self._quote_frames(ref.underlying, ref):
            if round_lots:
                frame = frame.with_columns(pl.col("bid_size", "ask_size") * self._poly.round_lot_shares)
                buf.stats["quote_sizes_converted_from_round_lots"] += frame.height
            yield from buf.add(frame.with_columns(
                pl.lit(ref.underlying).alias("symbol"), pl.lit(ref.underlying).alias("underlying"),
                pl.lit(SOURCE_QUOTES).alias("source"),
            ))

    def _contract_identity(self, contract: Mapping[str, Any]) -> list[pl.Expr]:
        return [
            pl.lit(contract["option_symbol"]).alias("option_symbol"),
            pl.lit(contract["underlying"]).alias("underlying"),
            pl.lit(contract["root"]).alias("root"), pl.lit(contract["expiration"], dtype=pl.Date).alias("expiration"),
            pl.lit(contract["strike"], dtype=pl.Float64).alias("strike"), pl.lit(contract["right"]).alias("right"),
        ]

    def _option_trades(self, ref: PartitionRef, buf: ChunkBuffer) -> Iterator[TableChunk]:
        contracts, contract_stats = self.option_contracts(ref)
        buf.stats.update(contract_stats)
        table = self.conditions("options")
        for contract in contracts.iter_rows(named=True):
            for frame in self._trade_frames(contract["option_symbol"], ref, positional=True):
                flagged, stats = flag_trades(frame, table)
                buf.stats.update(stats)
                yield from buf.add(flagged.drop("condition_codes", "correction").with_columns(
                    *self._contract_identity(contract), pl.lit(SOURCE_TRADES).alias("source"),
                ))

    def _option_quotes(self, ref: PartitionRef, buf: ChunkBuffer) -> Iterator[TableChunk]:
        contracts, contract_stats = self.option_contracts(ref)
        buf.stats.update(contract_stats)
        for contract in contracts.iter_rows(named=True):
            for frame in self._quote_frames(contract["option_symbol"], ref):
                yield from buf.add(frame.with_columns(*self._contract_identity(contract),
                                                      pl.lit(SOURCE_QUOTES).alias("source")))

    def _option_contracts(self, ref: PartitionRef, buf: ChunkBuffer) -> Iterator[TableChunk]:
        contracts, contract_stats = self.option_contracts(ref)
        buf.stats.update(contract_stats)
        yield from buf.add(contracts)

    def _vendor_greeks(self, ref: PartitionRef, buf: ChunkBuffer) -> Iterator[TableChunk]:
        """The option chain snapshot (``GET /v3/snapshot/options/{underlying}``) within the
        strike window: greeks, implied volatility, open interest.

        The snapshot is the chain *now*; Polygon keeps no history of it. A row's instant
        is its last quote's ``last_updated`` (the quote the greeks are computed from),
        else the underlying's, else the day bar's; rows whose instant is not on the
        trade date (ET) are counted in ``snapshot_rows_other_day`` and left out, so a
        backfill of past days yields no vendor greeks rather than today's.
        """
        win = self.strike_window(ref)
        params = {
            "expiration_date.gte": win.first_expiration.isoformat(),
            "expiration_date.lte": win.last_expiration.isoformat(),
            "strike_price.gte": round(win.low, 4), "strike_price.lte": round(win.high, 4),
            "limit": self._poly.snapshot_page_limit,
        }
        start, end = self._day(ref)
        rows = _Rows(self._client.list_snapshot_options_chain(ref.underlying, params=params), self._transport)
        names = ("option_symbol", "ts_ns", "sequence", "underlying_price", "implied_volatility", "delta", "gamma",
                 "theta", "vega", "open_interest", "theoretical_value")
        cols: dict[str, list] = {k: [] for k in names}
        position = 0
        for snap in rows:
            details = snap.details
            ticker = rows.text(details.ticker if details is not None else None, "details.ticker")
            instants = (
                snap.last_quote.last_updated if snap.last_quote is not None else None,
                snap.underlying_asset.last_updated if snap.underlying_asset is not None else None,
                snap.day.last_updated if snap.day is not None else None,
            )
            ts = next((rows.integer(v, "last_updated") for v in instants if v is not None), None)
            position += 1
            if ts is None:
                buf.stats["snapshot_rows_without_time"] += 1
                continue
            if not start <= ts < end:
                buf.stats["snapshot_rows_other_day"] += 1
                continue
            greeks = snap.greeks
            cols["option_symbol"].append(ticker)
            cols["ts_ns"].append(ts)
            cols["sequence"].append(position - 1)
            cols["underlying_price"].append(rows.number(
                snap.underlying_asset.price if snap.underlying_asset is not None else None,
                "underlying_asset.price", required=False))
            cols["implied_volatility"].append(
                rows.number(snap.implied_volatility, "implied_volatility", required=False))
            for g in ("delta", "gamma", "theta", "vega"):
                cols[g].append(rows.number(getattr(greeks, g) if greeks is not None else None, f"greeks.{g}",
                                           required=False))
            cols["open_interest"].append(rows.integer(snap.open_interest, "open_interest", required=False))
            cols["theoretical_value"].append(rows.number(snap.fair_market_value, "fmv", required=False))
        frame = pl.DataFrame(cols, schema={
            "option_symbol": pl.String, "ts_ns": pl.Int64, "sequence": pl.Int64,
            **{k: pl.Float64 for k in ("underlying_price", "implied_volatility", "delta", "gamma", "theta", "vega")},
            "open_interest": pl.Int64, "theoretical_value": pl.Float64,
        })
        identity, bad = option_identity(frame.get_column("option_symbol").to_list())
        if bad is not None:
            raise SourceFormatError(self._transport.last_url, None, "details.ticker", f"{bad!r} is not an OCC symbol")
        frame = frame.join(identity, on="option_symbol", how="left").with_columns(
            pl.lit(ref.underlying).alias("underlying"),
            pl.lit(None, dtype=pl.Float64).alias("implied_underlying_price"),
            pl.lit(None, dtype=pl.Float64).alias("rho"),
            pl.lit(SOURCE_SNAPSHOT).alias("source"),
        )
        yield from buf.add(frame)
