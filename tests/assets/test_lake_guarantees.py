"""The lake's guarantees as a user meets them, on a copy of the session's demo lake:
a corrupted raw file stops the enriched layer, and an ingest that would wipe a day's
rows is refused with one line and changes nothing."""

import datetime as dt
import os
import shutil
import subprocess
import sys

import dagster as dg
import pytest

from assets.partitions import partition_key
from m17_platform import schemas
from m17_platform.definitions import defs
from m17_platform.lake import Lake, PartitionRef
from m17_platform.settings import PROJECT_ROOT

VIX = PartitionRef(dt.date(2016, 6, 1), "VIX")
SYNTHETIC = PartitionRef(dt.date(2025, 11, 10), "SPY")


def _copy_lake(materialized, tmp_path) -> Lake:
    shutil.copytree(materialized[0].root, tmp_path / "lake")
    return Lake(tmp_path / "lake")


def _manifests(lake: Lake, ref: PartitionRef) -> dict:
    return {name: lake.manifest(spec, ref) for name, spec in schemas.ALL_TABLES.items()}


def test_a_flipped_byte_in_a_raw_file_stops_the_enriched_layer(materialized, tmp_path, make_run_config):
    lake = _copy_lake(materialized, tmp_path)
    manifest = lake.manifest(schemas.OPTION_TRADES, VIX)
    path = lake.partition_dir(schemas.OPTION_TRADES, VIX) / manifest.files[0].name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # the file may still read, with other prices
    path.write_bytes(bytes(data))
    enriched = dg.AssetSelection.assets(dg.AssetKey(["enriched", "option_trades_enriched"]))
    job = dg.define_asset_job("enriched_only", selection=enriched).resolve(asset_graph=defs.resolve_asset_graph())
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", ["VIX"])
        result = job.execute_in_process(partition_key=partition_key(VIX), instance=instance,
                                        run_config=make_run_config(lake.root, tmp_path / "reports"),
                                        resources=defs.resources, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    error = failure.step_failure_data.error
    while error.cause is not None:
        error = error.cause
    assert "does not match the manifest" in error.message and str(path) in error.message
    assert lake.manifest(schemas.OPTION_TRADES_ENRICHED, VIX) == materialized[0].manifest(schemas.OPTION_TRADES_ENRICHED, VIX)


@pytest.mark.slow
def test_an_ingest_from_a_source_without_the_day_is_refused_and_changes_nothing(materialized, tmp_path):
    lake = _copy_lake(materialized, tmp_path)
    before = _manifests(lake, SYNTHETIC)
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path / "home"))
    env.pop("M17_SOURCE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "m17_platform.cli", "ingest", "--source", "samples", "--date", "2025-11-10",
         "--underlying", "SPY", "--lake-root", str(lake.root), "--quiet"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "gave 0 rows where the lake holds" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _manifests(lake, SYNTHETIC) == before
    assert lake.manifest(schemas.OPTION_QUOTES, SYNTHETIC).rows == 400_000
