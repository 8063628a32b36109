"""The partition a level computation runs on: trade date, underlying, the futures
contract used as its proxy, the regular session, and the inputs as numpy arrays.

The proxy contract is chosen by a calendar rule, never by the day's volume (which would
depend on the future): the nearest quarterly outright of a root serving the underlying
(``UniverseSettings.futures_proxies``) that expires more than
``LevelSettings.futures_roll_days`` after the trade date; if that contract has no rows,
the present outright with the nearest such expiry, else the latest one.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from m17_platform import calendar
from m17_platform.flow.bars import futures_root
from m17_platform.levels.settings import LevelSettings
from m17_platform.settings import Settings

MONTH_CODES = "FGHJKMNQUVXZ"
_OUTRIGHT = re.compile(r"^(?P<root>[A-Z0-9]+?)(?P<month>[FGHJKMNQUVXZ])(?P<year>\d{1,2})$")


@dataclass(frozen=True)
class Partition:
    """One trade date x underlying, as the level builders see it.

    trade_date : the partition's trade date.
    underlying : its underlying (SPY).
    symbol : the futures contract used (ESZ5), None when the partition has none.
    root : its root (ES).
    open_ns, close_ns : regular session open / close (ns UTC, exchange calendar).
    fallback_ratio : ES / SPY used where no ratio is measured.
    timezone : the exchange's wall clock (``SessionSettings.timezone``) for wall-clock settings.
    """

    trade_date: dt.date
    underlying: str
    symbol: str | None
    root: str | None
    open_ns: int
    close_ns: int
    fallback_ratio: float
    timezone: str = "America/New_York"


def third_friday(year: int, month: int) -> dt.date:
    """The third Friday of a month (the quarterly equity index futures expiry)."""
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def contract_expiry(symbol: str, trade_date: dt.date) -> dt.date | None:
    """Expiry (third Friday) of an outright such as ``ESH4``: the year digit resolves to
    the first such year not more than one year before the trade date; None if the symbol
    is not an outright."""
    m = _OUTRIGHT.match(symbol)
    if m is None:
        return None
    digits = m["year"]
    base = 10 ** len(digits)
    year = trade_date.year - (trade_date.year % base) + int(digits)
    if year < trade_date.year - 1:
        year += base
    return third_friday(year, MONTH_CODES.index(m["month"]) + 1)


def choose_symbol(
    symbols: list[str], trade_date: dt.date, underlying: str, lvl: LevelSettings, base: Settings
) -> str | None:
    """The proxy contract among ``symbols`` (see the module docstring), or None."""
    proxies = base.universe.futures_proxies
    found = []
    for s in sorted(set(symbols)):
        root = futures_root(s)
        expiry = contract_expiry(s, trade_date) if root else None
        if root is not None and proxies.get(root) == underlying and expiry is not None:
            found.append((expiry, s))
    if not found:
        return None
    roll = trade_date + dt.timedelta(days=lvl.futures_roll_days)
    live = sorted(x for x in found if x[0] > roll)
    return live[0][1] if live else max(found)[1]


def _symbols(inputs: dict[str, pl.DataFrame]) -> list[str]:
    out: list[str] = []
    for name in ("futures_trades_enriched", "futures_mbp10"):
        frame = inputs.get(name)
        if frame is not None and frame.height:
            out += frame.get_column("symbol").unique().to_list()
    bars = inputs.get("bars")
    if bars is not None and bars.height:
        out += bars.filter(pl.col("kind") == "futures").get_column("symbol").unique().to_list()
    return out


def _first_value(inputs: dict[str, pl.DataFrame], column: str) -> object | None:
    for name in ("futures_mbp10", "futures_trades_enriched", "bars", "stock_quotes"):
        frame = inputs.get(name)
        if frame is not None and frame.height and column in frame.columns:
            return frame.get_column(column).min() if column == "ts_ns" else frame.get_column(column)[0]
    return None


def resolve_partition(
    inputs: dict[str, pl.DataFrame],
    lvl: LevelSettings,
    base: Settings,
    trade_date: dt.date | None = None,
    underlying: str | None = None,
) -> Partition | None:
    """The :class:`Partition` of ``inputs``; None when there is nothing to infer it from.

    ``trade_date`` defaults to the CME trade date of the earliest futures row (or the
    New York date of the earliest quote); ``underlying`` to the ``underlying`` column of
    the futures rows.

    Raises
    ------
    CalendarError
        If the trade date is not a session of the equity calendar.
    """
    if underlying is None:
        underlying = _first_value(inputs, "underlying")
    if trade_date is None:
        first = _first_value(inputs, "ts_ns")
        if first is None:
            return None
        trade_date = calendar.futures_trade_date(int(first), base.sessions)
    if underlying is None:
        return None
    open_ns, close_ns = calendar.session_open_close_ns(trade_date, base.sessions)
    symbol = choose_symbol(_symbols(inputs), trade_date, str(underlying), lvl, base)
    root = futures_root(symbol) if symbol else None
    ratio = lvl.fallback_ratio
    if ratio is None:
        ratio = base.universe.futures_price_ratio.get(root or "", 10.0)
    return Partition(
        trade_date, str(underlying), symbol, root, int(open_ns), int(close_ns), float(ratio), base.sessions.timezone
    )


def side_sign(frame: pl.DataFrame) -> np.ndarray:
    """+1 buyer-initiated, -1 seller-initiated, 0 unknown, per print: CME's aggressor side
    (``aggressor_side`` B / S) where given, else the platform's rule (``side``)."""
    agg = frame.get_column("aggressor_side") if "aggressor_side" in frame.columns else None
    rule = frame.get_column("side").cast(pl.String) if "side" in frame.columns else None
    exprs = pl.DataFrame(
        {
            "a": agg if agg is not None else pl.Series([None] * frame.height, dtype=pl.String),
            "r": rule if rule is not None else pl.Series([None] * frame.height, dtype=pl.String),
        }
    )
    out = exprs.select(
        pl.when(pl.col("a") == "B")
        .then(1)
        .when(pl.col("a") == "S")
        .then(-1)
        .when(pl.col("a").is_null() & (pl.col("r") == "buy"))
        .then(1)
        .when(pl.col("a").is_null() & (pl.col("r") == "sell"))
        .then(-1)
        .otherwise(0)
        .cast(pl.Int8)
    ).to_series()
    return out.to_numpy()


@dataclass(frozen=True)
class Trades:
    """The proxy contract's non-canceled prints in (ts_ns, sequence) order, as arrays:
    ts (int64 ns), seq (int64), price (float64 ES points), size (int64 contracts), side
    (int8: +1 buy, -1 sell, 0 unknown)."""

    ts: np.ndarray
    seq: np.ndarray
    price: np.ndarray
    size: np.ndarray
    side: np.ndarray


def trade_arrays(trades: pl.DataFrame | None, symbol: str | None) -> Trades:
    """:class:`Trades` of ``futures_trades_enriched`` (or ``futures_trades``) rows."""
    if trades is None or symbol is None or trades.height == 0:
        e = np.empty(0, dtype=np.int64)
        return Trades(e, e.copy(), np.empty(0), e.copy(), np.empty(0, dtype=np.int8))
    t = trades.filter((pl.col("symbol") == symbol) & ~pl.col("canceled")).sort(
        ["ts_ns", "sequence"], maintain_order=True
    )
    return Trades(
        t.get_column("ts_ns").to_numpy(),
        t.get_column("sequence").to_numpy(),
        t.get_column("price").cast(pl.Float64).to_numpy(),
        t.get_column("size").cast(pl.Int64).to_numpy(),
        side_sign(t),
    )
