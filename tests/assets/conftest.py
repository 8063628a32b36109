"""The whole asset graph materialized once per test session, for every bundled sample
partition, in an isolated lake and Dagster instance."""

from pathlib import Path

import dagster as dg
import pytest

from assets.partitions import partition_key
from m17_platform.definitions import defs
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


@pytest.fixture(scope="session")
def materialized(tmp_path_factory):
    root = tmp_path_factory.mktemp("m17")
    results = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", sorted({p.underlying for p in SAMPLE_PARTITIONS}))
        job = defs.resolve_job_def("main")
        for part in SAMPLE_PARTITIONS:
            result = job.execute_in_process(
                partition_key=partition_key(part.ref),
                instance=instance,
                run_config=run_config(root / "lake", root / "reports"),
            )
            results[str(part.ref)] = result
        yield Lake(root / "lake"), root / "reports", results




@pytest.fixture
def make_run_config():
    """Run config pointing the lake, reports and samples at given folders."""
    return run_config
