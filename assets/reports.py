"""Gold layer, reports: the daily report of each partition (HTML with plots).

The report re-runs the raw tables' quality suites on what the lake holds, so its check
table shows the same outcomes the raw asset checks record.
"""

from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.partitions import DAY_BY_UNDERLYING, partition_ref
from assets.raw import RAW_KEYS
from m17_platform import quality
from m17_platform.report import build_daily_report, write_report
from m17_platform.schemas import GOLD, RAW_TABLES
from resources import LakeResource


@asset(
    key_prefix=[GOLD],
    group_name=GOLD,
    partitions_def=DAY_BY_UNDERLYING,
    deps=RAW_KEYS,
    description="per-partition HTML report: rows per table, quality check results, trades and spreads over the day",
    kinds={"html"},
)
def daily_report(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref = partition_ref(context.partition_key)
    store = lake.lake()
    tables, checks, manifests = {}, {}, {}
    for name, spec in RAW_TABLES.items():
        manifest = store.manifest(spec, ref)
        if manifest is None:
            continue
        frame = store.read(spec, ref)
        tables[name] = frame
        manifests[name] = {"source": manifest.source, "sha256": manifest.sha256, "written_at": manifest.written_at}
        checks[name] = quality.validate_table(frame, spec, ref.trade_date)
    report = build_daily_report(ref.trade_date, ref.underlying, tables, checks, manifests=manifests)
    path = write_report(report, report_path(lake.reports_root, ref))
    failed = sum(1 for outcomes in checks.values() for o in outcomes if not o.passed)
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(path)),
            "report": MetadataValue.md(report.markdown),
            "tables": len(tables),
            "rows": sum(f.height for f in tables.values()),
            "checks_failed": failed,
        }
    )


def report_path(reports_root: str, ref) -> Path:
    """Where a partition's report is written: ``<reports_root>/<date>/<underlying>.html``."""
    return Path(reports_root) / ref.trade_date.isoformat() / f"{ref.underlying}.html"
