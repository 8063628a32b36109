"""The capture's Dagster side: the CaptureResource, the capture_batches sensor (cursor,
one run per partition, dynamic underlyings, skips), the landing runs it requests
(executed in-process twice: every batch once, the raw checks ran), and the end_of_day
schedule landing a captured day before the enrichment."""

import datetime as dt
import json
import uuid
from zoneinfo import ZoneInfo

import dagster as dg
import polars as pl
import pytest

from assets.jobs import CAPTURE_LANDING_JOB_NAME
from assets.partitions import DAY_BY_UNDERLYING
from m17_platform import schemas
from m17_platform.capture.compaction import CAPTURED_TABLES, read_ledger
from m17_platform.capture.landing import LandingZone
from m17_platform.definitions import defs
from m17_platform.lake import Lake, PartitionRef
from m17_platform.sources.polygon_ws import Decoder, frame_of
from resources import CaptureResource
from sensors.capture import capture_batches
from sensors.schedules import end_of_day

ET = ZoneInfo("America/New_York")
DAY = dt.date(2022, 5, 20)  # Friday
PREV = dt.date(2022, 5, 19)  # Thursday
SATURDAY = dt.date(2022, 5, 21)
SPY, QQQ = PartitionRef(DAY, "SPY"), PartitionRef(PREV, "QQQ")
CALL = "O:SPY220520C00390000"
# the fixture writes a Saturday batch too (a landing zone may hold one from an older capture,
# which did not check sessions): the sensor must skip it, so this decoder does not check either
DECODER = Decoder(["SPY", "QQQ"], check_sessions=False)


def _ms(day: dt.date, second: int) -> int:
    """Epoch ms ``second`` s after 10:00 ET on ``day``."""
    return int(dt.datetime.combine(day, dt.time(10), ET).timestamp() * 1000) + second * 1000


def batch(table: str, ref: PartitionRef, seconds: range) -> pl.DataFrame:
    """Rows of ``table`` for ``ref`` as the capture decodes them, one per second in ``seconds``."""
    sym = ref.underlying
    events = []
    for s in seconds:
        t = _ms(ref.trade_date, s)
        if table == "stock_trades":
            events.append(("stocks", {"ev": "T", "sym": sym, "t": t, "q": s, "p": 390 + s / 100, "s": 100, "x": 4,
                                      "c": [12], "i": f"st{s}"}))
        elif table == "stock_quotes":
            events.append(("stocks", {"ev": "Q", "sym": sym, "t": t, "q": s, "bp": 389.99, "bs": 3, "ap": 390.01,
                                       "as": 2, "bx": 4, "ax": 11}))
        elif table == "option_trades":
            events.append(("options", {"ev": "T", "sym": CALL, "t": t, "q": s, "p": 1.25, "s": 3, "x": 65,
                                       "c": [209], "i": f"ot{s}"}))
        elif table == "option_quotes":
            events.append(("options", {"ev": "Q", "sym": CALL, "t": t, "q": s, "bp": 1.2, "bs": 10, "ap": 1.3,
                                       "as": 12, "bx": 65, "ax": 302}))
        else:
            events.append(("stocks", {"ev": "AM", "sym": sym, "s": t, "e": t + 60_000, "o": 390.0, "h": 390.2,
                                      "l": 389.9, "c": 390.1, "v": 1000, "vw": 390.05}))
    return frame_of(table, [DECODER.decode(feed, ev).row for feed, ev in events])


def write(root, *batches: tuple[str, PartitionRef, range]) -> list:
    with LandingZone(root) as zone:
        return [zone.write_batch(table, ref, batch(table, ref, seconds)) for table, ref, seconds in batches]


def sensor_context(instance, root, cursor=None):
    return dg.build_sensor_context(instance=instance, cursor=cursor,
                                   resources={"capture": CaptureResource(landing_root=str(root))})


@pytest.fixture
def landing(tmp_path):
    """Two partitions' batches (SPY on a Friday, QQQ the day before), an aggregate and a Saturday batch."""
    root = tmp_path / "landing"
    entries = write(
        root,
        ("stock_trades", SPY, range(0, 3)),      # 1
        ("stock_quotes", SPY, range(0, 3)),      # 2
        ("option_trades", SPY, range(1, 3)),     # 3
        ("ws_aggregates", SPY, range(0, 1)),     # 4: not a raw table
        ("option_quotes", SPY, range(0, 3)),     # 5
        ("stock_trades", QQQ, range(0, 2)),      # 6
        ("stock_trades", PartitionRef(SATURDAY, "SPY"), range(0, 1)),  # 7: no session that day
        ("stock_trades", SPY, range(3, 5)),      # 8
    )
    return root, entries


# --- the resource -----------------------------------------------------------------------


def test_capture_resource_resolves_root_urls_and_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("M17_LANDING_ROOT", str(tmp_path / "env"))
    monkeypatch.setenv("M17_OPTIONS_WS_URL", "ws://127.0.0.1:9000/options")
    monkeypatch.delenv("M17_STOCKS_WS_URL", raising=False)
    default = CaptureResource()
    assert default.root() == tmp_path / "env"
    assert default.urls() == {"stocks": "wss://socket.massive.com/stocks", "options": "ws://127.0.0.1:9000/options"}
    tuned = CaptureResource(landing_root=str(tmp_path / "cfg"), stocks_ws_url="ws://h/stocks", strikes_each_side=5,
                            batch_seconds=1.0)
    settings = tuned.settings()
    assert settings.landing_root == tmp_path / "cfg"
    assert (settings.stocks_ws_url, settings.options_ws_url) == ("ws://h/stocks", "ws://127.0.0.1:9000/options")
    assert (settings.strikes_each_side, settings.batch_seconds, settings.batch_events) == (5, 1.0, 50_000)
    assert tuned.entries() == [] and tuned.gaps() == []  # no landing zone yet
    with pytest.raises(ValueError):
        CaptureResource(batch_events=0)


def test_capture_resource_lists_batches_after_a_sequence_number(landing):
    root, entries = landing
    capture = CaptureResource(landing_root=str(root))
    assert capture.entries() == entries
    assert [e.seq for e in capture.entries(after_seq=6)] == [7, 8]


# --- the sensor -------------------------------------------------------------------------


def test_no_landing_zone_is_a_skip(tmp_path):
    with dg.instance_for_test() as instance:
        result = capture_batches(sensor_context(instance, tmp_path / "nowhere"))
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message == f"no landing zone at {tmp_path / 'nowhere'}"


def test_one_run_per_partition_with_new_batches(landing):
    root, _ = landing
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", ["SPY"])
        result = capture_batches(sensor_context(instance, root))
        assert isinstance(result, dg.SensorResult)
        qqq, spy = result.run_requests
        assert (qqq.run_key, qqq.partition_key, qqq.tags) == (
            "capture:2022-05-19|QQQ:6", "2022-05-19|QQQ", {"m17/trigger": "capture", "m17/batches": "6-6"})
        assert (spy.run_key, spy.partition_key, spy.tags) == (
            "capture:2022-05-20|SPY:8", "2022-05-20|SPY", {"m17/trigger": "capture", "m17/batches": "1-8"})
        config = {"resources": {"market_data": {"config": {"kind": "capture", "landing_root": str(root)}}}}
        assert qqq.run_config == spy.run_config == config
        (add,) = result.dynamic_partitions_requests
        assert (add.partitions_def_name, list(add.partition_keys)) == ("underlying", ["QQQ"])
        assert json.loads(result.cursor) == {"seq": 8}

        again = capture_batches(sensor_context(instance, root, cursor=result.cursor))
        assert isinstance(again, dg.SkipReason)
        assert again.skip_message == f"no new batches in {root} after batch 8"

        write(root, ("option_trades", SPY, range(5, 6)))
        instance.add_dynamic_partitions("underlying", ["QQQ"])
        more = capture_batches(sensor_context(instance, root, cursor=result.cursor))
        (request,) = more.run_requests
        assert (request.run_key, request.tags["m17/batches"]) == ("capture:2022-05-20|SPY:9", "9-9")
        assert more.dynamic_partitions_requests == []
        assert json.loads(more.cursor) == {"seq": 9}


def test_aggregates_and_non_trading_days_only_advance_the_cursor(tmp_path):
    root = tmp_path / "landing"
    write(root, ("ws_aggregates", SPY, range(0, 2)))
    with dg.instance_for_test() as instance:
        result = capture_batches(sensor_context(instance, root))
        assert result.run_requests == [] and json.loads(result.cursor) == {"seq": 1}
        assert "only ws_aggregates" in result.skip_reason.skip_message
        write(root, ("stock_trades", PartitionRef(SATURDAY, "SPY"), range(0, 2)))
        weekend = capture_batches(sensor_context(instance, root, cursor=result.cursor))
        assert weekend.run_requests == [] and json.loads(weekend.cursor) == {"seq": 2}
        assert "2022-05-21|SPY: not a trading day" in weekend.skip_reason.skip_message


def test_a_partition_with_a_run_in_flight_waits(tmp_path):
    root = tmp_path / "landing"
    write(root, ("stock_trades", QQQ, range(0, 1)), ("stock_trades", SPY, range(0, 1)),
          ("stock_quotes", QQQ, range(0, 1)))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", ["SPY", "QQQ"])
        running = dg.DagsterRun(job_name=CAPTURE_LANDING_JOB_NAME, run_id=str(uuid.uuid4()),
                                tags={"dagster/partition": "2022-05-20|SPY"}, status=dg.DagsterRunStatus.STARTED)
        instance.add_run(running)
        result = capture_batches(sensor_context(instance, root))
        (request,) = result.run_requests
        assert request.partition_key == "2022-05-19|QQQ" and request.tags["m17/batches"] == "1-3"
        assert json.loads(result.cursor) == {"seq": 1}  # SPY's batch 2 is looked at again
        instance.report_run_failed(running)  # no longer in flight
        later = capture_batches(sensor_context(instance, root, cursor=result.cursor))
        assert [r.run_key for r in later.run_requests] == ["capture:2022-05-19|QQQ:3", "capture:2022-05-20|SPY:2"]
        assert json.loads(later.cursor) == {"seq": 3}


# --- the landing runs, executed in-process ----------------------------------------------


def test_requested_runs_land_every_batch_once_and_run_the_raw_checks(landing, tmp_path):
    root, entries = landing
    lake = Lake(tmp_path / "lake")
    job = defs.resolve_job_def(CAPTURE_LANDING_JOB_NAME)
    assert job.partitions_def == DAY_BY_UNDERLYING
    raw_keys = {dg.AssetKey(["raw", t]) for t in CAPTURED_TABLES}
    n_checks = len([k for k in defs.resolve_asset_graph().asset_check_keys if k.asset_key in raw_keys])
    with dg.instance_for_test() as instance:
        result = capture_batches(sensor_context(instance, root))
        for add in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
        spy = next(r for r in result.run_requests if r.partition_key == "2022-05-20|SPY")
        run_config = {"resources": {**spy.run_config["resources"], "lake": {"config": {"root": str(lake.root)}}}}
        frames = []
        for attempt in range(2):  # the same request twice: the second lands nothing new
            run = job.execute_in_process(partition_key=spy.partition_key, run_config=run_config,
                                         instance=instance, tags=spy.tags)
            assert run.success, attempt
            assert {m.asset_key for m in run.get_asset_materialization_events()} == raw_keys
            evaluations = run.get_asset_check_evaluations()
            assert len(evaluations) == n_checks
            assert {e.asset_key for e in evaluations} == raw_keys
            for ev in evaluations:
                if ev.severity == dg.AssetCheckSeverity.ERROR:
                    assert ev.passed, (attempt, ev.asset_key, ev.check_name, ev.metadata)
            frames.append({t: lake.read(schemas.table(t), SPY, verify=True) for t in CAPTURED_TABLES})
            assert instance.get_run_by_id(run.run_id).tags["m17/batches"] == "1-8"

        first, second = frames
        for table in CAPTURED_TABLES:
            landed = [e for e in entries if e.table == table and e.ref == SPY]
            assert first[table].height == sum(e.rows for e in landed) > 0, table
            assert second[table].equals(first[table]), table
            assert set(read_ledger(lake, table, SPY)) == {e.batch_id for e in landed}, table
            spec = schemas.table(table)
            assert lake.manifest(spec, SPY).stats["batches_skipped"] == len(landed), table
        assert first["stock_trades"]["trade_id"].to_list() == ["st0", "st1", "st2", "st3", "st4"]
        # the QQQ and Saturday batches went nowhere near the SPY partition
        assert not lake.exists(schemas.table("stock_trades"), QQQ)


# --- the end-of-day schedule ------------------------------------------------------------


def test_end_of_day_lands_a_captured_day_from_the_landing_zone(landing, tmp_path):
    root, _ = landing
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", ["SPY", "VIX"])
        evening = dt.datetime(2022, 5, 20, 18, 30)
        ctx = dg.build_schedule_context(instance=instance, scheduled_execution_time=evening,
                                        resources={"capture": CaptureResource(landing_root=str(root))})
        spy, vix = end_of_day(ctx)
        assert (spy.partition_key, spy.run_key) == ("2022-05-20|SPY", "end_of_day:2022-05-20|SPY")
        assert spy.run_config == {"resources": {"market_data": {"config": {"kind": "capture",
                                                                           "landing_root": str(root)}}}}
        assert spy.tags == {"m17/trigger": "end_of_day", "m17/batches": "1-8"}
        assert (vix.partition_key, vix.run_config, vix.tags) == ("2022-05-20|VIX", {}, {"m17/trigger": "end_of_day"})

        nothing = dg.build_schedule_context(instance=instance, scheduled_execution_time=evening,
                                            resources={"capture": CaptureResource(landing_root=str(tmp_path / "no"))})
        assert [r.run_config for r in end_of_day(nothing)] == [{}, {}]
