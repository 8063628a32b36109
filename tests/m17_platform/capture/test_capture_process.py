"""``m17 capture`` as a process: killed mid-batch (SIGKILL) and restarted, it loses
nothing already acknowledged and duplicates nothing."""

import os
import signal
import subprocess
import sys

import polars as pl
import pytest

from m17_platform import ingest
from m17_platform.capture.compaction import LandingSource
from m17_platform.capture.landing import read_gaps, read_manifest, verify_batch
from m17_platform.lake import Lake
from m17_platform.settings import PROJECT_ROOT


def capture_process(replay, root, kit, *extra):
    env = dict(os.environ, POLYGON_API_KEY=kit.KEY, M17_STOCKS_WS_URL=replay.urls["stocks"],
               M17_OPTIONS_WS_URL=replay.urls["options"], M17_REST_BASE_URL=replay.rest)
    cmd = [sys.executable, "-m", "m17_platform.cli", "capture", "--underlying", "VIX", "--all-contracts",
           "--landing-root", str(root), "--set", "batch_seconds=0.2", "--set", "metrics_port=0", *extra]
    return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_killed_mid_batch_and_restarted_loses_nothing_acknowledged_and_duplicates_nothing(vix_lake, replay_of, tmp_path, kit):
    # the day plays in about 12 s of wall time, whoever is connected
    replay = replay_of(vix_lake, speed=2_000)
    root = tmp_path / "landing"
    first = capture_process(replay, root, kit)
    kit.wait_for(lambda: sum(e.table == "option_quotes" for e in read_manifest(root)) >= 3, timeout=60)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    acknowledged = read_manifest(root)
    assert acknowledged
    second = capture_process(replay, root, kit)
    kit.wait_for(lambda: replay.server.finished.is_set(), timeout=90)
    kit.wait_for(lambda: read_manifest(root)[-1].seq > acknowledged[-1].seq, timeout=30)
    second.send_signal(signal.SIGTERM)
    out, err = second.communicate(timeout=30)
    assert second.returncode == 0, err

    entries = read_manifest(root)
    # what was acknowledged before the kill is untouched: same entries, same bytes
    assert entries[: len(acknowledged)] == acknowledged
    for entry in acknowledged:
        verify_batch(root, entry)
    # the sequence continued: no id reused
    seqs = [e.seq for e in entries]
    assert seqs == sorted(set(seqs)) and seqs == list(range(1, len(seqs) + 1))
    # the restart recorded where each feed lost events
    gaps = {g.feed: g for g in read_gaps(root) if g.reason.startswith("capture (re)started")}
    assert set(gaps) == {"stocks", "options"}

    lake = Lake(tmp_path / "out")
    source = LandingSource(root, lake)
    for table in ("option_trades", "option_quotes"):
        ingest.ingest_table(lake, source, table, kit.VIX_DAY)
        want, got = kit.partition(vix_lake, table), kit.partition(lake, table)
        columns = want.drop("source").columns
        # rows are compared whole, a null equal to a null (the day's first quote is one-sided)
        assert got.drop("source").join(want.drop("source"), on=columns, how="anti", nulls_equal=True).is_empty()  # nothing invented
        assert got.height == got.unique(subset=columns).height == got.join(want, on=columns, how="semi", nulls_equal=True).height
        # lost: what traded before the first subscription (the opening gap), what the killed
        # process held unwritten and what passed while no capture ran (the restart gap), and
        # anything in another recorded gap of the feed (a reconnect of a starved process):
        # nothing else
        assert kit.missed_outside_gaps(want, got, read_gaps(root)).is_empty()
        assert got.filter(pl.col("ts_ns") > gaps["options"].last_event_ts_ns).height > 0  # the restart captured on
