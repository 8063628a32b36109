"""Landing captured batches into raw partitions: each batch once, the partition sorted,
a damaged batch refused with the previous partition left as it was."""

import datetime as dt

import polars as pl
import pytest

from m17_platform import ingest, schemas
from m17_platform.capture.compaction import LEDGER, LandingSource, pending_batches, read_ledger
from m17_platform.capture.landing import LandingError, LandingZone
from m17_platform.lake import PartitionRef
from m17_platform.sources.polygon_ws import Decoder, frame_of

DAY = dt.date(2022, 5, 20)
SPY = PartitionRef(DAY, "SPY")
OPEN_MS = 1_653_053_400_000  # 2022-05-20 09:30:00 ET
TRADES = schemas.table("stock_trades")


def trades(seconds: list[int], tag: str, symbol: str = "SPY") -> pl.DataFrame:
    """Trades at ``seconds`` after the open, in the given (arrival) order; ``trade_id`` says
    which batch and position each came from, ``sequence`` is the second (ties are possible)."""
    decoder = Decoder(["SPY"])
    rows = [
        decoder.decode("stocks", {"ev": "T", "sym": symbol, "t": OPEN_MS + s * 1000, "q": s, "p": 390.0 + s / 100,
                                  "s": 100, "x": 4, "c": [12], "i": f"{tag}-{i}"}).row
        for i, s in enumerate(seconds)
    ]
    return frame_of("stock_trades", rows)


def land(lake, root):
    return ingest.ingest_table(lake, LandingSource(root, lake), "stock_trades", SPY)


def ledger_text(lake) -> str:
    return (lake.partition_dir(TRADES, SPY) / LEDGER).read_text()


def test_landing_source_lands_each_batch_once(lake, tmp_path):
    root = tmp_path / "landing"
    with LandingZone(root) as zone:
        a = zone.write_batch("stock_trades", SPY, trades([1, 2, 3], "a"))
        b = zone.write_batch("stock_trades", SPY, trades([4, 5], "b"))
        zone.write_batch("option_trades", SPY, frame_of("option_trades", []))  # another table: not this one
    manifest = land(lake, root)
    assert manifest.source == "capture" and manifest.rows == 5
    assert (manifest.stats["batches_landed"], manifest.stats["batch_rows"], manifest.stats["batches_total"]) == (2, 5, 2)
    frame = lake.read(TRADES, SPY, verify=True)
    assert frame["trade_id"].to_list() == ["a-0", "a-1", "a-2", "b-0", "b-1"]
    assert read_ledger(lake, "stock_trades", SPY) == {a.batch_id: (a.sha256, 3), b.batch_id: (b.sha256, 2)}
    assert pending_batches(root, lake, SPY, ("stock_trades",)) == []

    # a second landing with no new batch changes nothing
    text = ledger_text(lake)
    again = land(lake, root)
    assert again.rows == 5
    assert (again.stats["batches_skipped"], again.stats["rows_kept"]) == (2, 5)
    assert again.stats.get("batches_landed", 0) == 0
    assert lake.read(TRADES, SPY, verify=True).equals(frame)
    assert ledger_text(lake) == text


def test_new_batches_are_merged_in_sort_key_order_ties_in_arrival_order(lake, tmp_path):
    root = tmp_path / "landing"
    with LandingZone(root) as zone:
        zone.write_batch("stock_trades", SPY, trades([10, 20, 30], "a"))
    land(lake, root)
    with LandingZone(root) as zone:
        c = zone.write_batch("stock_trades", SPY, trades([25, 20, 5, 40], "c"))  # interleaved, one tie with a-1
        zone.write_batch("stock_trades", SPY, trades([20], "d"))  # a later tie
    assert [e.seq for e in pending_batches(root, lake, SPY, ("stock_trades",))] == [2, 3]
    manifest = land(lake, root)
    assert (manifest.rows, manifest.stats["batches_landed"], manifest.stats["rows_kept"]) == (8, 2, 3)
    frame = lake.read(TRADES, SPY, verify=True)
    assert frame["trade_id"].to_list() == ["c-2", "a-0", "a-1", "c-1", "d-0", "c-0", "a-2", "c-3"]
    assert frame.select(TRADES.sort_key).equals(frame.select(TRADES.sort_key).sort(TRADES.sort_key))
    assert frame["trade_id"].n_unique() == 8
    assert c.batch_id in read_ledger(lake, "stock_trades", SPY)
    assert len(read_ledger(lake, "stock_trades", SPY)) == 3


def test_a_corrupted_batch_is_refused_and_the_partition_kept(lake, tmp_path):
    root = tmp_path / "landing"
    with LandingZone(root) as zone:
        zone.write_batch("stock_trades", SPY, trades([1, 2], "a"))
    land(lake, root)
    before, text = lake.read(TRADES, SPY, verify=True), ledger_text(lake)
    with LandingZone(root) as zone:
        bad = zone.write_batch("stock_trades", SPY, trades([3], "b"))
    path = root / bad.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(LandingError, match=str(path)):
        land(lake, root)
    assert lake.read(TRADES, SPY, verify=True).equals(before)
    assert ledger_text(lake) == text
    assert [e.batch_id for e in pending_batches(root, lake, SPY, ("stock_trades",))] == [bad.batch_id]


def test_a_table_without_batches_lands_empty(lake, tmp_path):
    root = tmp_path / "landing"
    with LandingZone(root) as zone:
        zone.write_batch("stock_trades", SPY, trades([1], "a"))
    manifest = ingest.ingest_table(lake, LandingSource(root, lake), "option_quotes", SPY)
    assert manifest.rows == 0 and manifest.stats["batches_total"] == 0
    assert lake.read(schemas.table("option_quotes"), SPY).height == 0
