"""Gold layer, reports: the daily report of each partition (HTML with plots).

The report's check table shows the outcomes the asset checks recorded beside each
partition (:func:`assets.checks.recorded_outcomes`). Where there is no current record
(the checks did not run yet, or ran on other content or settings) it runs the table's
checks itself: raw and enriched tables in batches (bounded memory). A table with more
than ``ReportSettings.max_full_rows`` rows brings only the columns the plots read.
"""

from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from assets.checks import recorded_outcomes, table_key
from assets.partitions import DAY_BY_UNDERLYING, partition_ref
from m17_platform import enrichment, flow, quality
from m17_platform.report import build_daily_report, plot_columns, write_report
from m17_platform.schemas import ALL_TABLES, GOLD, RAW
from m17_platform.settings import DEFAULT
from resources import LakeResource


@asset(
    key_prefix=[GOLD],
    group_name=GOLD,
    partitions_def=DAY_BY_UNDERLYING,
    deps=[table_key(spec) for spec in ALL_TABLES.values()],
    description="per-partition HTML report: rows per table (raw and enriched), check results, trades and spreads over the day",
    kinds={"html"},
)
def daily_report(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref = partition_ref(context.partition_key)
    store = lake.lake()
    tables, checks, manifests = {}, {}, {}
    for name, spec in ALL_TABLES.items():
        manifest = store.manifest(spec, ref)
        if manifest is None:
            continue
        manifests[name] = {"source": manifest.source, "sha256": manifest.sha256}
        recorded = recorded_outcomes(store, spec, ref)
        if recorded is not None:
            checks[name] = recorded
        elif spec.layer == RAW:
            checks[name] = quality.validate_batches(store.iter_batches(spec, ref, max_rows=DEFAULT.quality.batch_rows),
                                                    spec, ref.trade_date)
        elif spec.layer != GOLD:
            checks[name] = enrichment.check_table_batches(
                name, store.iter_batches(spec, ref, max_rows=DEFAULT.quality.batch_rows))
        large = manifest.rows > DEFAULT.report.max_full_rows
        columns = [c for c in plot_columns(name) if c in spec.columns] if large else None
        tables[name] = store.read(spec, ref, columns=columns or None)
        if recorded is None and name in flow.checks.INPUTS and all(n in tables for n in flow.checks.INPUTS[name]):
            checks[name] = flow.check_table(name, tables[name], tables)
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
