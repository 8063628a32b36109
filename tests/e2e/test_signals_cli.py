"""`m17 signals build`, `m17 signals export` and `m17 validate signals` as a user runs them,
on a lake the main job fills in-process from the real ESH4 MBO sample (2023-12-26|SPY: the
Globex evening session of 2023-12-25, through the samples source)."""

import datetime as dt
import os
import shutil
import subprocess
import sys

import dagster as dg
import polars as pl
import pytest

from assets.partitions import partition_key
from m17_platform.definitions import defs
from m17_platform.lake import Lake, PartitionRef
from m17_platform.levels.schemas import LEVEL_SIGNALS, LEVEL_TABLES
from m17_platform.schemas import GOLD
from m17_platform.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow  # the lake fixture runs the main job (about 16 s)
REF = PartitionRef(dt.date(2023, 12, 26), "SPY")
SAMPLES = PROJECT_ROOT / "data" / "samples"
AS_OF = "2023-12-25 18:30:00"  # mid-session: the evening session belongs to the next trade date


def _m17(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "m17_platform.cli", *args], cwd=PROJECT_ROOT,
                          env=dict(os.environ), capture_output=True, text=True, timeout=300, check=False)


def _one_line_error(proc: subprocess.CompletedProcess, *parts: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    """The level tables of 2023-12-26|SPY and everything upstream of them, materialized by
    the main job from the bundled sample."""
    root = tmp_path_factory.mktemp("signals_cli")
    keys = [dg.AssetKey([GOLD, name]) for name in LEVEL_TABLES]
    selection = list(dg.AssetSelection.assets(*keys).upstream().resolve(defs.resolve_asset_graph()))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", ["SPY"])
        result = defs.resolve_job_def("main").execute_in_process(
            partition_key=partition_key(REF), instance=instance, asset_selection=selection, raise_on_error=False,
            run_config={"resources": {
                "lake": {"config": {"root": str(root / "lake"), "reports_root": str(root / "reports")}},
                "market_data": {"config": {"kind": "samples", "samples_dir": str(SAMPLES)}},
            }})
    assert result.success
    out = Lake(root / "lake")
    assert out.manifest(LEVEL_SIGNALS, REF).rows > 0
    return out


def test_build_as_of_an_instant_writes_the_signals_and_agrees_with_the_lake(lake, tmp_path):
    out = tmp_path / "asof.parquet"
    proc = _m17("signals", "build", "--partition", str(REF), "--as-of", AS_OF, "--lake-root", str(lake.root),
                "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    full = lake.read(LEVEL_SIGNALS, REF)
    cut_ns = int(dt.datetime(2023, 12, 25, 18, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))).timestamp()) * 10**9
    due = full.filter(pl.col("decision_ts_ns") <= cut_ns)
    assert 0 < due.height < full.height
    written = pl.read_parquet(out)
    assert set(written["event_id"]) == set(due["event_id"])
    assert f"signals decided by then: {due.height:,} (the full day in the lake: {full.height:,})" in proc.stdout
    assert "look-ahead: ok" in proc.stdout and "labels: BREAK=" in proc.stdout


def test_build_exits_1_when_the_lake_full_day_differs(lake, tmp_path):
    copy = Lake(shutil.copytree(lake.root, tmp_path / "lake"))
    full = copy.read(LEVEL_SIGNALS, REF)
    copy.write(LEVEL_SIGNALS, REF, full.with_columns(pl.col("tape_trades") + 1), source="tampered")
    proc = _m17("signals", "build", "--partition", str(REF), "--as-of", AS_OF, "--lake-root", str(copy.root))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "look-ahead: MISMATCH" in proc.stdout and "tape_trades: full day" in proc.stdout


def test_build_bad_partition_and_as_of_are_one_line(lake, tmp_path):
    root = str(lake.root)
    _one_line_error(_m17("signals", "build", "--partition", "2023-12-27|SPY", "--as-of", "10:00:00",
                         "--lake-root", root), "m17 signals:", "2023-12-27|SPY is not in the lake")
    _one_line_error(_m17("signals", "build", "--partition", "2023-12-26", "--as-of", "10:00:00", "--lake-root", root),
                    "--partition", "is not DATE|UNDERLYING")
    _one_line_error(_m17("signals", "build", "--partition", str(REF), "--as-of", "6:30pm", "--lake-root", root),
                    "--as-of '6:30pm'", "HH:MM:SS")
    out = tmp_path / "nope" / "x.parquet"
    _one_line_error(_m17("signals", "build", "--partition", str(REF), "--as-of", AS_OF, "--lake-root", root,
                         "--out", str(out)), "--out", "does not exist")


def test_export_writes_the_range_and_an_empty_range_is_one_line(lake, tmp_path):
    out = tmp_path / "signals.parquet"
    proc = _m17("signals", "export", "--start", "2023-12-01", "--end", "2023-12-31", "--lake-root", str(lake.root),
                "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = pl.read_parquet(out)
    assert got.columns[:2] == ["trade_date", "underlying"] and got.height == lake.manifest(LEVEL_SIGNALS, REF).rows
    assert set(got["trade_date"]) == {REF.trade_date}
    assert "m17 signals export" in proc.stderr  # the progress bar
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signals.parquet"]  # no temporary left
    empty = tmp_path / "empty.parquet"
    _one_line_error(_m17("signals", "export", "--start", "2024-01-01", "--end", "2024-01-31",
                         "--lake-root", str(lake.root), "--out", str(empty)),
                    "no gold.level_signals partition from 2024-01-01 to 2024-01-31")
    assert not empty.exists()
    _one_line_error(_m17("signals", "export", "--start", "2023-12-31", "--end", "2023-12-01",
                         "--lake-root", str(lake.root), "--out", str(empty)), "--end 2023-12-01 is before --start")


def test_validate_reports_findings_and_exits_by_the_worst(lake, tmp_path):
    proc = _m17("validate", "signals", "--partition", str(REF), "--lake-root", str(lake.root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "INFO   check.no_lookahead" in proc.stdout and "passed (cut_points=5, mismatches=0" in proc.stdout
    assert "INFO   labels" in proc.stdout and "INFO   barrier_state" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1].startswith("m17 validate signals: 1 partition(s)")
    assert " 0 ERROR" in proc.stdout.strip().splitlines()[-1]
    broken = Lake(tmp_path / "lake")
    full = lake.read(LEVEL_SIGNALS, REF)
    broken.write(LEVEL_SIGNALS, REF, full.with_columns(pl.col("tape_imbalance") * 3), source="tampered")
    proc = _m17("validate", "signals", "--lake-root", str(broken.root))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ERROR  tape_imbalance" in proc.stdout
    _one_line_error(_m17("validate", "signals", "--partition", "2023-12-27|SPY", "--lake-root", str(lake.root)),
                    "m17 validate:", "no gold.level_signals partition")
    _one_line_error(_m17("validate", "signals", "--lake-root", str(tmp_path / "none")), "no gold.level_signals")
    _one_line_error(_m17("validate", "trades", "--lake-root", str(lake.root)), "invalid choice: 'trades'")

