import datetime as dt
import hashlib
import json
import os

import polars as pl
import pytest

from m17_platform import schemas
from m17_platform.errors import LakeError, SchemaError
from m17_platform.lake import MANIFEST_NAME, PART_NAME, Lake, PartitionRef


def _quotes(n: int, symbol: str = "AMZN", start_ns: int = 1_340_285_400_000_000_000) -> pl.DataFrame:
    # deliberately out of order: the lake must store rows sorted by the sort key
    return pl.DataFrame(
        {
            "ts_ns": [start_ns + (n - i) * 1_000 for i in range(n)],
            "sequence": list(range(n)),
            "symbol": [symbol] * n,
            "underlying": [symbol] * n,
            "bid": [100.0 + i * 0.01 for i in range(n)],
            "bid_size": [100] * n,
            "ask": [100.05 + i * 0.01 for i in range(n)],
            "ask_size": [200] * n,
            "bid_exchange": ["XNAS"] * n,
            "ask_exchange": ["XNAS"] * n,
            "source": ["test"] * n,
        }
    )


REF = PartitionRef(dt.date(2012, 6, 21), "AMZN")


def test_write_read_roundtrip_sorted_with_manifest(lake: Lake):
    manifest = lake.write(schemas.STOCK_QUOTES, REF, _quotes(50), source="unit-test", stats={"crossed": 0})
    pdir = lake.partition_dir(schemas.STOCK_QUOTES, REF)
    assert pdir == lake.root / "raw" / "stock_quotes" / "trade_date=2012-06-21" / "underlying=AMZN"
    assert manifest.rows == 50
    assert manifest.source == "unit-test"
    assert manifest.stats == {"crossed": 0}
    # the manifest's checksum is the sha256 of the file's bytes
    digest = hashlib.sha256((pdir / PART_NAME).read_bytes()).hexdigest()
    assert manifest.files[0].sha256 == digest
    on_disk = json.loads((pdir / MANIFEST_NAME).read_text())
    assert on_disk["rows"] == 50 and on_disk["files"][0]["sha256"] == digest
    back = lake.read(schemas.STOCK_QUOTES, REF, verify=True)
    assert back.height == 50
    assert back["ts_ns"].is_sorted()
    assert manifest.ts_min_ns == back["ts_ns"].min() and manifest.ts_max_ns == back["ts_ns"].max()
    # units travel in the Parquet file's schema metadata
    import pyarrow.parquet as pq

    field = pq.read_schema(pdir / PART_NAME).field("bid")
    assert field.metadata[b"unit"] == b"dollars"


def test_rerun_replaces_partition(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(50), source="first")
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(7), source="second")
    back = lake.read(schemas.STOCK_QUOTES, REF)
    assert back.height == 7
    assert lake.manifest(schemas.STOCK_QUOTES, REF).source == "second"
    assert list((lake.root / ".staging").iterdir()) == []


def test_bad_rows_write_nothing(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(5), source="good")
    bad = _quotes(5).with_columns(pl.lit(None, dtype=pl.Int64).alias("ts_ns"))
    with pytest.raises(SchemaError, match="ts_ns"):
        lake.write(schemas.STOCK_QUOTES, REF, bad, source="bad")
    with pytest.raises(SchemaError, match="unexpected columns \\['extra'\\]"):
        lake.write(schemas.STOCK_QUOTES, REF, _quotes(5).with_columns(pl.lit(1).alias("extra")), source="bad")
    # the previous partition is untouched
    assert lake.manifest(schemas.STOCK_QUOTES, REF).source == "good"
    assert lake.read(schemas.STOCK_QUOTES, REF).height == 5


def test_checksum_mismatch_is_detected(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(5), source="good")
    part = lake.partition_dir(schemas.STOCK_QUOTES, REF) / PART_NAME
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(LakeError, match="sha256"):
        lake.read(schemas.STOCK_QUOTES, REF, verify=True)


def test_missing_partition_error_names_it(lake: Lake):
    with pytest.raises(LakeError, match=r"stock_quotes partition 2012-06-21\|AMZN does not exist"):
        lake.read(schemas.STOCK_QUOTES, REF)


def test_recover_restores_partition_replaced_mid_swap(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(5), source="old")
    final = lake.partition_dir(schemas.STOCK_QUOTES, REF)
    # simulate a crash after the old partition was moved aside, before the new one arrived
    staging = lake.root / ".staging"
    trash = staging / "replaced-deadbeef"
    (staging / "replaced-deadbeef.origin").write_text(str(final))
    os.rename(final, trash)
    assert not lake.exists(schemas.STOCK_QUOTES, REF)
    assert lake.recover() == [final]
    assert lake.read(schemas.STOCK_QUOTES, REF).height == 5


def test_duckdb_views_over_partitions(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(5), source="a")
    other = PartitionRef(dt.date(2012, 6, 22), "AMZN")
    lake.write(schemas.STOCK_QUOTES, other, _quotes(3), source="b")
    con = lake.duckdb()
    rows = con.execute(
        "select trade_date, count(*) from stock_quotes where underlying = ? group by 1 order by 1", ["AMZN"]
    ).fetchall()
    assert rows == [(dt.date(2012, 6, 21), 5), (dt.date(2012, 6, 22), 3)]
    assert con.execute("select count(*) from raw_stock_quotes").fetchone() == (8,)
    assert lake.partitions(schemas.STOCK_QUOTES) == [REF, other]


def test_empty_partition_is_written_and_readable(lake: Lake):
    manifest = lake.write(schemas.OPTION_TRADES, REF, schemas.empty_frame(schemas.OPTION_TRADES), source="none")
    assert manifest.rows == 0 and manifest.ts_min_ns is None
    assert lake.read(schemas.OPTION_TRADES, REF).columns == schemas.OPTION_TRADES.columns


def test_object_store_root_is_refused_clearly():
    with pytest.raises(LakeError, match="object-store"):
        Lake("s3://bucket/lake")
