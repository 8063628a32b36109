"""Every definition loads, and the graph has what the UI must show."""

import datetime as dt

import dagster as dg

from assets.partitions import DAY_BY_UNDERLYING, TRADING_DAYS, partition_ref
from m17_platform.definitions import defs
from m17_platform.schemas import ENRICHED_TABLES, GOLD_TABLES, RAW_TABLES
from resources import CaptureResource
from sensors.schedules import end_of_day
from sensors.underlyings import register_underlyings


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == (
        {f"raw/{t}" for t in RAW_TABLES} | {f"enriched/{t}" for t in ENRICHED_TABLES}
        | {f"gold/{t}" for t in GOLD_TABLES} | {"gold/daily_report"}
    )
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("raw/option_quotes", "bid_le_ask") in checks
    assert ("raw/stock_trades", "in_session") in checks
    assert all(("raw/" + t, "schema") in checks for t in RAW_TABLES)
    assert ("enriched/option_quote_greeks", "vendor_delta") in checks
    assert ("enriched/futures_trades_enriched", "aggressor_vs_vendor") in checks
    # data flows raw -> enriched -> gold
    upstream = {k.to_user_string() for k in graph.get(dg.AssetKey(["enriched", "option_trade_greeks"])).parent_keys}
    assert "enriched/option_trades_enriched" in upstream and "raw/rates" in upstream
    assert defs.resolve_job_def("main").partitions_def == DAY_BY_UNDERLYING
    assert {s.name for s in defs.sensors} == {"register_underlyings", "capture_batches"}
    assert {s.name for s in defs.schedules} == {"end_of_day"}


def test_trading_day_partitions_skip_weekends_and_holidays():
    assert TRADING_DAYS.has_partition_key("2023-12-26")
    assert not TRADING_DAYS.has_partition_key("2023-12-25")  # Christmas
    assert not TRADING_DAYS.has_partition_key("2023-12-23")  # Saturday
    assert not TRADING_DAYS.has_partition_key("2016-07-04")
    assert str(partition_ref("2023-12-26|SPY")) == "2023-12-26|SPY"


def test_register_underlyings_sensor_adds_configured_underlyings():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", ["SPY"])
        result = register_underlyings(dg.build_sensor_context(instance=instance))
        (request,) = result.dynamic_partitions_requests
        assert request.partitions_def_name == "underlying"
        assert set(request.partition_keys) == {"VIX", "A", "AMZN"}
        instance.add_dynamic_partitions("underlying", list(request.partition_keys))
        again = register_underlyings(dg.build_sensor_context(instance=instance))
        assert isinstance(again, dg.SkipReason)


def test_end_of_day_schedule_requests_one_run_per_underlying_on_trading_days(tmp_path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", ["SPY", "VIX"])
        tue = dt.datetime(2023, 12, 26, 18, 30)
        capture = {"capture": CaptureResource(landing_root=str(tmp_path / "landing"))}
        ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=tue, resources=capture)
        requests = end_of_day(ctx)
        assert [r.partition_key for r in requests] == ["2023-12-26|SPY", "2023-12-26|VIX"]
        assert requests[0].run_key == "end_of_day:2023-12-26|SPY"
        holiday = dg.build_schedule_context(instance=instance, scheduled_execution_time=dt.datetime(2023, 12, 25, 18, 30),
                                            resources=capture)
        assert isinstance(end_of_day(holiday), dg.SkipReason)
