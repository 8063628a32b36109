"""Three consecutive XNYS sessions of the seeded synthetic SPY day (0.2 % of full size; the
ES book keeps its rows) materialized through the main job in-process, oldest first, into
one temporary lake: the level tables materialize on each day, ``no_lookahead`` passes on
each, and SMA_200 (200 two-minute closes, more than one 390-minute session holds) is warm
on the third day only because the earlier partitions are in the lake."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from assets.partitions import partition_key
from m17_platform import calendar
from m17_platform.definitions import defs
from m17_platform.lake import Lake, PartitionRef
from m17_platform.levels.schemas import LEVEL_TABLES, LEVELS
from m17_platform.schemas import GOLD

pytestmark = pytest.mark.slow
SCALE = 0.002
DAYS = calendar.trading_days(dt.date(2025, 11, 10), dt.date(2025, 11, 21))[:3]
LEVEL_KEYS = [dg.AssetKey([GOLD, name]) for name in LEVEL_TABLES]


def _selection() -> list[dg.AssetKey]:
    """The level tables and everything upstream of them (no flow windows, alerts, report)."""
    graph = defs.resolve_asset_graph()
    return sorted(dg.AssetSelection.assets(*LEVEL_KEYS).upstream().resolve(graph), key=lambda k: k.to_string())


@pytest.fixture(scope="module")
def three_days(tmp_path_factory):
    root = tmp_path_factory.mktemp("three_days")
    config = {"resources": {
        "lake": {"config": {"root": str(root / "lake"), "reports_root": str(root / "reports")}},
        "market_data": {"config": {"kind": "synthetic", "synthetic_scale": SCALE}},
    }}
    runs = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", ["SPY"])
        job = defs.resolve_job_def("main")
        selection = _selection()
        for day in DAYS:
            result = job.execute_in_process(partition_key=partition_key(PartitionRef(day, "SPY")), instance=instance,
                                            asset_selection=selection, run_config=config, raise_on_error=False)
            checks = {f"{e.asset_key.path[-1]}.{e.check_name}": e.passed for e in result.get_asset_check_evaluations()}
            runs[day] = (result.success, {e.asset_key for e in result.get_asset_materialization_events()}, checks)
    return Lake(root / "lake"), runs


def test_the_days_are_consecutive_sessions():
    assert DAYS == [dt.date(2025, 11, 10), dt.date(2025, 11, 11), dt.date(2025, 11, 12)]


def test_level_tables_materialize_and_no_lookahead_passes_on_each_day(three_days):
    lake, runs = three_days
    for day, (success, materialized, checks) in runs.items():
        assert success, day
        assert set(LEVEL_KEYS) <= {k for k in materialized}, day
        assert checks["level_signals.no_lookahead"] is True, (day, checks)
        assert checks["level_signals.es_book"] is True, (day, checks)
        assert checks["level_signals.labels_after_decision"] is True, (day, checks)
        ref = PartitionRef(day, "SPY")
        assert lake.manifest(LEVEL_TABLES["level_signals"], ref).rows > 0, day
        assert lake.read(LEVELS, ref).filter(pl.col("level_kind") == "ROUND").height > 0, day


def _sma(lake: Lake, day: dt.date) -> pl.DataFrame:
    return lake.read(LEVELS, PartitionRef(day, "SPY")).filter(pl.col("level_kind") == "SMA_200")


def test_sma_200_is_warm_on_the_third_day_from_the_earlier_partitions(three_days):
    lake, _ = three_days
    first, third = _sma(lake, DAYS[0]), _sma(lake, DAYS[2])
    assert first.height == 0 or first.get_column("level_price").null_count() == first.height
    assert third.height > 0 and third.get_column("level_price").drop_nulls().len() > 0
    # warm from the start of the session: the two earlier days hold 390 two-minute closes
    bars = lake.read(LEVEL_TABLES["levels"], PartitionRef(DAYS[2], "SPY"))
    assert set(third.get_column("bar_start_ns")) == set(bars.get_column("bar_start_ns"))
    # known before its bar, from closes of the earlier partitions (their instants precede the day)
    assert (third.get_column("known_from_ts_ns") <= third.get_column("bar_start_ns")).all()
