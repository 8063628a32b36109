"""`m17 ingest` as a user runs it: a subprocess with its own lake and Dagster home, a
progress bar per table on stderr, a summary of rows and checks on stdout."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from m17_platform.lake import Lake, PartitionRef
from m17_platform.schemas import STOCK_TRADES

ROOT = Path(__file__).resolve().parents[2]


def ingest(tmp_path, *args):
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path / "home"))
    env.pop("M17_SOURCE", None)
    return subprocess.run(
        [sys.executable, "-m", "m17_platform.cli", "ingest", "--lake-root", str(tmp_path / "lake"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.mark.slow
def test_ingest_fills_the_raw_partitions_with_a_progress_bar(tmp_path):
    proc = ingest(tmp_path, "--source", "samples", "--date", "2012-06-21", "--underlying", "amzn")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "stock_trades 2012-06-21|AMZN: " in proc.stderr and "rows" in proc.stderr  # tqdm, per table
    assert "stock_trades                 11,419  samples" in proc.stdout
    assert "checks: 52/52 passed" in proc.stdout
    ref = PartitionRef(dt.date(2012, 6, 21), "AMZN")
    assert Lake(tmp_path / "lake").read(STOCK_TRADES, ref, verify=True).height == 11_419


def test_ingest_refuses_a_day_that_is_not_a_session_and_a_bad_set(tmp_path):
    proc = ingest(tmp_path, "--source", "synthetic", "--date", "2025-11-08", "--underlying", "SPY")
    assert proc.returncode == 2 and "2025-11-08 is not an XNYS trading day" in proc.stderr
    proc = ingest(tmp_path, "--source", "synthetic", "--date", "2025-11-10", "--underlying", "SPY", "--set", "scale")
    assert proc.returncode == 2 and "--set 'scale' is not KEY=VALUE" in proc.stderr
