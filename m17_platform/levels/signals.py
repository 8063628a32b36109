"""``level_signals``: touches in the critical zone with their physics and outcome
(identity, level context, barrier, tape, fuel, approach, outcome), plus the decision time and the ES / SPY ratio used with its source."""

from __future__ import annotations

import uuid

import polars as pl

from m17_platform.errors import SchemaError
from m17_platform.levels.partition import Partition
from m17_platform.levels.schemas import LEVEL_PHYSICS, LEVEL_SIGNALS, OUTCOME_LABELS
from m17_platform.schemas import empty_frame

SIGNAL_NAMESPACE = uuid.UUID("6f1b3c2e-52a4-4c1f-9d7e-0a17c0de5e11")
"""Namespace of the signals' UUID5 ids (fixed: the same touch has the same id on every run)."""


def event_id(touch_id: str) -> str:
    """The signal id of a touch: UUID5 of its touch id."""
    return str(uuid.uuid5(SIGNAL_NAMESPACE, touch_id))


def build_level_signals(
    touches: pl.DataFrame, physics: pl.DataFrame, labels: pl.DataFrame, part: Partition | None
) -> tuple[pl.DataFrame, dict]:
    """The ``level_signals`` rows: ``touches`` with ``critical`` joined to ``physics`` and
    ``labels`` on ``touch_id``.

    Parameters
    ----------
    touches, physics, labels : :data:`.schemas.LEVEL_TOUCHES`, :data:`.schemas.LEVEL_PHYSICS`,
        :data:`.schemas.OUTCOME_LABELS` rows of one partition
    part : :class:`.partition.Partition`

    Returns
    -------
    (polars.DataFrame with the columns of :data:`.schemas.LEVEL_SIGNALS`, counts)

    Raises
    ------
    SchemaError
        If a critical touch has no physics or label row (the tables do not belong together).
    """
    crit = touches.filter(pl.col("critical"))
    if crit.height == 0 or part is None:
        return empty_frame(LEVEL_SIGNALS), {"signals": 0}
    phys_cols = [c for c in LEVEL_PHYSICS.columns if c not in crit.columns or c == "touch_id"]
    label_cols = [c for c in OUTCOME_LABELS.columns if c not in crit.columns or c == "touch_id"]
    frame = crit.join(physics.select(phys_cols), on="touch_id", how="left", maintain_order="left").join(
        labels.select(label_cols), on="touch_id", how="left", maintain_order="left"
    )
    missing = frame.filter(pl.col("barrier_source").is_null() | pl.col("label_status").is_null())
    if missing.height:
        raise SchemaError(
            "level_signals",
            "level_touches / level_physics / outcome_labels",
            f"touch {missing.item(0, 'touch_id')!r} has no physics or label row",
        )
    ids = pl.Series("event_id", [event_id(t) for t in frame.get_column("touch_id").to_list()], dtype=pl.String)
    frame = (
        frame.with_columns(
            ids,
            pl.col("bar_start_ns").alias("ts_ns"),
            pl.lit(part.trade_date).alias("date"),
            pl.col("underlying").alias("symbol"),
            pl.lit(part.symbol).alias("futures_symbol"),
            pl.col("close").alias("spot"),
        )
        .select(LEVEL_SIGNALS.columns)
        .sort(list(LEVEL_SIGNALS.sort_key))
    )
    stats = {
        "signals": frame.height,
        **{f"outcome/{k}": int(v) for k, v in frame.get_column("outcome").fill_null("null").value_counts().iter_rows()},
        **{
            f"state/{k}": int(v)
            for k, v in frame.get_column("barrier_state").fill_null("null").value_counts().iter_rows()
        },
    }
    return frame, stats
