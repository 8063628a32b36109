"""ingest_table: a source's chunks streamed into a raw partition, counts summed, truth
stored beside it, and the configured rate for a source without a rates table."""

import datetime as dt

import polars as pl
import pytest

from m17_platform import schemas
from m17_platform.errors import SchemaError
from m17_platform.ingest import ingest_table
from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT
from m17_platform.sources.base import TableChunk

REF = PartitionRef(dt.date(2025, 11, 10), "SPY")
T0 = 1_762_785_000_000_000_000  # 2025-11-10 14:30 UTC, 09:30 ET


def quotes(symbol: str, n: int, offset: int) -> pl.DataFrame:
    return pl.DataFrame({
        "ts_ns": [T0 + (offset + i) * 1_000_000 for i in range(n)], "sequence": list(range(offset, offset + n)),
        "symbol": symbol, "underlying": "SPY", "bid": 100.0, "bid_size": 100, "ask": 100.01, "ask_size": 200,
        "bid_exchange": "Q", "ask_exchange": "Q", "source": "fake",
    })


class FakeSource:
    name = "fake:1"

    def __init__(self, chunks):
        self._chunks = chunks

    def tables(self):
        return ("stock_quotes",)

    def chunks(self, table, ref):
        for frame in self._chunks:
            yield TableChunk(table, frame, {"rows": frame.height, "crossed": 1, "vendor": "fake"})

    def ground_truth(self, table, ref):
        return pl.DataFrame({"sequence": [0, 1], "efficient_price": [100.005, 100.004]})


def test_chunks_out_of_order_land_sorted_with_summed_counts_and_truth(lake):
    source = FakeSource([quotes("SPY", 5, 10), quotes("QQQ", 3, 0), quotes("SPY", 4, 0)])
    seen: list[int] = []
    manifest = ingest_table(lake, source, "stock_quotes", REF, progress=seen.append)
    assert seen == [5, 3, 4]
    assert manifest.rows == 12 and manifest.source == "fake:1"
    assert manifest.stats["chunks"] == 3 and manifest.stats["rows"] == 12 and manifest.stats["crossed"] == 3
    assert manifest.stats["vendor"] == "fake" and manifest.stats["truth_rows"] == 2
    back = lake.read(schemas.STOCK_QUOTES, REF, verify=True)
    assert back.select("symbol", "sequence").rows() == sorted(back.select("symbol", "sequence").rows())
    assert lake.read_truth(schemas.STOCK_QUOTES, REF).height == 2


def test_a_table_the_source_does_not_fill_is_empty_and_rates_fall_back_to_settings(lake):
    source = FakeSource([])
    assert ingest_table(lake, source, "option_trades", REF).rows == 0
    rates = ingest_table(lake, source, "rates", REF)
    assert rates.rows == 1 and rates.stats["rate_from_settings"] == 1
    assert lake.read(schemas.RATES, REF)["rate"].item() == DEFAULT.rates.risk_free_rate


def test_a_chunk_for_another_table_or_off_schema_writes_nothing(lake):
    class Wrong(FakeSource):
        def chunks(self, table, ref):
            yield TableChunk("stock_trades", quotes("SPY", 2, 0), {})

    with pytest.raises(ValueError, match="yielded a stock_trades chunk"):
        ingest_table(lake, Wrong([]), "stock_quotes", REF)
    with pytest.raises(SchemaError, match="chunk 0"):
        ingest_table(lake, FakeSource([quotes("SPY", 2, 0).drop("bid")]), "stock_quotes", REF)
    assert not lake.exists(schemas.STOCK_QUOTES, REF)
