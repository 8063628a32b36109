"""Enriched layer: trades joined to the NBBO with their aggressor, for options, stocks and
futures; their checks (quote coverage, agreement with the vendor's aggressor, premium)
beside them."""

from dagster import AssetExecutionContext, MaterializeResult

from assets.layer import enriched_asset, enriched_checks, write_partition
from assets.partitions import partition_ref
import polars as pl

from m17_platform import enrichment, expiry_batches
from m17_platform.nbbo import join_quality
from m17_platform.schemas import (
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
)
from m17_platform.settings import DEFAULT
from resources import LakeResource

OPTION_INPUTS = [OPTION_TRADES, OPTION_QUOTES, STOCK_QUOTES, STOCK_TRADES, OPTION_CONTRACTS]
STOCK_INPUTS = [STOCK_TRADES, STOCK_QUOTES]
FUTURES_INPUTS = [FUTURES_TRADES, FUTURES_MBP10]


def _join_stats(frame) -> dict:
    """The join quality (coverage, median age, flag rates) as manifest counts."""
    return {k: v for k, v in join_quality(frame).items() if isinstance(v, (int, float))} if frame.height else {}


@enriched_asset(OPTION_TRADES_ENRICHED, OPTION_INPUTS)
def option_trades_enriched(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    trades, _, stock_quotes, stock_trades, contracts = [
        None if s is OPTION_QUOTES else store.read(s, ref) for s in OPTION_INPUTS
    ]
    quote_batches = store.iter_batches(OPTION_QUOTES, ref, max_rows=DEFAULT.ingest.chunk_rows)
    frame = pl.concat(expiry_batches.enrich_option_trades(trades, quote_batches, stock_quotes, stock_trades, contracts))
    return write_partition(context, lake, OPTION_TRADES_ENRICHED, frame, OPTION_INPUTS, _join_stats(frame))


@enriched_asset(STOCK_TRADES_ENRICHED, STOCK_INPUTS)
def stock_trades_enriched(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    frame = enrichment.enrich_stock_trades(*[store.read(s, ref) for s in STOCK_INPUTS])
    return write_partition(context, lake, STOCK_TRADES_ENRICHED, frame, STOCK_INPUTS, _join_stats(frame))


@enriched_asset(FUTURES_TRADES_ENRICHED, FUTURES_INPUTS)
def futures_trades_enriched(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    frame = enrichment.enrich_futures_trades(*[store.read(s, ref) for s in FUTURES_INPUTS])
    return write_partition(context, lake, FUTURES_TRADES_ENRICHED, frame, FUTURES_INPUTS, _join_stats(frame))


ENRICHED_TRADE_ASSETS = [option_trades_enriched, stock_trades_enriched, futures_trades_enriched]
ENRICHED_TRADE_CHECKS = enriched_checks([OPTION_TRADES_ENRICHED, STOCK_TRADES_ENRICHED, FUTURES_TRADES_ENRICHED])
