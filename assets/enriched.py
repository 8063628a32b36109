"""Enriched layer: trades joined to the NBBO with their aggressor, for options, stocks and
futures; their checks (quote coverage, agreement with the vendor's aggressor, premium)
beside them."""

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from assets.checks import build_partition_checks, table_key
from assets.metadata import column_schema, manifest_metadata
from assets.partitions import DAY_BY_UNDERLYING, partition_ref
from m17_platform import enrichment
from m17_platform.nbbo import join_quality
from m17_platform.schemas import (
    ENRICHED,
    FUTURES_MBP10,
    FUTURES_TRADES,
    FUTURES_TRADES_ENRICHED,
    OPTION_CONTRACTS,
    OPTION_QUOTES,
    OPTION_TRADES,
    OPTION_TRADES_ENRICHED,
    STOCK_QUOTES,
    STOCK_TRADES,
    STOCK_TRADES_ENRICHED,
    TableSchema,
)
from resources import LakeResource


def _keys(*specs: TableSchema) -> list[AssetKey]:
    return [table_key(s) for s in specs]


def _write(context: AssetExecutionContext, lake: LakeResource, spec: TableSchema, frame, inputs) -> MaterializeResult:
    ref = partition_ref(context.partition_key)
    store = lake.lake()
    source = "enriched from " + ", ".join(f"{s.layer}.{s.name}" for s in inputs)
    stats = {k: v for k, v in join_quality(frame).items() if isinstance(v, (int, float))} if frame.height else {}
    manifest = store.write(spec, ref, frame, source=source, stats=stats)
    return MaterializeResult(metadata=manifest_metadata(manifest, str(store.partition_dir(spec, ref))))


def _enriched_asset(spec: TableSchema, deps: list[TableSchema]):
    return asset(
        name=spec.name,
        key_prefix=[ENRICHED],
        group_name=ENRICHED,
        partitions_def=DAY_BY_UNDERLYING,
        deps=_keys(*deps),
        description=spec.description,
        metadata={"dagster/column_schema": column_schema(spec)},
        kinds={"parquet", "numba"},
    )


OPTION_INPUTS = [OPTION_TRADES, OPTION_QUOTES, STOCK_QUOTES, STOCK_TRADES, OPTION_CONTRACTS]


@_enriched_asset(OPTION_TRADES_ENRICHED, OPTION_INPUTS)
def option_trades_enriched(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    frames = [store.read(s, ref) for s in OPTION_INPUTS]
    return _write(context, lake, OPTION_TRADES_ENRICHED, enrichment.enrich_option_trades(*frames), OPTION_INPUTS)


@_enriched_asset(STOCK_TRADES_ENRICHED, [STOCK_TRADES, STOCK_QUOTES])
def stock_trades_enriched(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    frame = enrichment.enrich_stock_trades(store.read(STOCK_TRADES, ref), store.read(STOCK_QUOTES, ref))
    return _write(context, lake, STOCK_TRADES_ENRICHED, frame, [STOCK_TRADES, STOCK_QUOTES])


@_enriched_asset(FUTURES_TRADES_ENRICHED, [FUTURES_TRADES, FUTURES_MBP10])
def futures_trades_enriched(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    frame = enrichment.enrich_futures_trades(store.read(FUTURES_TRADES, ref), store.read(FUTURES_MBP10, ref))
    return _write(context, lake, FUTURES_TRADES_ENRICHED, frame, [FUTURES_TRADES, FUTURES_MBP10])


ENRICHED_TRADE_ASSETS = [option_trades_enriched, stock_trades_enriched, futures_trades_enriched]
ENRICHED_TRADE_CHECKS = [
    build_partition_checks(
        spec,
        enrichment.CHECKS[spec.name],
        lambda frame, ref, name=spec.name: enrichment.check_table(name, frame),
        name=f"{spec.name}_checks",
    )
    for spec in (OPTION_TRADES_ENRICHED, STOCK_TRADES_ENRICHED, FUTURES_TRADES_ENRICHED)
]
