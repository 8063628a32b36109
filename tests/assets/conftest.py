"""The whole asset graph materialized once per test session for every bundled sample
partition: the session's ``m17 demo`` run (its lake, and the check evaluations its runs
recorded in its Dagster instance)."""

from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import partition_key
from m17_platform.lake import Lake
from m17_platform.sources.samples import SAMPLE_PARTITIONS

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def run_config(lake_root: Path, reports_root: Path, samples_dir: Path = SAMPLES) -> dict:
    return {
        "resources": {
            "lake": {"config": {"root": str(lake_root), "reports_root": str(reports_root)}},
            "market_data": {"config": {"kind": "samples", "samples_dir": str(samples_dir)}},
        }
    }


class RecordedRun:
    """A finished run of the demo, read back from the Dagster instance's event log: the
    ``success``, materialization events and check evaluations an in-process result gives."""

    def __init__(self, instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
        self.run = run
        self.success = run.status == dg.DagsterRunStatus.SUCCESS

        def events(kind: dg.DagsterEventType) -> list[dg.DagsterEvent]:
            return [entry.get_dagster_event() for entry in instance.all_logs(run.run_id, of_type=kind)]

        self._materializations = events(dg.DagsterEventType.ASSET_MATERIALIZATION)
        self._evaluations = [e.event_specific_data for e in events(dg.DagsterEventType.ASSET_CHECK_EVALUATION)]

    def get_asset_materialization_events(self) -> list[dg.DagsterEvent]:
        return list(self._materializations)

    def get_asset_check_evaluations(self) -> list[dg.AssetCheckEvaluation]:
        return list(self._evaluations)


@pytest.fixture(scope="session")
def materialized(demo_run):
    assert demo_run.proc.returncode == 0, demo_run.proc.stdout[-3000:] + demo_run.proc.stderr[-3000:]
    results = {}
    with dg.DagsterInstance.from_config(str(demo_run.dagster_home)) as instance:
        for part in SAMPLE_PARTITIONS:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": str(partition_key(part.ref))}), limit=1)
            assert runs, f"the demo recorded no run of {part.ref}"
            results[str(part.ref)] = RecordedRun(instance, runs[0])
    yield Lake(demo_run.lake_root), demo_run.reports_root, results


@pytest.fixture
def make_run_config():
    """Run config pointing the lake, reports and samples at given folders."""
    return run_config
