"""A rerun of a partition on the same inputs writes the same bytes: the raw, enriched and
gold Parquet, their manifests and extras, what the checks recorded beside every partition,
and the daily report. Timings stay in the Dagster metadata of the check evaluations."""

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.checks import record_outcomes
from assets.partitions import partition_key
from assets.reports import daily_report
from m17_platform import schemas
from m17_platform.definitions import defs
from m17_platform.lake import CHECKS_NAME, COMMIT_LOG, STAGING, Lake, PartitionRef
from m17_platform.quality import TIMING_KEYS, CheckOutcome
from resources import LakeResource

REF = PartitionRef(dt.date(2025, 11, 10), "SPY")
SCALE = 0.005


def _files(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` but the lake's own bookkeeping (staging, commit log)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] != STAGING and rel.name != COMMIT_LOG:
            out[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _main_job(lake_root: Path, reports_root: Path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", [REF.underlying])
        return defs.resolve_job_def("main").execute_in_process(
            partition_key=partition_key(REF), instance=instance, raise_on_error=False,
            run_config={"resources": {
                "lake": {"config": {"root": str(lake_root), "reports_root": str(reports_root)}},
                "market_data": {"config": {"kind": "synthetic", "synthetic_scale": SCALE}},
            }},
        )


@pytest.fixture(scope="module")
def rerun(tmp_path_factory):
    """The main job on one partition, then again on the same lake: the files after each."""
    root = tmp_path_factory.mktemp("rerun")
    lake_root, reports_root = root / "lake", root / "reports"
    first = _main_job(lake_root, reports_root)
    assert first.success
    before = _files(lake_root) | {f"reports/{k}": v for k, v in _files(reports_root).items()}
    second = _main_job(lake_root, reports_root)
    assert second.success
    after = _files(lake_root) | {f"reports/{k}": v for k, v in _files(reports_root).items()}
    return first, second, before, after, lake_root, reports_root


@pytest.mark.slow
def test_a_rerun_of_a_partition_writes_the_same_bytes(rerun):
    _, _, before, after, _, _ = rerun
    assert sorted(before) == sorted(after)
    for layer in (schemas.ENRICHED, schemas.GOLD):
        assert any(k.startswith(f"{layer}/") and k.endswith(".parquet") for k in before), layer
    assert any(k.endswith(CHECKS_NAME) for k in before) and any(k.endswith(".html") for k in before)
    # every file: Parquet, manifests, window artifact, recorded check outcomes, the report
    assert [k for k in before if before[k] != after[k]] == []


@pytest.mark.slow
def test_check_timings_stay_in_dagster_and_out_of_the_record(rerun):
    first, _, _, _, lake_root, _ = rerun
    timed = [e for e in first.get_asset_check_evaluations() if "suite_seconds" in e.metadata]
    assert timed, "the raw checks time their GE suite in the evaluation's metadata"
    records = list(Path(lake_root).rglob(CHECKS_NAME))
    assert records
    for path in records:
        for outcome in json.loads(path.read_text())["outcomes"]:
            assert not set(TIMING_KEYS) & set(outcome["metadata"]), (path, outcome["name"])


@pytest.mark.slow
def test_the_report_is_the_same_when_built_twice_from_one_lake(rerun, tmp_path):
    """Without recorded outcomes the report runs the checks itself (GE suites, timed):
    still the same bytes."""
    _, _, _, _, lake_root, _ = rerun
    copy = tmp_path / "lake"
    shutil.copytree(lake_root, copy)
    for path in copy.rglob(CHECKS_NAME):
        path.unlink()
    pages = []
    for attempt in ("a", "b"):
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("underlying", [REF.underlying])
            result = dg.materialize([daily_report], partition_key=partition_key(REF), instance=instance, resources={
                "lake": LakeResource(root=str(copy), reports_root=str(tmp_path / attempt))})
        assert result.success
        pages.append((tmp_path / attempt / REF.trade_date.isoformat() / f"{REF.underlying}.html").read_bytes())
    assert pages[0] == pages[1]
    assert b"suite_seconds" not in pages[0]


def test_recorded_outcomes_carry_no_timings(tmp_path):
    lake = Lake(tmp_path / "lake")
    rates = pl.DataFrame({"date": [REF.trade_date], "tenor_days": [1], "rate": [0.04], "dividend_yield": [0.0],
                          "underlying": [REF.underlying], "source": ["test"]})
    lake.write(schemas.RATES, REF, rates, source="test")
    path = lake.partition_dir(schemas.RATES, REF) / CHECKS_NAME
    recorded = []
    for seconds in (0.25, 3.5):
        outcome = CheckOutcome("nulls", True, "ERROR", "no nulls", {"rows": 1, "suite_seconds": seconds,
                                                                    "ge_seconds": seconds / 2})
        record_outcomes(lake, schemas.RATES, REF, [outcome])
        recorded.append(path.read_bytes())
    assert recorded[0] == recorded[1]
    assert json.loads(recorded[0])["outcomes"][0]["metadata"] == {"rows": 1}
