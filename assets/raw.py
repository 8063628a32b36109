"""Raw layer: one asset per raw table, partitioned by trading day x underlying, each with
its Great Expectations quality checks beside it.

An asset reads its partition's rows from the configured source, writes them to the
lake (atomically, replacing any previous write) and returns the manifest as metadata.
The checks re-read what the lake holds and run the table's suite
(:func:`m17_platform.quality.validate_table`), one Dagster check per named check.
"""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Failure,
    MaterializeResult,
    MetadataValue,
    TableColumn,
    TableSchema as DagsterTableSchema,
    asset,
    multi_asset_check,
)

from assets.partitions import DAY_BY_UNDERLYING, partition_ref
from m17_platform import quality
from m17_platform.lake import Manifest
from m17_platform.schemas import RAW, RAW_TABLES, TableSchema
from resources import LakeResource, MarketDataResource


def raw_key(table_name: str) -> AssetKey:
    return AssetKey([RAW, table_name])


def column_schema(spec: TableSchema) -> DagsterTableSchema:
    """The table's columns for Dagster's UI: name, Arrow type, unit and description."""
    cols = []
    for fld in spec.schema:
        meta = {k.decode(): v.decode() for k, v in (fld.metadata or {}).items()}
        cols.append(TableColumn(fld.name, str(fld.type), description=f"[{meta.get('unit', '')}] {meta.get('description', '')}"))
    return DagsterTableSchema(columns=cols)


def manifest_metadata(manifest: Manifest, path: str) -> dict:
    """Materialization metadata from a partition's manifest."""
    meta = {
        "dagster/row_count": manifest.rows,
        "path": MetadataValue.path(path),
        "sha256": manifest.sha256,
        "source": manifest.source,
        "written_at": manifest.written_at,
    }
    if manifest.ts_min_ns is not None:
        meta["ts_min_ns"] = manifest.ts_min_ns
        meta["ts_max_ns"] = manifest.ts_max_ns
    for key, value in sorted(manifest.stats.items()):
        meta[f"stats/{key}"] = value
    return meta


def build_raw_asset(spec: TableSchema):
    """The software-defined asset that fills raw table ``spec`` for one partition."""

    @asset(
        name=spec.name,
        key_prefix=[RAW],
        group_name=RAW,
        partitions_def=DAY_BY_UNDERLYING,
        description=spec.description,
        metadata={"dagster/column_schema": column_schema(spec), "sort_key": ", ".join(spec.sort_key)},
        kinds={"parquet", "polars"},
    )
    def _raw(context: AssetExecutionContext, lake: LakeResource, market_data: MarketDataResource) -> MaterializeResult:
        ref = partition_ref(context.partition_key)
        loaded = market_data.load(spec.name, ref.trade_date, ref.underlying)
        store = lake.lake()
        manifest = store.write(spec, ref, loaded.frame, source=loaded.source, stats=loaded.stats)
        return MaterializeResult(metadata=manifest_metadata(manifest, str(store.partition_dir(spec, ref))))

    return _raw


def build_raw_checks(spec: TableSchema):
    """The asset checks of raw table ``spec``: one Dagster check per quality check name."""
    key = raw_key(spec.name)
    specs = [
        AssetCheckSpec(name, asset=key, description=quality.check_description(name))
        for name in quality.check_names(spec)
    ]

    @multi_asset_check(name=f"{spec.name}_quality", specs=specs, can_subset=True)
    def _checks(context: AssetCheckExecutionContext, lake: LakeResource):
        if not context.has_partition_key:
            raise Failure(
                f"the {spec.name} checks validate one partition: launch them with a partition "
                "(materialize the asset, or run the job for a date|underlying key)"
            )
        ref = partition_ref(context.partition_key)
        frame = lake.lake().read(spec, ref, verify=True)
        selected = {k.name for k in context.selected_asset_check_keys}
        for outcome in quality.validate_table(frame, spec, ref.trade_date):
            if outcome.name not in selected:
                continue
            yield AssetCheckResult(
                asset_key=key,
                check_name=outcome.name,
                passed=outcome.passed,
                severity=AssetCheckSeverity(outcome.severity),
                description=outcome.description,
                metadata=outcome.metadata,
            )

    return _checks


RAW_ASSETS = [build_raw_asset(spec) for spec in RAW_TABLES.values()]
RAW_CHECKS = [build_raw_checks(spec) for spec in RAW_TABLES.values()]
RAW_KEYS = [raw_key(name) for name in RAW_TABLES]
