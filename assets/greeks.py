"""Enriched layer, greeks: implied volatility and greeks of every option print and quote,
with their checks (every OK IV reprices its input, solver statuses, agreement with the
vendor's delta) beside them."""

from dagster import AssetExecutionContext, MaterializeResult, asset

from assets.checks import build_partition_checks, table_key
from assets.metadata import column_schema, manifest_metadata
from assets.partitions import DAY_BY_UNDERLYING, partition_ref
from m17_platform import enrichment
from m17_platform.schemas import (
    ENRICHED,
    OPTION_CONTRACTS,
    OPTION_QUOTE_GREEKS,
    OPTION_QUOTES,
    OPTION_TRADE_GREEKS,
    OPTION_TRADES_ENRICHED,
    OPTION_VENDOR_GREEKS,
    RATES,
    STOCK_QUOTES,
    TableSchema,
)
from resources import LakeResource

TRADE_INPUTS = [OPTION_TRADES_ENRICHED, OPTION_QUOTES, OPTION_CONTRACTS, RATES]
QUOTE_INPUTS = [OPTION_QUOTES, OPTION_CONTRACTS, STOCK_QUOTES, OPTION_VENDOR_GREEKS, RATES]


def _status_metadata(frame, column: str) -> dict:
    return {f"{column}/{status}": int(n) for status, n in frame.get_column(column).value_counts().iter_rows()}


def _greeks_asset(spec: TableSchema, inputs: list[TableSchema]):
    return asset(
        name=spec.name,
        key_prefix=[ENRICHED],
        group_name=ENRICHED,
        partitions_def=DAY_BY_UNDERLYING,
        deps=[table_key(s) for s in inputs],
        description=spec.description,
        metadata={"dagster/column_schema": column_schema(spec)},
        kinds={"parquet", "numba"},
    )


def _write(context, lake: LakeResource, spec: TableSchema, frame, inputs, status_columns) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    stats = {}
    for column in status_columns:
        stats.update(_status_metadata(frame, column))
    source = "enriched from " + ", ".join(f"{s.layer}.{s.name}" for s in inputs)
    manifest = store.write(spec, ref, frame, source=source, stats=stats)
    return MaterializeResult(metadata=manifest_metadata(manifest, str(store.partition_dir(spec, ref))))


@_greeks_asset(OPTION_TRADE_GREEKS, TRADE_INPUTS)
def option_trade_greeks(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    frame = enrichment.option_trade_greeks(*[store.read(s, ref) for s in TRADE_INPUTS])
    return _write(context, lake, OPTION_TRADE_GREEKS, frame, TRADE_INPUTS, ["iv_trade_status", "iv_mid_status"])


@_greeks_asset(OPTION_QUOTE_GREEKS, QUOTE_INPUTS)
def option_quote_greeks(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    frame = enrichment.option_quote_greeks(*[store.read(s, ref) for s in QUOTE_INPUTS])
    return _write(context, lake, OPTION_QUOTE_GREEKS, frame, QUOTE_INPUTS, ["iv_status"])


GREEKS_ASSETS = [option_trade_greeks, option_quote_greeks]
GREEKS_CHECKS = [
    build_partition_checks(
        spec,
        enrichment.CHECKS[spec.name],
        lambda frame, ref, name=spec.name: enrichment.check_table(name, frame),
        name=f"{spec.name}_checks",
    )
    for spec in (OPTION_TRADE_GREEKS, OPTION_QUOTE_GREEKS)
]
