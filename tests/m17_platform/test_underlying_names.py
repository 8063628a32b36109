"""Underlying names are tickers: validated before they are registered, and a bad one
registered earlier (from the UI) no longer breaks the end-of-day schedule for everyone."""

import dataclasses
import datetime as dt

import dagster as dg
import pytest

import sensors.underlyings as underlyings_sensor
from assets.partitions import DAY_BY_UNDERLYING
from m17_platform.definitions import defs
from m17_platform.settings import DEFAULT
from m17_platform.symbols import validate_underlying
from resources import CaptureResource
from sensors.schedules import end_of_day, partition_underlyings
from sensors.underlyings import register_underlyings

BAD = ["", " ", "X/Y", "a b", "A|B", "^SPX", "I:SPX", "1ABC", "A=B", "BRK..B", "BRK.", "TOOLONGNAME"]


@pytest.mark.parametrize("name, canonical", [("SPY", "SPY"), ("spy", "SPY"), (" vix ", "VIX"), ("BRK.B", "BRK.B"),
                                             ("bf-b", "BF-B"), ("A", "A"), ("GOOGL", "GOOGL"), ("SPX", "SPX")])
def test_tickers_are_accepted_upper_cased(name, canonical):
    assert validate_underlying(name) == canonical


@pytest.mark.parametrize("name", BAD)
def test_non_tickers_are_refused_with_one_line(name):
    with pytest.raises(ValueError, match="underlying") as info:
        validate_underlying(name)
    assert "\n" not in str(info.value) and repr(name) in str(info.value)


def test_end_of_day_skips_bad_registered_names_and_runs_the_others(tmp_path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", ["SPY", "A|B", "X/Y", "", "spy", "VIX"])
        tue = dt.datetime(2023, 12, 26, 18, 30)
        capture = {"capture": CaptureResource(landing_root=str(tmp_path / "landing"))}
        ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=tue, resources=capture)
        requests = end_of_day(ctx)
        assert [r.partition_key for r in requests] == ["2023-12-26|SPY", "2023-12-26|VIX"]
        # every requested key is a partition of the job, so the tick does not fail
        with dg.partition_loading_context(dynamic_partitions_store=instance):
            assert all(DAY_BY_UNDERLYING.has_partition_key(r.partition_key) for r in requests)
        # as the daemon evaluates it: the tick resolves its run requests against the job's partitions
        tick = end_of_day.evaluate_tick(dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tue, resources=capture, repository_def=defs.get_repository_def()))
        assert [r.partition_key for r in tick.run_requests] == ["2023-12-26|SPY", "2023-12-26|VIX"]


def test_end_of_day_skips_the_tick_when_every_name_is_bad(tmp_path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", ["A|B"])
        ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=dt.datetime(2023, 12, 26, 18, 30),
                                        resources={"capture": CaptureResource(landing_root=str(tmp_path))})
        skip = end_of_day(ctx)
        assert isinstance(skip, dg.SkipReason) and "A|B" in skip.skip_message


def test_partition_underlyings_says_why():
    good, bad = partition_underlyings(["VIX", "A|B", "spy", "SPY"])
    assert good == ["SPY", "VIX"]
    assert set(bad) == {"A|B", "spy"} and "not a ticker" in bad["A|B"] and "canonical" in bad["spy"]


def test_register_underlyings_leaves_out_bad_configured_names(monkeypatch):
    universe = dataclasses.replace(DEFAULT.universe, underlyings=("SPY", "X/Y", "vix"))
    monkeypatch.setattr(underlyings_sensor, "DEFAULT", dataclasses.replace(DEFAULT, universe=universe))
    with dg.instance_for_test() as instance:
        result = register_underlyings(dg.build_sensor_context(instance=instance))
        (request,) = result.dynamic_partitions_requests
        assert list(request.partition_keys) == ["SPY", "VIX"]
