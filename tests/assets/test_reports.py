"""The daily report shows the outcomes the asset checks recorded beside each partition,
and runs the checks itself when that record is stale."""

import datetime as dt
import json
import shutil

import dagster as dg

from assets.checks import recorded_outcomes, table_key
from assets.partitions import partition_key
from m17_platform import schemas
from m17_platform.definitions import defs
from m17_platform.lake import CHECKS_NAME, Lake, PartitionRef
from m17_platform.levels.schemas import LEVEL_TABLES
from m17_platform.sources.samples import SAMPLE_PARTITIONS
from resources import LakeResource

VIX = PartitionRef(dt.date(2016, 6, 1), "VIX")


def test_every_checked_partition_keeps_what_its_checks_recorded_in_dagster(materialized):
    lake, _, results = materialized
    for part in SAMPLE_PARTITIONS:
        evaluations = {(tuple(e.asset_key.path), e.check_name): e.passed
                       for e in results[str(part.ref)].get_asset_check_evaluations()}
        kept = {}
        # every table has checks but the level tables the level_signals checks cover
        checked = {n: s for n, s in schemas.ALL_TABLES.items()
                   if n not in set(LEVEL_TABLES) - {"level_signals"}}
        for name, spec in checked.items():
            outcomes = recorded_outcomes(lake, spec, part.ref)
            assert outcomes is not None, (str(part.ref), name)
            kept |= {(tuple(table_key(spec).path), o.name): o.passed for o in outcomes}
        assert kept == evaluations, str(part.ref)


def _report(lake_root, reports_root) -> dict:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", [VIX.underlying])
        result = dg.materialize(
            [a for a in defs.assets if dg.AssetKey(["gold", "daily_report"]) in a.keys],
            partition_key=partition_key(VIX),
            instance=instance,
            resources={"lake": LakeResource(root=str(lake_root), reports_root=str(reports_root))},
        )
    assert result.success
    (mat,) = result.get_asset_materialization_events()
    meta = mat.materialization.metadata
    return {"failed": meta["checks_failed"].value, "html": open(meta["path"].value).read()}


def test_the_report_shows_the_record_while_it_is_current(materialized, tmp_path):
    lake, _, _ = materialized
    copy = Lake(tmp_path / "lake")
    shutil.copytree(lake.root, copy.root)
    baseline = _report(copy.root, tmp_path / "reports")
    path = copy.partition_dir(schemas.OPTION_TRADES, VIX) / CHECKS_NAME
    record = json.loads(path.read_text())
    first = record["outcomes"][0]
    assert first["passed"]
    first |= {"passed": False, "description": "as recorded by the asset check"}
    path.write_text(json.dumps(record))
    shown = _report(copy.root, tmp_path / "reports")
    assert shown["failed"] == baseline["failed"] + 1 and "as recorded by the asset check" in shown["html"]
    # under other settings, or from other check code, the record is stale: the report
    # checks the partition itself
    for stamp in ("settings", "code"):
        path.write_text(json.dumps(record | {stamp: "0" * 64}))
        rerun = _report(copy.root, tmp_path / "reports")
        assert rerun["failed"] == baseline["failed"] and "as recorded by the asset check" not in rerun["html"], stamp
