"""The batched option enrichments give exactly the whole-partition result, on a small
synthetic day split into many batches of whole contracts (and of whole expiries)."""

import datetime as dt

import polars as pl
import pytest

from m17_platform import enrichment, expiry_batches
from m17_platform.expiry_batches import EXPIRY_GROUP, FORWARD_QUOTE_COLUMNS
from m17_platform.ingest import ingest_table
from m17_platform.lake import Lake, PartitionRef
from m17_platform.schemas import (
    OPTION_CONTRACTS,
    OPTION_QUOTES,
    OPTION_TRADES,
    OPTION_TRADES_ENRICHED,
    OPTION_VENDOR_GREEKS,
    RATES,
    STOCK_QUOTES,
    STOCK_TRADES,
)
from m17_platform.settings import DEFAULT
from m17_platform.sources.synthetic import SyntheticSource

REF = PartitionRef(dt.date(2025, 11, 10), "SPY")
BATCH_ROWS = 3_000


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("batches") / "lake")
    source = SyntheticSource(DEFAULT.synthetic.scaled(0.002))
    for spec in (OPTION_TRADES, OPTION_QUOTES, STOCK_QUOTES, STOCK_TRADES, OPTION_CONTRACTS, OPTION_VENDOR_GREEKS, RATES):
        ingest_table(lake, source, spec.name, REF)
    frames = {s.name: lake.read(s, REF) for s in (OPTION_TRADES, OPTION_QUOTES, STOCK_QUOTES, STOCK_TRADES,
                                                   OPTION_CONTRACTS, OPTION_VENDOR_GREEKS, RATES)}
    return lake, frames


def test_batches_hold_whole_contracts(day):
    lake, frames = day
    batches = list(lake.iter_batches(OPTION_QUOTES, REF, max_rows=BATCH_ROWS))
    assert len(batches) > 5
    symbols = [set(b["option_symbol"]) for b in batches]
    assert all(not (a & b) for i, a in enumerate(symbols) for b in symbols[i + 1:])
    assert sum(b.height for b in batches) == frames["option_quotes"].height


def test_enriched_trades_batched_equal_whole(day):
    lake, f = day
    whole = enrichment.enrich_option_trades(f["option_trades"], f["option_quotes"], f["stock_quotes"],
                                            f["stock_trades"], f["option_contracts"])
    batched = pl.concat(expiry_batches.enrich_option_trades(
        f["option_trades"], lake.iter_batches(OPTION_QUOTES, REF, max_rows=BATCH_ROWS),
        f["stock_quotes"], f["stock_trades"], f["option_contracts"],
    ))
    key = list(OPTION_TRADES_ENRICHED.sort_key)
    assert batched.height == whole.height == f["option_trades"].height
    assert batched.sort(key).equals(whole.sort(key))


def test_parity_forwards_and_quote_greeks_batched_equal_whole(day):
    lake, f = day
    rate, _ = enrichment.rate_inputs(f["rates"])
    whole_fwd = enrichment.parity_forwards(f["option_quotes"], f["option_contracts"], rate)
    fwd = expiry_batches.parity_forwards(
        lake.iter_batches(OPTION_QUOTES, REF, max_rows=BATCH_ROWS, group=EXPIRY_GROUP, columns=FORWARD_QUOTE_COLUMNS),
        f["option_contracts"], f["rates"],
    )
    assert fwd.height > 0
    order = ["expiration", "ts_ns"]
    assert fwd.sort(order).equals(whole_fwd.sort(order))
    whole = enrichment.option_quote_greeks(f["option_quotes"], f["option_contracts"], f["stock_quotes"],
                                           f["option_vendor_greeks"], f["rates"])
    batched = pl.concat(expiry_batches.option_quote_greeks(
        lake.iter_batches(OPTION_QUOTES, REF, max_rows=BATCH_ROWS), fwd, f["option_contracts"],
        f["stock_quotes"], f["option_vendor_greeks"], f["rates"],
    ))
    assert batched.equals(whole)
