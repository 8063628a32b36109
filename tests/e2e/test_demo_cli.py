"""`m17 demo` as a user runs it: a subprocess, its own lake, reports and Dagster home."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from m17_platform.settings import DEFAULT
from m17_platform.sources.samples import SAMPLE_PARTITIONS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_materializes_every_sample_partition_and_a_synthetic_day(tmp_path):
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path / "home"))
    proc = subprocess.run(
        [sys.executable, "-m", "m17_platform.cli", "demo",
         "--lake-root", str(tmp_path / "lake"), "--reports-root", str(tmp_path / "reports")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "2012-06-21|AMZN  ok" in out and "stock_trades=11,419" in out
    assert "option_trades=2,295" in out and "futures_trades=2,973" in out
    synthetic = DEFAULT.synthetic.scaled(DEFAULT.synthetic.demo_scale)
    assert f"{DEFAULT.synthetic.demo_day.isoformat()}|SPY" in out
    assert f"option_quotes={synthetic.option_quotes:,}" in out and "flow_windows=" in out
    for part in SAMPLE_PARTITIONS:
        report = tmp_path / "reports" / part.trade_date.isoformat() / f"{part.underlying}.html"
        assert report.exists() and str(report) in out
    # the one WARN failure the real samples carry: TDA stamps its SPY quote 20:00:00.208 ET
    assert "failed checks: stock_quotes.in_session" in out
    assert "wall time" in out and "peak RSS" in out
    # the runs are in the instance, for the UI
    assert any((tmp_path / "home").rglob("*.db"))
