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


def test_recover_restores_a_partition_a_first_version_swap_left_aside(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(5), source="old")
    final = lake.partition_dir(schemas.STOCK_QUOTES, REF)
    # the lake's first version renamed the old partition aside (with an .origin note), then the new one in
    staging = lake.root / ".staging"
    trash = staging / "replaced-deadbeef"
    (staging / "replaced-deadbeef.origin").write_text(str(final))
    os.rename(final, trash)
    assert not lake.exists(schemas.STOCK_QUOTES, REF)
    assert lake.recover().finished == [final]
    assert lake.read(schemas.STOCK_QUOTES, REF).height == 5
    assert list(staging.iterdir()) == []


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


# --- streaming writes ------------------------------------------------------------------------


def _chunk(symbols: list[str], start: int, n: int) -> pl.DataFrame:
    frames = [_quotes(n, s, start_ns=1_340_285_400_000_000_000 + start * 1_000_000) for s in symbols]
    return pl.concat(frames).with_columns(pl.col("sequence") + start)


def test_write_chunks_in_key_order_streams_into_files_cut_at_fixed_row_counts(lake: Lake):
    stats: dict[str, int] = {}

    def chunks():
        for i, sym in enumerate(["AAA", "BBB", "CCC"]):
            stats["chunks"] = i + 1
            yield _chunk([sym], i * 100, 40)

    manifest = lake.write_chunks(
        schemas.STOCK_QUOTES, REF, chunks(), source="stream", stats=stats
    )
    # stats are read after the chunks are consumed
    assert manifest.stats == {"chunks": 3}
    assert manifest.rows == 120 and [f.rows for f in manifest.files] == [120]
    back = lake.read(schemas.STOCK_QUOTES, REF, verify=True)
    assert back["symbol"].to_list() == ["AAA"] * 40 + ["BBB"] * 40 + ["CCC"] * 40
    assert back.group_by("symbol").agg(pl.col("ts_ns").is_sorted().alias("ok"))["ok"].all()


def test_write_chunks_out_of_order_sorts_out_of_core_and_keeps_ties_in_arrival_order(lake: Lake):
    from m17_platform.settings import IngestSettings

    base = _chunk(["BBB", "AAA"], 0, 30)
    # same (symbol, ts_ns, sequence) rows in two chunks: ties must stay in arrival order
    tie_a = base.head(5).with_columns(pl.lit("first").alias("source"))
    tie_b = base.head(5).with_columns(pl.lit("second").alias("source"))
    settings = IngestSettings(sort_memory_limit="256MB", sort_threads=1, target_file_rows=25)
    manifest = lake.write_chunks(
        schemas.STOCK_QUOTES, REF, [base.tail(55), tie_a, tie_b], source="stream", settings=settings
    )
    assert manifest.rows == 65
    assert [f.rows for f in manifest.files] == [25, 25, 15]
    back = lake.read(schemas.STOCK_QUOTES, REF, verify=True)
    expected = pl.concat([base.tail(55), tie_a, tie_b]).sort(["symbol", "ts_ns", "sequence"], maintain_order=True)
    assert back.select(expected.columns).equals(pl.from_arrow(schemas.conform(expected, schemas.STOCK_QUOTES)))
    ties = back.filter(pl.col("source") != "test")["source"].to_list()
    assert ties == ["first", "second"] * 5
    # the units travel through DuckDB's sort
    import pyarrow.parquet as pq

    pdir = lake.partition_dir(schemas.STOCK_QUOTES, REF)
    assert pq.read_schema(pdir / manifest.files[1].name).field("bid").metadata[b"unit"] == b"dollars"


def test_write_chunks_with_a_bad_chunk_writes_nothing_and_names_the_chunk(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(10), source="before")
    bad = _quotes(3).with_columns(pl.lit(None, dtype=pl.Int64).alias("ts_ns"))
    with pytest.raises(SchemaError, match="chunk 1"):
        lake.write_chunks(schemas.STOCK_QUOTES, REF, [_quotes(5), bad], source="broken")
    assert lake.manifest(schemas.STOCK_QUOTES, REF).source == "before"
    assert not any(p.name.startswith("stock_quotes-") for p in (lake.root / ".staging").iterdir())


def test_write_chunks_without_chunks_is_an_empty_partition(lake: Lake):
    manifest = lake.write_chunks(schemas.STOCK_QUOTES, REF, iter(()), source="none")
    assert manifest.rows == 0
    assert lake.read(schemas.STOCK_QUOTES, REF).columns == schemas.STOCK_QUOTES.columns


def test_iter_batches_never_splits_an_instrument(lake: Lake):
    frame = pl.concat([_chunk([s], 0, n) for s, n in (("AAA", 7), ("BBB", 12), ("CCC", 3), ("DDD", 9))])
    lake.write(schemas.STOCK_QUOTES, REF, frame, source="t")
    batches = list(lake.iter_batches(schemas.STOCK_QUOTES, REF, max_rows=10))
    assert sum(b.height for b in batches) == 31
    seen: list[str] = []
    for b in batches:
        symbols = b["symbol"].unique(maintain_order=True).to_list()
        assert not set(symbols) & set(seen)
        seen += symbols
    assert pl.concat(batches).equals(lake.read(schemas.STOCK_QUOTES, REF))


def test_truth_is_committed_with_its_partition(lake: Lake):
    truth = pl.DataFrame({"trade_id": ["a", "b"], "side": ["B", "S"]})
    staged = lake.stage(schemas.STOCK_QUOTES, REF, [_quotes(2)], source="synthetic")
    lake.stage_truth(staged, truth)
    path = lake.truth_path(schemas.STOCK_QUOTES, REF)
    assert not path.exists()  # staged, not committed
    lake.commit([staged])
    assert path.parent.name == "underlying=AMZN" and "_truth" in path.parts
    assert lake.read_truth(schemas.STOCK_QUOTES, REF).equals(truth)
    assert lake.manifest(schemas.STOCK_QUOTES, REF).stats["truth_rows"] == 2
    with pytest.raises(LakeError, match="no ground truth"):
        lake.read_truth(schemas.STOCK_TRADES, REF)


def test_extras_are_written_beside_the_parquet_in_the_same_swap(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(3), source="t", extras={"windows.txt": "10:00 net=+1\n"})
    pdir = lake.partition_dir(schemas.STOCK_QUOTES, REF)
    assert (pdir / "windows.txt").read_text() == "10:00 net=+1\n"
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(3), source="rerun")
    assert not (pdir / "windows.txt").exists()  # a rerun replaces the whole partition
    with pytest.raises(LakeError, match="not allowed"):
        lake.write(schemas.STOCK_QUOTES, REF, _quotes(3), source="t", extras={"x.parquet": ""})


def test_check_record_holds_until_the_partition_changes(lake: Lake):
    import numpy as np

    assert lake.write_check_record(schemas.STOCK_QUOTES, REF, {"outcomes": []}) is None  # no partition yet
    manifest = lake.write(schemas.STOCK_QUOTES, REF, _quotes(20), source="unit-test")
    path = lake.write_check_record(schemas.STOCK_QUOTES, REF, {"outcomes": [{"rows": np.int64(20)}], "settings": "s1"})
    assert path.parent == lake.partition_dir(schemas.STOCK_QUOTES, REF)
    record = lake.read_check_record(schemas.STOCK_QUOTES, REF)
    assert record == {"outcomes": [{"rows": 20}], "settings": "s1", "partition_sha256": manifest.sha256}
    # a rewrite replaces the partition folder, record included
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(20), source="unit-test")
    assert lake.read_check_record(schemas.STOCK_QUOTES, REF) is None
    # the old record put back: still current for the same content, stale for other content
    path.write_text(json.dumps(record))
    assert lake.read_check_record(schemas.STOCK_QUOTES, REF) == record
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(21), source="unit-test")
    path.write_text(json.dumps(record))
    assert lake.read_check_record(schemas.STOCK_QUOTES, REF) is None
    path.write_text("{torn")
    assert lake.read_check_record(schemas.STOCK_QUOTES, REF) is None
