"""Raw layer: the day's raw tables from the run's source, committed together, each table
an asset partitioned by trading day x underlying with its Great Expectations checks.

One step fills every selected raw table (``market_data``: samples, synthetic, polygon,
flatfiles, databento or capture) through :func:`m17_platform.ingest.ingest_day`: the
tables the source provides are staged and committed together, or not at all; a table
it does not provide keeps what the lake holds; zero rows never replace rows unless
``market_data.replace_with_empty``. Each table's materialization carries its manifest
as metadata and its sha256 as the Dagster data version, so the assets built from a
replaced table show as stale in the UI, and those built from a kept one do not.
The checks re-read what the lake holds and run the table's suite
(:func:`m17_platform.quality.validate_batches`: one GE suite per batch of at most
``QualitySettings.batch_rows`` rows, decided on the partition's totals), one Dagster
check per named check.
"""

from dagster import AssetExecutionContext, AssetSpec, DataVersion, MaterializeResult, multi_asset

from assets.checks import build_partition_checks, table_key
from assets.metadata import column_schema, manifest_metadata
from assets.partitions import DAY_BY_UNDERLYING, partition_ref
from m17_platform import ingest, quality
from m17_platform.schemas import RAW, RAW_TABLES, TableSchema
from resources import LakeResource, MarketDataResource


def raw_spec(spec: TableSchema) -> AssetSpec:
    """The asset of raw table ``spec``."""
    return AssetSpec(
        key=table_key(spec),
        group_name=RAW,
        partitions_def=DAY_BY_UNDERLYING,
        description=spec.description,
        metadata={"dagster/column_schema": column_schema(spec), "sort_key": ", ".join(spec.sort_key)},
        kinds={"parquet", "polars"},
    )


@multi_asset(name="raw_ingest", specs=[raw_spec(spec) for spec in RAW_TABLES.values()], can_subset=True,
             description="the selected raw tables of one day x underlying from the run's source, committed together")
def raw_ingest(context: AssetExecutionContext, lake: LakeResource, market_data: MarketDataResource):
    ref, store = partition_ref(context.partition_key), lake.lake()
    selected = {key.path[-1] for key in context.selected_asset_keys}
    tables = [name for name in RAW_TABLES if name in selected]
    outcomes = ingest.ingest_day(store, market_data.source(store), ref, tables, settings=market_data.settings(),
                                 allow_empty=market_data.replace_with_empty,
                                 progress=lambda name: market_data.progress(name, ref))
    for outcome in outcomes:
        spec = RAW_TABLES[outcome.table]
        metadata = {**manifest_metadata(outcome.manifest, str(store.partition_dir(spec, ref))), "ingest": outcome.action}
        yield MaterializeResult(asset_key=table_key(spec), metadata=metadata,
                                data_version=DataVersion(outcome.manifest.sha256))


def build_raw_checks(spec: TableSchema):
    """The asset checks of raw table ``spec``: one Dagster check per quality check name."""
    return build_partition_checks(
        spec,
        [(name, quality.check_description(name, spec)) for name in quality.check_names(spec)],
        lambda batches, ref: quality.validate_batches(batches, spec, ref.trade_date),
        name=f"{spec.name}_quality",
        batched=True,
    )


RAW_ASSETS = [raw_ingest]
RAW_CHECKS = [build_raw_checks(spec) for spec in RAW_TABLES.values()]
