"""The capture against ``replay serve`` over real sockets on 127.0.0.1: a real sample day
lands exactly; a dropped connection reconnects, resubscribes and records a gap;
malformed frames are counted and kept; the metrics endpoint shows the gauges."""

import dataclasses
import datetime as dt
import json
import urllib.request

import polars as pl
import pytest

from m17_platform import ingest, schemas
from m17_platform.capture.compaction import LandingSource
from m17_platform.capture.landing import LandingZone, read_gaps, read_manifest, read_rejects
from m17_platform.capture.metrics import CaptureMetrics
from m17_platform.capture.runner import Capture
from m17_platform.lake import Lake, PartitionRef


def land(landing_root, lake: Lake, kit) -> None:
    source = LandingSource(landing_root, lake)
    for table in kit.CAPTURED:
        ingest.ingest_table(lake, source, table, kit.VIX_DAY)


def expected_rows(vix_lake, kit) -> int:
    return sum(kit.partition(vix_lake, t).height for t in kit.CAPTURED)


def test_capture_of_a_replayed_day_lands_that_day_exactly(vix_lake, replay_of, tmp_path, kit):
    replay = replay_of(vix_lake, speed=0)
    cap = kit.CaptureThread(replay, tmp_path / "landing")
    total = expected_rows(vix_lake, kit)
    kit.wait_for(lambda: replay.server.finished.is_set() and kit.landed_rows(tmp_path / "landing") == total)
    summary = cap.stop()
    assert summary["rejected"] == {} and summary["connections"] == {"stocks": 1, "options": 1}
    # the options feed opens with a gap until its first subscription is acknowledged (at
    # speed 0 nothing passes meanwhile: the gap is recorded, nothing falls in it)
    (opening,) = read_gaps(tmp_path / "landing")
    assert opening.feed == "options" and opening.reason.startswith("opening")
    out = Lake(tmp_path / "out")
    land(tmp_path / "landing", out, kit)
    for table in kit.CAPTURED:
        want, got = kit.partition(vix_lake, table), kit.partition(out, table)
        # same rows in the same order (instrument, then time, ties in arrival order); only
        # the source differs: the rows came over the websocket
        assert got.drop("source").equals(want.drop("source")), table
        assert got.get_column("source").unique().to_list() in ([], ["polygon.ws"])
    assert cap.metrics.subscribed_contracts._value.get() == kit.partition(vix_lake, "option_quotes")["option_symbol"].n_unique()


def test_a_dropped_connection_reconnects_resubscribes_and_records_the_gap(vix_lake, replay_of, tmp_path, kit):
    # the options day (09:30-16:15 ET, 6.75 h) plays in about 3 s
    replay = replay_of(vix_lake, speed=8_000)
    root = tmp_path / "landing"
    cap = kit.CaptureThread(replay, root)
    kit.wait_for(lambda: any(e.table == "option_quotes" for e in read_manifest(root)))
    replay.server.drop_connections("options")
    kit.wait_for(lambda: replay.server.finished.is_set(), timeout=60)
    kit.wait_for(lambda: cap.capture.batcher.held == 0)
    summary = cap.stop()
    assert summary["connections"]["options"] == 2 and summary["connections"]["stocks"] == 1
    opening, gap = read_gaps(root)
    assert opening.reason.startswith("opening") and opening.first_event_ts_ns <= gap.last_event_ts_ns
    assert gap.feed == "options" and gap.end_ns is not None and gap.end_ns >= gap.start_ns
    assert gap.last_event_ts_ns is not None and gap.first_event_ts_ns > gap.last_event_ts_ns
    out = Lake(tmp_path / "out")
    land(root, out, kit)
    assert out.manifest(schemas.table("option_quotes"), kit.VIX_DAY).stats["gaps"] == 2  # the day knows them
    for table in ("option_trades", "option_quotes"):
        want, got = kit.partition(vix_lake, table), kit.partition(out, table)
        assert got.drop("source").join(want.drop("source"), on=want.drop("source").columns, how="anti",
                                       nulls_equal=True).is_empty()
        # every row not captured lies in a recorded gap: the dropped connection's, or the
        # opening one (the timeline started with the stocks subscription, like a live
        # market, before the options feed was subscribed); rows after the gap were
        # captured: the resubscription restored the same channels
        assert kit.missed_outside_gaps(want, got, read_gaps(root)).is_empty()
        assert got.filter(pl.col("ts_ns") >= gap.first_event_ts_ns).height > 0
    assert cap.metrics.reconnects.labels(feed="options")._value.get() == 1
    assert cap.metrics.gaps.labels(feed="options")._value.get() == 2


def test_malformed_frames_are_counted_kept_and_do_not_stop_the_capture(vix_lake, replay_of, tmp_path, kit):
    replay = replay_of(vix_lake, speed=2_000)
    root = tmp_path / "landing"
    cap = kit.CaptureThread(replay, root)
    kit.wait_for(lambda: cap.capture.links["options"].connections == 1 and cap.metrics.subscribed_contracts._value.get() > 0)
    bad = [
        "{not json",
        '{"ev": "status"',
        "[42]",
        '[{"ev": "ZZ", "sym": "O:VIX160608C00012500"}]',
        '[{"ev": "Q", "sym": "O:VIX160608C00012500", "t": "noon", "q": 1}]',
        '[{"ev": "T", "sym": "not-an-option", "p": 1.0, "s": 1, "t": 1464787800000, "q": 2}]',
    ]
    for text in bad:
        replay.server.inject("options", text)
    kit.wait_for(lambda: len(read_rejects(root)) == len(bad))
    before = cap.metrics.events.labels(feed="options", event="Q")._value.get()
    kit.wait_for(lambda: cap.metrics.events.labels(feed="options", event="Q")._value.get() > before)
    cap.stop()
    kinds = sorted(r["kind"] for r in read_rejects(root))
    assert kinds == sorted(["invalid_json", "invalid_json", "not_an_object", "unknown_event", "bad_field", "bad_symbol"])
    assert {r["frame"] for r in read_rejects(root) if r["kind"] == "invalid_json"} == {"{not json", '{"ev": "status"'}
    assert cap.metrics.malformed.labels(feed="options", kind="invalid_json")._value.get() == 2
    assert cap.capture.rejected["unknown_event"] == 1


CALL = "O:VIX160608C00012500"
AT_10 = 1464789600000  # 2016-06-01 10:00 ET (ms)


def _quote(q: int, **fields) -> dict:
    return {"ev": "Q", "sym": CALL, "bx": 302, "bp": 1.05, "bs": 10, "ax": 302, "ap": 1.10, "as": 12, "t": AT_10,
            "q": q} | fields


def _trade(q: int, **fields) -> dict:
    return {"ev": "T", "sym": CALL, "x": 302, "p": 1.07, "s": 3, "t": AT_10, "q": q} | fields


def test_no_frame_or_value_stops_the_capture_each_is_a_reject_with_its_reason(vix_lake, replay_of, tmp_path, kit):
    # before: t=10**30 raised OverflowError and a 200,000-deep frame RecursionError out of the
    # feed task (the capture died); t=0 landed in trade_date=1969-12-31; negative prices,
    # zero-size prints and off-session times landed as data
    settings = dataclasses.replace(kit.FAST, max_frame_chars=1_000_000)
    replay = replay_of(vix_lake, speed=2_000)
    root = tmp_path / "landing"
    cap = kit.CaptureThread(replay, root, settings=settings)
    kit.wait_for(lambda: cap.capture.links["options"].connections == 1 and cap.metrics.subscribed_contracts._value.get() > 0)
    bad = {  # frame -> the reject kind it must give
        json.dumps([_quote(1, t=10**30)]): "bad_field",
        "[" * 200_000 + "]" * 200_000: "too_deep",
        json.dumps([_quote(2, m17={"conditions": [[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]})]): "too_deep",
        "[" + " " * 1_000_000 + "]": "too_large",
        "[" + "7" * 5_000 + "]": "invalid_json",
        json.dumps([_quote(3, t=0)]): "not_trading_day",
        json.dumps([_quote(4, t=1465048800000)]): "not_trading_day",  # Saturday 2016-06-04
        json.dumps([_quote(5, t=1464764400000)]): "outside_session",  # 03:00 ET
        json.dumps([_quote(6, t=1464827400000)]): "outside_session",  # 20:30 ET
        json.dumps([_quote(7, bp=-0.05)]): "bad_price",
        json.dumps([_quote(8, bs=-10)]): "bad_size",
        json.dumps([_quote(9, bp=10**400)]): "bad_field",
        json.dumps([_trade(10, p=0)]): "bad_price",
        json.dumps([_trade(11, s=0)]): "bad_size",
        json.dumps([_trade(12, p=-1.07)]): "bad_price",
        json.dumps([_quote(13, m17={"expiration": 20160608})]): "bad_extension",
    }
    # good events around a bad one in the same frame land; a one-sided quote (no bid) is good
    mixed = json.dumps([_quote(990_001, bp=0, bs=0), _quote(14, t=10**30), _trade(990_002)])
    for text in [*bad, mixed]:
        replay.server.inject("options", text)
    kit.wait_for(lambda: len(read_rejects(root)) == len(bad) + 1)
    before = cap.metrics.events.labels(feed="options", event="Q")._value.get()
    kit.wait_for(lambda: cap.metrics.events.labels(feed="options", event="Q")._value.get() > before + 10)
    kit.wait_for(lambda: replay.server.finished.is_set(), timeout=60)  # the capture received the day to its end
    kit.wait_for(lambda: cap.capture.batcher.held == 0)
    summary = cap.stop()

    rejects = read_rejects(root)
    want = sorted([*bad.values(), "bad_field"])
    assert sorted(r["kind"] for r in rejects) == want
    assert summary["rejected"] == {kind: want.count(kind) for kind in set(want)}
    for kind in set(want):
        assert cap.metrics.malformed.labels(feed="options", kind=kind)._value.get() == want.count(kind)
    assert all(r["detail"] and r["feed"] == "options" for r in rejects)
    by_kind = {r["kind"]: r for r in rejects}
    assert "1969-12-31" in next(r["detail"] for r in rejects if '"q": 3' in r["frame"])
    assert "price -1.07 is not positive" in next(r["detail"] for r in rejects if '"q": 12' in r["frame"])
    assert len(by_kind["too_large"]["frame"]) == settings.reject_frame_chars and by_kind["too_large"]["frame_chars"] == 1_000_002
    # nothing of a rejected event landed; the good ones did, on their trade date, and the day
    # went on around them: every row of it landed but what passed in a recorded gap
    assert {e.trade_date for e in read_manifest(root)} == {"2016-06-01"}
    for table, injected in (("option_quotes", 990_001), ("option_trades", 990_002)):
        landed = pl.concat([pl.read_parquet(root / e.path) for e in read_manifest(root) if e.table == table])
        day = kit.partition(vix_lake, table)
        extra = landed.join(day, on=["option_symbol", "ts_ns", "sequence"], how="anti")
        assert extra["sequence"].to_list() == [injected], table
        if table == "option_quotes":  # the one-sided quote, as sent
            assert extra.select("bid", "bid_size", "ask").row(0) == (0.0, 0, 1.10)
        assert kit.missed_outside_gaps(day, landed, read_gaps(root)).is_empty()
        assert landed.height > day.height / 2


def test_metrics_endpoint_shows_the_documented_gauges(vix_lake, replay_of, tmp_path, kit):
    fresh = CaptureMetrics()
    assert fresh.since_refresh.collect()[0].samples[0].value == -1.0
    replay = replay_of(vix_lake, speed=0)
    cap = kit.CaptureThread(replay, tmp_path / "landing")
    server, _ = cap.metrics.serve("127.0.0.1", 0)
    try:
        kit.wait_for(lambda: replay.server.finished.is_set() and kit.landed_rows(tmp_path / "landing") == expected_rows(vix_lake, kit))
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
        cap.stop()
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and not line.startswith("#")}
    n_quotes = kit.partition(vix_lake, "option_quotes").height
    assert samples['trade_ws_events_total{event="Q",feed="options"}'] == n_quotes
    assert samples["trade_ws_subscribed_contracts"] > 0
    assert 0 <= samples["trade_ws_seconds_since_contract_refresh"] < 60
    assert samples['trade_ws_connected{feed="options"}'] == 1
    assert samples['trade_ws_reconnects_total{feed="options"}'] == 0
    assert samples['trade_ws_batches_written_total{table="option_quotes"}'] >= 1
    assert samples['trade_ws_batch_rows_total{table="option_quotes"}'] == n_quotes
    assert samples["trade_ws_batch_latency_seconds_count"] >= 1
    assert "trade_ws_malformed_total" in text or "# TYPE trade_ws_malformed_total counter" in text


@pytest.mark.parametrize("table", ["option_quotes"])
def test_landing_twice_changes_nothing(vix_lake, replay_of, tmp_path, table, kit):
    replay = replay_of(vix_lake, speed=0)
    cap = kit.CaptureThread(replay, tmp_path / "landing")
    kit.wait_for(lambda: replay.server.finished.is_set() and kit.landed_rows(tmp_path / "landing") == expected_rows(vix_lake, kit))
    cap.stop()
    out = Lake(tmp_path / "out")
    land(tmp_path / "landing", out, kit)
    first = out.manifest(schemas.table(table), kit.VIX_DAY)
    land(tmp_path / "landing", out, kit)
    second = out.manifest(schemas.table(table), kit.VIX_DAY)
    assert second.rows == first.rows and second.sha256 == first.sha256
    assert second.stats["batches_skipped"] == first.stats["batches_landed"] and "batches_landed" not in second.stats


def test_a_restart_gap_opens_at_the_table_that_landed_least(vix_lake, tmp_path, kit):
    # a kill between the two writes of one flush: option_quotes of the round landed,
    # option_trades of the same round did not; an older day's batch must not widen the gap
    root = tmp_path / "landing"
    trades = kit.partition(vix_lake, "option_trades").sort("ts_ns")
    quotes = kit.partition(vix_lake, "option_quotes").sort("ts_ns")
    yesterday = PartitionRef(kit.VIX_DAY.trade_date - dt.timedelta(days=1), "VIX")
    with LandingZone(root) as zone:
        zone.write_batch("option_trades", yesterday, trades.head(5))
        zone.write_batch("option_quotes", kit.VIX_DAY, quotes.head(1_000))
        zone.write_batch("option_trades", kit.VIX_DAY, trades.head(600))
        zone.write_batch("option_quotes", kit.VIX_DAY, quotes.slice(1_000, 800))
    lagging_mark = trades.head(600)["ts_ns"].max()
    assert quotes.slice(1_000, 800)["ts_ns"].max() > lagging_mark > trades.head(5)["ts_ns"].max()
    with LandingZone(root) as zone:
        cap = Capture(["VIX"], urls={"stocks": "ws://127.0.0.1:9/stocks", "options": "ws://127.0.0.1:9/options"},
                      api_key=kit.KEY, zone=zone, contracts=lambda u, day: [], all_contracts=True,
                      settings=kit.FAST, metrics=CaptureMetrics())
        for link in cap.links.values():
            link.finish()
    gaps = {g.feed: g for g in read_gaps(root)}
    assert set(gaps) == {"options"}  # nothing of the stocks feed was ever landed here
    assert gaps["options"].last_event_ts_ns == lagging_mark
    assert gaps["options"].first_event_ts_ns is None and gaps["options"].reason.startswith("capture (re)started")
