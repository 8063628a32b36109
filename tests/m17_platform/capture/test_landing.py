"""The landing zone: batches acknowledged once, checksummed, and a crash at any point
repaired on the next open (discard, adopt, cut, quarantine), sequence never reused."""

import datetime as dt
import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

from m17_platform.capture.landing import (
    MANIFEST,
    QUARANTINE,
    TMP,
    LandingError,
    LandingZone,
    read_manifest,
    verify_batch,
)
from m17_platform.lake import PartitionRef
from m17_platform.sources.polygon_ws import Decoder, frame_of

DAY = dt.date(2022, 5, 20)  # a Friday session
SPY = PartitionRef(DAY, "SPY")
OPEN_MS = 1_653_053_400_000  # 2022-05-20 09:30:00 ET


def stock_trades(n: int, start: int = 0) -> pl.DataFrame:
    """``n`` SPY trades as the capture decodes them, one second apart from ``start`` s after the open."""
    decoder = Decoder(["SPY"])
    rows = [
        decoder.decode("stocks", {"ev": "T", "sym": "SPY", "t": OPEN_MS + (start + i) * 1000, "q": start + i,
                                  "p": 390.0 + i / 100, "s": 100, "x": 4, "c": [12], "i": f"t{start + i}"}).row
        for i in range(n)
    ]
    return frame_of("stock_trades", rows)


def test_batches_are_acknowledged_with_the_sha256_of_their_bytes(tmp_path):
    with LandingZone(tmp_path) as zone:
        first = zone.write_batch("stock_trades", SPY, stock_trades(3))
        second = zone.write_batch("stock_trades", SPY, stock_trades(2, start=3))
    entries = read_manifest(tmp_path)
    assert entries == [first, second]
    assert [(e.seq, e.batch_id, e.rows, e.recovered) for e in entries] == [(1, "000000000001", 3, False),
                                                                            (2, "000000000002", 2, False)]
    for entry in entries:
        path = tmp_path / entry.path
        assert entry.path == f"batches/trade_date=2022-05-20/underlying=SPY/table=stock_trades/{entry.batch_id}.parquet"
        assert entry.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry.bytes == path.stat().st_size
        assert verify_batch(tmp_path, entry) == path
    assert first.first_ts_ns == OPEN_MS * 1_000_000 and first.last_ts_ns == (OPEN_MS + 2000) * 1_000_000
    assert pl.read_parquet(tmp_path / first.path).equals(stock_trades(3))
    assert not list((tmp_path / TMP).iterdir())


def test_reopening_continues_the_sequence(tmp_path):
    with LandingZone(tmp_path) as zone:
        zone.write_batch("stock_trades", SPY, stock_trades(1))
        zone.write_batch("stock_trades", SPY, stock_trades(1, start=1))
    with LandingZone(tmp_path) as zone:
        assert zone.next_seq == 3
        assert zone.recovery == {"manifest_lines_cut": 0, "batches_adopted": 0, "partial_batches_discarded": 0,
                                 "batches_quarantined": 0}
        assert zone.write_batch("stock_trades", SPY, stock_trades(1, start=2)).seq == 3
    assert [e.seq for e in read_manifest(tmp_path)] == [1, 2, 3]


def test_a_second_writer_on_the_same_root_is_refused(tmp_path):
    with LandingZone(tmp_path):
        with pytest.raises(LandingError, match="in use by another capture"):
            LandingZone(tmp_path)
    LandingZone(tmp_path).close()  # released on close


def test_a_batch_being_written_at_a_crash_is_discarded(tmp_path):
    with LandingZone(tmp_path) as zone:
        zone.write_batch("stock_trades", SPY, stock_trades(2))
    (tmp_path / TMP / "000000000002.stock_trades.parquet").write_bytes(b"PAR1 half a batch")
    with LandingZone(tmp_path) as zone:
        assert zone.recovery["partial_batches_discarded"] == 1
        assert zone.next_seq == 2
        assert not list((tmp_path / TMP).iterdir())
    assert [e.seq for e in read_manifest(tmp_path)] == [1]


def test_a_complete_batch_without_its_manifest_line_is_adopted(tmp_path):
    with LandingZone(tmp_path) as zone:
        zone.write_batch("stock_trades", SPY, stock_trades(2))
        # crash after the rename, before the manifest line: the file is in place, unacknowledged
        orphan = zone.batch_path(2, "stock_trades", SPY)
        orphan.parent.mkdir(parents=True, exist_ok=True)
        stock_trades(4, start=2).write_parquet(orphan)
    with LandingZone(tmp_path) as zone:
        assert zone.recovery["batches_adopted"] == 1
        assert zone.next_seq == 3
        assert zone.write_batch("stock_trades", SPY, stock_trades(1, start=6)).seq == 3
    entries = read_manifest(tmp_path)
    assert [(e.seq, e.rows, e.recovered) for e in entries] == [(1, 2, False), (2, 4, True), (3, 1, False)]
    assert entries[1].sha256 == hashlib.sha256(orphan.read_bytes()).hexdigest()
    verify_batch(tmp_path, entries[1])


def test_a_torn_last_manifest_line_is_cut_and_its_batch_adopted(tmp_path):
    with LandingZone(tmp_path) as zone:
        zone.write_batch("stock_trades", SPY, stock_trades(2))
        second = zone.write_batch("stock_trades", SPY, stock_trades(3, start=2))
    manifest = tmp_path / MANIFEST
    data = manifest.read_bytes()
    manifest.write_bytes(data[: len(data) - 40])  # crash mid-append of the second line
    with LandingZone(tmp_path) as zone:
        assert zone.recovery["manifest_lines_cut"] == 1
        assert zone.recovery["batches_adopted"] == 1
        assert zone.next_seq == 3
    assert manifest.read_bytes().endswith(b"\n")
    entries = read_manifest(tmp_path)
    assert [(e.seq, e.recovered) for e in entries] == [(1, False), (2, True)]
    assert (entries[1].sha256, entries[1].rows, entries[1].path) == (second.sha256, second.rows, second.path)


def test_an_unreadable_orphan_is_quarantined_and_its_id_not_reused(tmp_path):
    with LandingZone(tmp_path) as zone:
        zone.write_batch("stock_trades", SPY, stock_trades(2))
        orphan = zone.batch_path(2, "stock_trades", SPY)
    orphan.write_bytes(b"not parquet at all")
    with LandingZone(tmp_path) as zone:
        assert zone.recovery["batches_quarantined"] == 1
        assert zone.recovery["batches_adopted"] == 0
        assert zone.next_seq == 3
    assert not orphan.exists()
    moved = tmp_path / QUARANTINE / "trade_date=2022-05-20" / "underlying=SPY" / "table=stock_trades" / orphan.name
    assert moved.read_bytes() == b"not parquet at all"
    assert [e.seq for e in read_manifest(tmp_path)] == [1]


def test_readers_skip_a_torn_last_line_without_a_writer(tmp_path):
    with LandingZone(tmp_path) as zone:
        zone.write_batch("stock_trades", SPY, stock_trades(2))
        zone.write_batch("stock_trades", SPY, stock_trades(2, start=2))
    manifest = tmp_path / MANIFEST
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text(lines[0] + lines[1][:-20])
    before = manifest.read_bytes()
    assert [e.seq for e in read_manifest(tmp_path)] == [1]
    assert manifest.read_bytes() == before  # a reader repairs nothing


def test_a_damaged_manifest_line_is_named(tmp_path):
    with LandingZone(tmp_path) as zone:
        zone.write_batch("stock_trades", SPY, stock_trades(1))
    manifest = tmp_path / MANIFEST
    manifest.write_text("{not json\n" + manifest.read_text())
    with pytest.raises(LandingError, match=r"manifest.jsonl, line 1"):
        read_manifest(tmp_path)


def test_verify_batch_names_a_changed_file(tmp_path):
    with LandingZone(tmp_path) as zone:
        entry = zone.write_batch("stock_trades", SPY, stock_trades(2))
    path = tmp_path / entry.path
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(LandingError, match=str(path)):
        verify_batch(tmp_path, entry)
    assert json.loads((tmp_path / MANIFEST).read_text())["sha256"] == entry.sha256
    assert Path(tmp_path / entry.path).exists()
