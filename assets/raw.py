"""Raw layer: one asset per raw table, partitioned by trading day x underlying, each with
its Great Expectations quality checks beside it.

An asset streams its partition's rows from the run's source (``market_data``: samples,
synthetic, polygon, flatfiles or databento) into the lake (atomically, replacing any
previous write; :func:`m17_platform.ingest.ingest_table`) and returns the manifest as
metadata.
The checks re-read what the lake holds and run the table's suite
(:func:`m17_platform.quality.validate_batches`: one GE suite per batch of at most
``QualitySettings.batch_rows`` rows, decided on the partition's totals), one Dagster
check per named check.
"""

from dagster import AssetExecutionContext, MaterializeResult, asset

from assets.checks import build_partition_checks
from assets.metadata import column_schema, manifest_metadata
from assets.partitions import DAY_BY_UNDERLYING, partition_ref
from m17_platform import ingest, quality
from m17_platform.schemas import RAW, RAW_TABLES, TableSchema
from resources import LakeResource, MarketDataResource


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
        ref, store = partition_ref(context.partition_key), lake.lake()
        with market_data.progress(spec.name, ref) as progress:
            manifest = ingest.ingest_table(
                store, market_data.source(store), spec.name, ref, settings=market_data.settings(), progress=progress
            )
        return MaterializeResult(metadata=manifest_metadata(manifest, str(store.partition_dir(spec, ref))))

    return _raw


def build_raw_checks(spec: TableSchema):
    """The asset checks of raw table ``spec``: one Dagster check per quality check name."""
    return build_partition_checks(
        spec,
        [(name, quality.check_description(name, spec)) for name in quality.check_names(spec)],
        lambda batches, ref: quality.validate_batches(batches, spec, ref.trade_date),
        name=f"{spec.name}_quality",
        batched=True,
    )


RAW_ASSETS = [build_raw_asset(spec) for spec in RAW_TABLES.values()]
RAW_CHECKS = [build_raw_checks(spec) for spec in RAW_TABLES.values()]
