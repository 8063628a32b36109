"""``level_touches``: which levels each bar touched.

A level at price ``L`` (SPY scale) is touched by the bar when
``low - touch_band <= L <= high + touch_band`` (the bar's ES prices converted with the
bar's ratio, the same ratio as the level's). Direction: UP when the close is below the
level (price testing it from below, resistance), else DOWN (support). The critical zone
is ``|close - L| <= critical_zone``. One touch per (bar, level); the decision time is
``bar start + decision_seconds``, when the bar's close is known.
"""

from __future__ import annotations

import polars as pl

from m17_platform.levels.convert import convert
from m17_platform.levels.schemas import LEVEL_TOUCHES
from m17_platform.levels.settings import LevelSettings
from m17_platform.levels.universe import es_bars
from m17_platform.schemas import empty_frame

EPS = 1e-9
"""Tolerance of the band and zone comparisons (dollars): a level exactly on the edge counts."""


def touch_ids(symbol: pl.Expr, bar_start: pl.Expr, kind: pl.Expr, price: pl.Expr) -> pl.Expr:
    """``symbol:bar_start_ns:kind:price`` with the price to 4 decimals: one id per (bar, level)."""
    return pl.format("{}:{}:{}:{}", symbol, bar_start, kind, price.round(4).cast(pl.String)).alias("touch_id")


def build_touches(
    levels: pl.DataFrame, bars: pl.DataFrame | None, settings: LevelSettings
) -> tuple[pl.DataFrame, dict]:
    """The ``level_touches`` rows of a partition.

    Parameters
    ----------
    levels : polars.DataFrame
        :data:`.schemas.LEVELS` rows (:func:`.universe.build_levels`): the level, its ES
        price and the bar's ratio.
    bars : polars.DataFrame
        ``gold.bars`` (kind ``futures`` of the levels' contract).
    settings : LevelSettings

    Returns
    -------
    (polars.DataFrame with the columns of :data:`.schemas.LEVEL_TOUCHES`, counts)
    """
    lvl = settings
    if levels.height == 0:
        return empty_frame(LEVEL_TOUCHES), {"touches": 0, "critical": 0}
    symbol = levels.item(0, "symbol")
    es = es_bars(bars, symbol, lvl).select("bar_start_ns", "open", "high", "low", "close")
    ratio = pl.col("es_spy_ratio")
    frame = (
        levels.join(es, on="bar_start_ns", how="inner")
        .with_columns(*[convert(pl.col(c), ratio, to="spy").alias(c) for c in ("open", "high", "low", "close")])
        .filter(
            (pl.col("level_price") >= pl.col("low") - lvl.touch_band - EPS)
            & (pl.col("level_price") <= pl.col("high") + lvl.touch_band + EPS)
        )
        .with_columns(
            pl.when(pl.col("close") < pl.col("level_price"))
            .then(pl.lit("UP"))
            .otherwise(pl.lit("DOWN"))
            .alias("direction"),
            (pl.col("close") - pl.col("level_price")).abs().alias("distance"),
            (pl.col("bar_start_ns") + lvl.decision_ns).alias("decision_ts_ns"),
            touch_ids(pl.col("symbol"), pl.col("bar_start_ns"), pl.col("level_kind"), pl.col("level_price")),
        )
        .with_columns((pl.col("distance") <= lvl.critical_zone + EPS).alias("critical"))
    )
    frame = frame.select(LEVEL_TOUCHES.columns).sort(list(LEVEL_TOUCHES.sort_key))
    stats = {
        "touches": frame.height,
        "critical": int(frame.get_column("critical").sum()),
        **{f"kind/{k}": int(v) for k, v in frame.get_column("level_kind").value_counts().iter_rows()},
    }
    return frame, stats
