"""ingest_table: a source's chunks streamed into a raw partition, counts summed, truth
stored beside it, and the configured rate for a source without a rates table."""

import datetime as dt

import polars as pl
import pytest

from m17_platform import schemas
from m17_platform.errors import SchemaError, SourceFormatError
from m17_platform.ingest import KEPT, REPLACED, EmptyReplacementError, ingest_day, ingest_table
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


# --- a day commits together, and never loses what it did not replace -------------------------

ALL_RAW = list(schemas.RAW_TABLES)


class TwoTableSource(FakeSource):
    """Provides stock quotes and stock trades; ``fail_on`` raises in the middle of that table."""

    def __init__(self, quote_chunks, *, fail_on: str | None = None):
        super().__init__(quote_chunks)
        self.fail_on = fail_on

    def tables(self):
        return ("stock_quotes", "stock_trades")

    def chunks(self, table, ref):
        if table == self.fail_on:
            raise SourceFormatError("trades.csv", 7, "price", "not a number")
        if table == "stock_trades":
            return
        yield from super().chunks(table, ref)

    def ground_truth(self, table, ref):
        return None


def _state(lake) -> dict:
    out = {}
    for name, spec in schemas.RAW_TABLES.items():
        manifest = lake.manifest(spec, REF)
        out[name] = None if manifest is None else (manifest.sha256, manifest.rows, manifest.source)
    return out


def test_a_source_replaces_only_the_tables_it_provides(lake):
    ingest_day(lake, FakeSource([quotes("SPY", 5, 0)]), REF, ALL_RAW)
    lake.write(schemas.OPTION_QUOTES, REF, lake.read(schemas.OPTION_QUOTES, REF), source="kept-by-test")
    held = lake.manifest(schemas.OPTION_QUOTES, REF)
    outcomes = {o.table: o.action for o in ingest_day(lake, FakeSource([quotes("SPY", 7, 0)]), REF, ALL_RAW)}
    assert outcomes["stock_quotes"] == REPLACED and outcomes["option_quotes"] == KEPT
    assert lake.manifest(schemas.OPTION_QUOTES, REF) == held
    assert lake.manifest(schemas.STOCK_QUOTES, REF).rows == 7


def test_a_failed_ingest_changes_nothing(lake):
    ingest_day(lake, FakeSource([quotes("SPY", 5, 0)]), REF, ALL_RAW)
    before = _state(lake)
    with pytest.raises(SourceFormatError, match="trades.csv, line 7"):
        ingest_day(lake, TwoTableSource([quotes("SPY", 9, 0)], fail_on="stock_trades"), REF, ALL_RAW)
    assert _state(lake) == before
    assert not [p for p in (lake.root / ".staging").iterdir() if not p.name.endswith(".lock")]


def test_zero_rows_never_replace_rows_without_the_flag(lake):
    ingest_day(lake, FakeSource([quotes("SPY", 5, 0)]), REF, ALL_RAW)
    before = _state(lake)
    with pytest.raises(EmptyReplacementError, match=r"raw.stock_quotes 2025-11-10\|SPY: source fake:1 gave 0 rows "
                                                    r"where the lake holds 5"):
        ingest_day(lake, FakeSource([]), REF, ALL_RAW)
    assert _state(lake) == before
    ingest_day(lake, FakeSource([]), REF, ALL_RAW, allow_empty=True)
    assert lake.manifest(schemas.STOCK_QUOTES, REF).rows == 0


def test_rates_from_settings_follow_the_settings_but_a_vendor_curve_is_kept(lake):
    ingest_day(lake, FakeSource([quotes("SPY", 5, 0)]), REF, ["rates"])
    assert lake.manifest(schemas.RATES, REF).stats == {"rate_from_settings": 1}
    vendor = lake.read(schemas.RATES, REF).with_columns(pl.lit("vendor").alias("source"))
    lake.write(schemas.RATES, REF, vendor, source="vendor")
    (outcome,) = ingest_day(lake, FakeSource([quotes("SPY", 5, 0)]), REF, ["rates"])
    assert outcome.action == KEPT and lake.manifest(schemas.RATES, REF).source == "vendor"
