"""Enriched layer, greeks: implied volatility and greeks of every option print and quote,
with their checks (every OK IV reprices its input, solver statuses, agreement with the
vendor's delta) beside them. Option quotes are read one expiry group at a time
(:mod:`m17_platform.expiry_batches`), so a day of tens of millions of quotes streams."""

from dagster import AssetExecutionContext, MaterializeResult

from assets.layer import enriched_asset, enriched_checks, write_partition
from assets.partitions import partition_ref
from m17_platform import enrichment, expiry_batches
from m17_platform.expiry_batches import EXPIRY_GROUP, FORWARD_QUOTE_COLUMNS
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
from m17_platform.settings import DEFAULT
from resources import LakeResource

TRADE_INPUTS = [OPTION_TRADES_ENRICHED, OPTION_QUOTES, OPTION_CONTRACTS, RATES]
QUOTE_INPUTS = [OPTION_QUOTES, OPTION_CONTRACTS, STOCK_QUOTES, OPTION_VENDOR_GREEKS, RATES]


def _forward_quotes(store, ref):
    """The columns of the partition's option quotes that parity forwards need, in batches
    of whole expiries (bounded memory)."""
    return store.iter_batches(
        OPTION_QUOTES, ref, max_rows=DEFAULT.ingest.chunk_rows, group=EXPIRY_GROUP, columns=FORWARD_QUOTE_COLUMNS
    )


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
    contracts, rates = store.read(OPTION_CONTRACTS, ref), store.read(RATES, ref)
    forwards = expiry_batches.parity_forwards(_forward_quotes(store, ref), contracts, rates)
    frame = enrichment.option_trade_greeks(store.read(OPTION_TRADES_ENRICHED, ref), forwards, contracts, rates)
    stats = _status_counts(frame, "iv_trade_status", "iv_mid_status")
    return write_partition(context, lake, OPTION_TRADE_GREEKS, frame, TRADE_INPUTS, stats)


@enriched_asset(OPTION_QUOTE_GREEKS, QUOTE_INPUTS)
def option_quote_greeks(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    _, contracts, stock_quotes, vendor, rates = [None if s is OPTION_QUOTES else store.read(s, ref) for s in QUOTE_INPUTS]
    forwards = expiry_batches.parity_forwards(_forward_quotes(store, ref), contracts, rates)
    stats: dict = {}

    def counted(frames):
        for frame in frames:
            for key, n in _status_counts(frame, "iv_status").items():
                stats[key] = stats.get(key, 0) + n
            yield frame

    batches = store.iter_batches(OPTION_QUOTES, ref, max_rows=DEFAULT.ingest.chunk_rows)
    frames = expiry_batches.option_quote_greeks(batches, forwards, contracts, stock_quotes, vendor, rates)
    return write_partition(context, lake, OPTION_QUOTE_GREEKS, counted(frames), QUOTE_INPUTS, stats)


GREEKS_ASSETS = [option_trade_greeks, option_quote_greeks]
GREEKS_CHECKS = enriched_checks([OPTION_TRADE_GREEKS, OPTION_QUOTE_GREEKS])
