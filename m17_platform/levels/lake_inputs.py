"""The level chain's inputs read from the lake: one partition's tables, and the SMA
history from its underlying's partitions of the sessions just before it (what the
``level_physics_chain`` asset, ``m17 signals`` and ``m17 validate signals`` all read, so
they compute the same).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from m17_platform import calendar
from m17_platform.lake import Lake, PartitionRef
from m17_platform.levels import checks as level_checks
from m17_platform.levels.settings import LevelSettings
from m17_platform.schemas import table

WARMUP_INPUTS = ("bars", "futures_mbp10", "stock_quotes")
"""Tables of an earlier partition the SMA history is computed from (:func:`~.asof.sma_history_of`)."""


def read_partition_inputs(store: Lake, ref: PartitionRef,
                          names: Sequence[str] = level_checks.INPUTS) -> dict[str, pl.DataFrame | None]:
    """The partition's input tables by name, each read with its checksums verified.

    Parameters
    ----------
    store : the lake
    ref : the partition
    names : table names (default :data:`.checks.INPUTS`)

    Returns
    -------
    dict of name -> polars.DataFrame with the table's schema, or None where the lake has
    no such partition (the chain counts it as empty).

    Raises
    ------
    LakeError
        When a partition is there but its manifest is broken or a file does not match
        its checksum.
    """
    return {name: store.read(table(name), ref) if store.exists(table(name), ref) else None for name in names}


def earlier_partitions(store: Lake, ref: PartitionRef, settings: LevelSettings) -> list[PartitionRef]:
    """The partitions of ``ref``'s underlying with ``gold.bars`` in the lake among the
    ``settings.sma_warmup_partitions`` equity-calendar sessions just before its trade date,
    oldest first. Only those sessions: an older partition (the lake may hold a day from
    years before) would put a price level of another time into the moving average.
    """
    n = int(settings.sma_warmup_partitions)
    if n <= 0:
        return []
    day = ref.trade_date
    sessions = set(calendar.trading_days(day - dt.timedelta(days=7 * n + 14), day - dt.timedelta(days=1))[-n:])
    return [r for r in store.partitions(table("bars")) if r.underlying == ref.underlying and r.trade_date in sessions]


def level_inputs(store: Lake, ref: PartitionRef, settings: LevelSettings | None = None) -> dict[str, pl.DataFrame]:
    """The chain's inputs for ``ref`` (:func:`read_partition_inputs`), with ``sma_history``
    from the earlier partitions :func:`earlier_partitions` finds (:func:`.checks.read_inputs`).

    Parameters
    ----------
    store : the lake
    ref : the partition
    settings : LevelSettings (defaults when None)

    Returns
    -------
    dict of name -> polars.DataFrame or None (keys of :data:`.checks.INPUTS`, plus
    ``sma_history`` when an earlier partition has futures bars).

    Raises
    ------
    LakeError
        As :func:`read_partition_inputs`.
    """
    settings = settings or LevelSettings()
    history = [read_partition_inputs(store, r, WARMUP_INPUTS) for r in earlier_partitions(store, ref, settings)]
    own = read_partition_inputs(store, ref)
    return level_checks.read_inputs(own.__getitem__, history)
