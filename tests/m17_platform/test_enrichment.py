"""join_and_classify picks the join by the quotes' source: a tbbo quote is the book just
before its own trade (same ts and sequence), so trades join it at or before (books
rebuilt from MBO, joined strictly before, are covered by tests/assets/test_enriched.py
on the ESH4 sample)."""

from pathlib import Path

import polars as pl

from m17_platform.enrichment import join_and_classify
from m17_platform.sources.databento import read_dbn

TEST_DATA = Path(__file__).resolve().parents[2] / "data" / "samples" / "databento_test_data"


def test_equities_tbbo_trades_join_their_own_quote_and_agree_with_the_exchange_side():
    read = read_dbn(TEST_DATA / "EQUS.MINI" / "test_data.tbbo.dbn.zst")
    trades, quotes = read.tables["stock_trades"], read.tables["stock_quotes"]
    assert set(quotes["source"]) == {"databento.equs-mini.tbbo"}
    joined = join_and_classify(trades, quotes, instrument="symbol")
    # the quote of the same record: age 0, not the quote before the previous print
    assert joined["quote_age_ns"].to_list() == [0] * trades.height
    assert joined["bid"].to_list() == quotes["bid"].to_list()
    sides = joined["side"].cast(pl.String).replace_strict({"buy": "B", "sell": "S"}).to_list()
    assert sides == joined["aggressor_side"].to_list()
