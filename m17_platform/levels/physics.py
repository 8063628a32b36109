"""``level_physics``: barrier, tape, fuel and approach features of every touch.

Every feature of a touch uses data strictly before its decision time (bar start +
``decision_seconds``): the book and prints in [bar start, decision), the book and bars
before the bar start for baselines and approach, gamma rows strictly before the decision.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from m17_platform.levels.approach import approach_features
from m17_platform.levels.barrier import barrier_features
from m17_platform.levels.events import MBO, MBP10_INFERRED, book_arrays, infer_level_events, mbo_level_events
from m17_platform.levels.fuel import fuel_features
from m17_platform.levels.partition import Partition, trade_arrays
from m17_platform.levels.schemas import LEVEL_PHYSICS
from m17_platform.levels.settings import LevelSettings
from m17_platform.levels.tape import tape_features
from m17_platform.levels.universe import es_bars
from m17_platform.schemas import empty_frame

CORE = [
    "touch_id",
    "bar_start_ns",
    "underlying",
    "symbol",
    "decision_ts_ns",
    "level_kind",
    "level_price",
    "level_price_es",
    "known_from_ts_ns",
    "direction",
]


def build_physics(
    touches: pl.DataFrame,
    book: pl.DataFrame | None,
    trades: pl.DataFrame | None,
    bars: pl.DataFrame | None,
    gamma_exposure: pl.DataFrame | None,
    part: Partition | None,
    settings: LevelSettings,
    *,
    mbo: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict]:
    """The ``level_physics`` rows of a partition, one per touch.

    Parameters
    ----------
    touches : :data:`.schemas.LEVEL_TOUCHES` rows
    book : ``raw.futures_mbp10``
    trades : ``enriched.futures_trades_enriched`` (CME aggressor side)
    bars : ``gold.bars`` (the proxy's futures bars: approach, baseline grid)
    gamma_exposure : ``gold.gamma_exposure`` or None (fuel null)
    part : :class:`.partition.Partition`
    settings : LevelSettings
    mbo : optional MBO records of the contract (:func:`.events.mbo_level_events`); when
        given, adds / cancels / fills come from them (``barrier_source`` ``mbo``)

    Returns
    -------
    (polars.DataFrame with the columns of :data:`.schemas.LEVEL_PHYSICS`, counts)
    """
    s = settings
    if touches.height == 0 or part is None:
        return empty_frame(LEVEL_PHYSICS), {"touches": 0}
    tr = trade_arrays(trades, part.symbol)
    bk = book_arrays(book, part.symbol, s.es_tick)
    if mbo is not None and mbo.height:
        events, source = mbo_level_events(mbo, part.symbol, s), MBO
    else:
        events, source = infer_level_events(bk, tr, s), MBP10_INFERRED
    es = es_bars(bars, part.symbol, s)
    bs = es.get_column("bar_start_ns").to_numpy()
    grid = np.arange(bs[0], bs[-1] + s.bar_ns, s.bar_ns, dtype=np.int64) if bs.size else np.empty(0, dtype=np.int64)
    frame = pl.concat(
        [
            touches.select(CORE),
            barrier_features(touches, bk, events, source, tr, grid, s),
            tape_features(touches, tr, s),
            fuel_features(touches, gamma_exposure, s),
            approach_features(touches, es, part.open_ns, s),
        ],
        how="horizontal",
    ).select(LEVEL_PHYSICS.columns)
    stats = {
        "touches": frame.height,
        f"barrier_source/{source}": frame.height,
        "level_events": int(events.shape[0]),
        **_counts(frame, "barrier_state", "state"),
        **_counts(frame, "fuel_effect", "fuel"),
        **_counts(frame, "book_quality", "book_quality"),
        "sweeps": int(frame.get_column("sweep_count").sum()),
    }
    return frame, stats


def _counts(frame: pl.DataFrame, column: str, prefix: str) -> dict:
    values = frame.get_column(column).fill_null("null").value_counts()
    return {f"{prefix}/{k}": int(v) for k, v in values.iter_rows()}
