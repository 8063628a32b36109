"""Enriched layer, greeks: implied volatility and greeks of every option print and quote,
with their checks (every OK IV reprices its input, solver statuses, agreement with the
vendor's delta) beside them."""

from dagster import AssetExecutionContext, MaterializeResult

from assets.layer import enriched_asset, enriched_checks, write_partition
from assets.partitions import partition_ref
from m17_platform import enrichment
from m17_platform.schemas import (
    OPTION_CONTRACTS,
    OPTION_QUOTE_GREEKS,
    OPTION_QUOTES,
    OPTION_TRADE_GREEKS,
    OPTION_TRADES_ENRICHED,
    OPTION_VENDOR_GREEKS,
    RATES,
    STOCK_QUOTES,
)
from resources import LakeResource

TRADE_INPUTS = [OPTION_TRADES_ENRICHED, OPTION_QUOTES, OPTION_CONTRACTS, RATES]
QUOTE_INPUTS = [OPTION_QUOTES, OPTION_CONTRACTS, STOCK_QUOTES, OPTION_VENDOR_GREEKS, RATES]


def _status_counts(frame, *columns: str) -> dict:
    """How many rows ended in each IV status, per status column, as manifest counts."""
    return {
        f"{column}/{status}": int(n)
        for column in columns
        for status, n in frame.get_column(column).value_counts().iter_rows()
    }


@enriched_asset(OPTION_TRADE_GREEKS, TRADE_INPUTS)
def option_trade_greeks(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    frame = enrichment.option_trade_greeks(*[store.read(s, ref) for s in TRADE_INPUTS])
    stats = _status_counts(frame, "iv_trade_status", "iv_mid_status")
    return write_partition(context, lake, OPTION_TRADE_GREEKS, frame, TRADE_INPUTS, stats)


@enriched_asset(OPTION_QUOTE_GREEKS, QUOTE_INPUTS)
def option_quote_greeks(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    frame = enrichment.option_quote_greeks(*[store.read(s, ref) for s in QUOTE_INPUTS])
    return write_partition(context, lake, OPTION_QUOTE_GREEKS, frame, QUOTE_INPUTS, _status_counts(frame, "iv_status"))


GREEKS_ASSETS = [option_trade_greeks, option_quote_greeks]
GREEKS_CHECKS = enriched_checks([OPTION_TRADE_GREEKS, OPTION_QUOTE_GREEKS])
