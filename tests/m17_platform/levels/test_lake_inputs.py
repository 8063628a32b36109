"""The chain's inputs from the lake: the SMA warms up from the sessions just before the
partition only, never from an older partition the lake happens to hold."""

import datetime as dt

from m17_platform import schemas
from m17_platform.lake import Lake, PartitionRef
from m17_platform.levels.lake_inputs import earlier_partitions, level_inputs
from m17_platform.levels.settings import LevelSettings

S = LevelSettings()


def _bars(lake: Lake, *days: dt.date, underlying: str = "SPY") -> None:
    for day in days:
        lake.write(schemas.BARS, PartitionRef(day, underlying), schemas.empty_frame(schemas.BARS), source="test")


def test_warm_up_partitions_are_the_sessions_just_before(tmp_path):
    lake = Lake(tmp_path / "lake")
    ref = PartitionRef(dt.date(2025, 11, 10), "SPY")  # a Monday
    _bars(lake, dt.date(2023, 12, 26), dt.date(2025, 11, 6), dt.date(2025, 11, 12))
    _bars(lake, dt.date(2025, 11, 7), underlying="QQQ")
    # Friday 11-07 is missing for SPY: Thursday alone, not the 2023 day two years before
    assert earlier_partitions(lake, ref, S) == [PartitionRef(dt.date(2025, 11, 6), "SPY")]
    _bars(lake, dt.date(2025, 11, 7))
    assert earlier_partitions(lake, ref, S) == [PartitionRef(dt.date(2025, 11, 6), "SPY"),
                                                PartitionRef(dt.date(2025, 11, 7), "SPY")]
    assert earlier_partitions(lake, ref, LevelSettings(sma_warmup_partitions=0)) == []


def test_level_inputs_name_missing_tables_none_and_skip_an_empty_history(tmp_path):
    lake = Lake(tmp_path / "lake")
    ref = PartitionRef(dt.date(2025, 11, 10), "SPY")
    _bars(lake, dt.date(2025, 11, 7), dt.date(2025, 11, 10))
    inputs = level_inputs(lake, ref, S)
    assert inputs["bars"] is not None and inputs["bars"].height == 0
    assert inputs["futures_mbp10"] is None and inputs["gamma_exposure"] is None
    assert "sma_history" not in inputs  # the earlier day has no futures bars
