"""`m17 demo` as a user runs it: a subprocess, its own lake, reports and Dagster home
(the session's ``demo_run``, whose lake the asset tests also read)."""

import pytest

from m17_platform.settings import DEFAULT
from m17_platform.sources.samples import SAMPLE_PARTITIONS


@pytest.mark.slow
def test_demo_materializes_every_sample_partition_and_a_synthetic_day(demo_run):
    proc = demo_run.proc
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "2012-06-21|AMZN  ok" in out and "stock_trades=11,419" in out
    assert "option_trades=2,295" in out and "futures_trades=2,973" in out
    synthetic = DEFAULT.synthetic.scaled(DEFAULT.synthetic.demo_scale)
    assert f"{DEFAULT.synthetic.demo_day.isoformat()}|SPY" in out
    assert f"option_quotes={synthetic.option_quotes:,}" in out and "flow_windows=" in out
    for part in SAMPLE_PARTITIONS:
        report = demo_run.reports_root / part.trade_date.isoformat() / f"{part.underlying}.html"
        assert report.exists() and str(report) in out
    # the one WARN failure the real samples carry: TDA stamps its SPY quote 20:00:00.208 ET
    assert "failed checks: stock_quotes.in_session" in out
    assert "wall time" in out and "peak RSS" in out
    # the runs are in the instance, for the UI
    assert any(demo_run.dagster_home.rglob("*.db"))
