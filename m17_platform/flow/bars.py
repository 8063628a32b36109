"""OHLCV and VWAP bars of the underlying, its futures proxy and every option contract.

A bar of length ``L`` (``BarSettings.bar_seconds``, 1 min by default) covers
``[floor(ts_ns / L) L, + L)``, aligned like the flow windows. Over the non-canceled prints
of one instrument in stored (ts_ns, sequence) order: open = first price, high / low =
extreme prices, close = last price, volume = sum of sizes (shares for stock, contracts
for futures and options), VWAP = sum(price x size) / sum(size) (dollars), trades = prints.

Futures bars are also written on the underlying's scale (kind
``futures_underlying_scale``): prices divided by ``UniverseSettings.futures_price_ratio``
of the futures root (ES / 10 = SPY, seed 001), volume unchanged. The root is the symbol
less its month code and year digits (``ESH4`` -> ``ES``).
"""

from __future__ import annotations

import re

import polars as pl

from m17_platform.calendar import NS_PER_SECOND
from m17_platform.ordered import run_starts, run_sums
from m17_platform.schemas import BARS
from m17_platform.settings import DEFAULT, Settings

_FUTURES_ROOT = re.compile(r"^(?P<root>[A-Z0-9]+?)[FGHJKMNQUVXZ]\d{1,2}$")


def futures_root(symbol: str) -> str | None:
    """The root of a futures outright symbol (``ESH4`` -> ``ES``), or None if it is not one."""
    m = _FUTURES_ROOT.match(symbol)
    return m["root"] if m else None


def ohlcv(trades: pl.DataFrame, instrument: str, kind: str, settings: Settings = DEFAULT,
          price_ratio: pl.Expr | None = None) -> pl.DataFrame:
    """Bars of one trade table.

    Parameters
    ----------
    trades : polars.DataFrame
        Prints with ``instrument``, ``underlying``, ``ts_ns``, ``sequence``, ``price``
        (dollars), ``size`` and ``canceled``.
    instrument : str
        Column naming the instrument (``symbol`` / ``option_symbol``).
    kind : str
        Value of the ``kind`` column.
    price_ratio : polars.Expr, optional
        Per-row divisor of the prices (default 1).

    Returns
    -------
    polars.DataFrame
        Columns of :data:`m17_platform.schemas.BARS`, one row per instrument and bar with prints.

    Raises
    ------
    ValueError
        If ``BarSettings.bar_seconds`` is not a positive whole number.
    """
    seconds = settings.bars.bar_seconds
    if int(seconds) != seconds or seconds <= 0:
        raise ValueError(f"BarSettings.bar_seconds must be a positive whole number, got {seconds}")
    length = int(seconds) * NS_PER_SECOND
    live = trades.filter(~pl.col("canceled")).sort([instrument, "ts_ns", "sequence"], maintain_order=True)
    if live.height == 0:
        return pl.from_arrow(BARS.schema.empty_table())
    ratio = price_ratio if price_ratio is not None else pl.lit(1.0)
    live = live.with_columns(ratio.cast(pl.Float64).alias("price_ratio")).with_columns(
        (pl.col("price") / pl.col("price_ratio")).alias("_p"),
        (pl.col("ts_ns") // length * length).alias("bar_start_ns"),
    )
    bars = live.group_by([instrument, "bar_start_ns"], maintain_order=True).agg(
        pl.col("underlying").first(),
        pl.col("_p").first().alias("open"), pl.col("_p").max().alias("high"),
        pl.col("_p").min().alias("low"), pl.col("_p").last().alias("close"),
        pl.col("size").sum().alias("volume"),
        pl.len().cast(pl.Int64).alias("trades"),
        pl.col("price_ratio").first(),
    )
    # sum(price x size) in time order, the same bits on every run (m17_platform.ordered): a
    # bar's prints are one run of rows, and the groups above come in the same order
    live = live.with_columns((pl.col("_p") * pl.col("size")).alias("_notional"))
    notional = run_sums(live, run_starts(live, [instrument, "bar_start_ns"]), ["_notional"]).to_series()
    bars = bars.with_columns((notional / bars.get_column("volume")).alias("vwap"))
    return bars.with_columns(
        pl.lit(kind).alias("kind"), pl.col(instrument).alias("symbol"),
        (pl.col("bar_start_ns") + length).alias("bar_end_ns"),
    ).select(BARS.columns)


def bars(
    stock_trades: pl.DataFrame,
    futures_trades: pl.DataFrame,
    option_trades: pl.DataFrame,
    settings: Settings = DEFAULT,
) -> pl.DataFrame:
    """The ``bars`` rows of a partition.

    Parameters
    ----------
    stock_trades : polars.DataFrame
        ``stock_trades`` or ``stock_trades_enriched`` rows (kind ``stock``).
    futures_trades : polars.DataFrame
        ``futures_trades`` or ``futures_trades_enriched`` rows (kinds ``futures`` and,
        for roots in ``UniverseSettings.futures_price_ratio``, ``futures_underlying_scale``).
    option_trades : polars.DataFrame
        ``option_trades`` or ``option_trades_enriched`` rows (kind ``option``; ``symbol``
        is the OCC symbol).

    Returns
    -------
    polars.DataFrame
        Columns of :data:`m17_platform.schemas.BARS`.
    """
    parts = [
        ohlcv(stock_trades, "symbol", "stock", settings),
        ohlcv(futures_trades, "symbol", "futures", settings),
        ohlcv(option_trades, "option_symbol", "option", settings),
    ]
    ratios = settings.universe.futures_price_ratio
    if futures_trades.height:
        roots = {s: futures_root(s) for s in futures_trades.get_column("symbol").unique().to_list()}
        scaled = {s: ratios[r] for s, r in roots.items() if r in ratios}
        if scaled:
            proxy = futures_trades.filter(pl.col("symbol").is_in(list(scaled)))
            parts.append(ohlcv(proxy, "symbol", "futures_underlying_scale", settings,
                               price_ratio=pl.col("symbol").replace_strict(scaled, return_dtype=pl.Float64)))
    return pl.concat(parts, how="vertical_relaxed")
