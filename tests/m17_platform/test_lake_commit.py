"""The lake's guarantees: a day commits whole or not at all, a killed writer leaves nothing
half-done, every read verifies, and the same rows give the same files."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap

import polars as pl
import pyarrow.parquet as pq
import pytest

from m17_platform import schemas
from m17_platform.errors import LakeError
from m17_platform.lake import MANIFEST_NAME, Lake, PartitionRef
from m17_platform.lake.commit import STAGING
from m17_platform.lake.health import stale_inputs, verify_partition
from m17_platform.settings import IngestSettings

REF = PartitionRef(dt.date(2012, 6, 21), "AMZN")


def _quotes(n: int, symbol: str = "AMZN", offset: int = 0) -> pl.DataFrame:
    return pl.DataFrame({
        "ts_ns": [1_340_285_400_000_000_000 + (offset + i) * 1_000 for i in range(n)],
        "sequence": [offset + i for i in range(n)],
        "symbol": [symbol] * n, "underlying": [symbol] * n,
        "bid": [100.0 + i * 0.01 for i in range(n)], "bid_size": [100] * n,
        "ask": [100.05 + i * 0.01 for i in range(n)], "ask_size": [200] * n,
        "bid_exchange": ["XNAS"] * n, "ask_exchange": ["XNAS"] * n, "source": ["test"] * n,
    })


def _trades(n: int) -> pl.DataFrame:
    return pl.DataFrame({
        "ts_ns": [1_340_285_400_000_000_000 + i * 1_000 for i in range(n)], "sequence": list(range(n)),
        "symbol": ["AMZN"] * n, "underlying": ["AMZN"] * n, "price": [100.0] * n, "size": [100] * n,
        "exchange": ["XNAS"] * n, "conditions": [None] * n, "trade_id": [str(i) for i in range(n)],
        "canceled": [False] * n, "aggressor_side": [None] * n, "source": ["test"] * n,
    }, schema_overrides={"conditions": pl.List(pl.String), "aggressor_side": pl.String})


def _partition_bytes(lake: Lake, spec, ref) -> dict[str, bytes]:
    pdir = lake.partition_dir(spec, ref)
    return {p.name: p.read_bytes() for p in sorted(pdir.iterdir())}


def test_staged_partitions_commit_together(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(5), source="old")
    quotes = lake.stage(schemas.STOCK_QUOTES, REF, [_quotes(7)], source="new")
    trades = lake.stage(schemas.STOCK_TRADES, REF, [_trades(3)], source="new")
    # staged is not committed: readers still see the old day
    assert lake.manifest(schemas.STOCK_QUOTES, REF).rows == 5
    assert not lake.exists(schemas.STOCK_TRADES, REF)
    lake.commit([quotes, trades])
    assert lake.read(schemas.STOCK_QUOTES, REF).height == 7 and lake.read(schemas.STOCK_TRADES, REF).height == 3
    assert [e["table"] for e in lake.commits()[-1]["partitions"]] == ["raw.stock_quotes", "raw.stock_trades"]
    assert list((lake.root / STAGING).iterdir()) == []


def test_discarded_stages_change_nothing(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(5), source="old")
    before = _partition_bytes(lake, schemas.STOCK_QUOTES, REF)
    lake.stage(schemas.STOCK_QUOTES, REF, [_quotes(9)], source="new").discard()
    assert _partition_bytes(lake, schemas.STOCK_QUOTES, REF) == before
    assert list((lake.root / STAGING).iterdir()) == []


_STAGE_AND_WAIT = textwrap.dedent("""
    import sys, time, datetime as dt
    import polars as pl
    from m17_platform import schemas
    from m17_platform.lake import Lake, PartitionRef
    lake = Lake(sys.argv[1])
    ref = PartitionRef(dt.date(2012, 6, 21), "AMZN")
    frame = pl.read_parquet(sys.argv[2])
    staged = lake.stage(schemas.STOCK_QUOTES, ref, [frame], source="killed")
    print("staged", flush=True)
    time.sleep(120)
""")


def test_a_killed_writer_leaves_the_lake_as_it_was_and_its_stage_is_removed(lake: Lake, tmp_path):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(5), source="old")
    before = _partition_bytes(lake, schemas.STOCK_QUOTES, REF)
    frame_path = tmp_path / "rows.parquet"
    _quotes(50).write_parquet(frame_path)
    proc = subprocess.Popen([sys.executable, "-c", _STAGE_AND_WAIT, str(lake.root), str(frame_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "staged"
        staging = lake.root / STAGING
        stages = [p for p in staging.iterdir() if p.is_dir()]
        assert len(stages) == 1
        # a live writer's stage is never taken by another process's recovery
        assert lake.recover().removed == [] and stages[0].exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    recovery = lake.recover()
    assert recovery.removed == stages and not stages[0].exists()
    assert list(staging.iterdir()) == []
    assert _partition_bytes(lake, schemas.STOCK_QUOTES, REF) == before


def test_a_commit_killed_after_its_commit_point_is_finished_by_recovery(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(5), source="old")
    lake.write(schemas.STOCK_TRADES, REF, _trades(2), source="old")
    quotes = lake.stage(schemas.STOCK_QUOTES, REF, [_quotes(7)], source="new")
    trades = lake.stage(schemas.STOCK_TRADES, REF, [_trades(4)], source="new")
    staging = lake.root / STAGING
    # the journal is written (the commit point), then the process dies after the first swap
    entries = [{"stage": str(s.stage.path), "final": str(s.stage.final), "trash": str(staging / f"replaced-{i}")}
               for i, s in enumerate((quotes, trades))]
    (staging / "commit-dead.json").write_text(json.dumps(entries))
    os.rename(entries[0]["final"], entries[0]["trash"])
    os.rename(entries[0]["stage"], entries[0]["final"])
    for s in (quotes, trades):
        s.stage.lock.release(remove=False)  # as the kernel does when the process dies
    recovery = lake.recover()
    assert sorted(map(str, recovery.finished)) == sorted(e["final"] for e in entries)
    assert lake.read(schemas.STOCK_QUOTES, REF).height == 7
    assert lake.read(schemas.STOCK_TRADES, REF).height == 4
    assert [p.name for p in staging.iterdir()] == []


def test_same_rows_give_the_same_files_however_they_are_chunked(tmp_path):
    settings = IngestSettings(target_file_rows=40, row_group_rows=16)
    rows = pl.concat([_quotes(30, "AAA"), _quotes(45, "BBB")])
    layouts = {
        "one frame": [rows],
        "66 small chunks": [rows.slice(i, 2) for i in range(0, rows.height, 2)][:66] + [rows.slice(132)],
        "uneven": [rows.slice(0, 7), rows.slice(7, 50), rows.slice(57)],
        "out of order": [rows.slice(30), rows.slice(0, 30)],
    }
    files = {}
    for name, chunks in layouts.items():
        lake = Lake(tmp_path / name.replace(" ", "_"))
        manifest = lake.write_chunks(schemas.STOCK_QUOTES, REF, chunks, source="s", settings=settings)
        assert [f.rows for f in manifest.files] == [40, 35]
        pdir = lake.partition_dir(schemas.STOCK_QUOTES, REF)
        assert [pq.ParquetFile(pdir / f.name).metadata.num_rows for f in manifest.files] == [40, 35]
        assert pq.ParquetFile(pdir / manifest.files[0].name).metadata.row_group(0).num_rows == 16
        files[name] = _partition_bytes(lake, schemas.STOCK_QUOTES, REF)
    first = files.pop("one frame")
    for name, got in files.items():
        assert got == first, name


def test_a_rewrite_of_the_same_rows_changes_no_file(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(20), source="s", stats={"crossed": 0})
    before = _partition_bytes(lake, schemas.STOCK_QUOTES, REF)
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(20), source="s", stats={"crossed": 0})
    assert _partition_bytes(lake, schemas.STOCK_QUOTES, REF) == before
    assert len(lake.commits()) == 2  # the write times live in the commit log


def test_every_read_verifies_the_checksum(lake: Lake):
    manifest = lake.write(schemas.STOCK_QUOTES, REF, _quotes(20), source="s")
    path = lake.partition_dir(schemas.STOCK_QUOTES, REF) / manifest.files[0].name
    lake.read(schemas.STOCK_QUOTES, REF)  # hashed once and cached
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(LakeError, match="does not match the manifest"):
        lake.read(schemas.STOCK_QUOTES, REF)
    with pytest.raises(LakeError, match="does not match the manifest"):
        list(lake.iter_batches(schemas.STOCK_QUOTES, REF, max_rows=5))
    with pytest.raises(LakeError, match="does not match the manifest"):
        lake.duckdb()
    assert any("does not match" in p for p in verify_partition(lake, schemas.STOCK_QUOTES, REF))


def test_verify_partition_names_every_problem(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(20), source="s")
    pdir = lake.partition_dir(schemas.STOCK_QUOTES, REF)
    assert verify_partition(lake, schemas.STOCK_QUOTES, REF) == []
    (pdir / "stray.parquet").write_bytes(b"x")
    assert [p for p in verify_partition(lake, schemas.STOCK_QUOTES, REF) if "not named by the manifest" in p]
    (pdir / MANIFEST_NAME).write_text((pdir / MANIFEST_NAME).read_text()[:40])
    (problem,) = verify_partition(lake, schemas.STOCK_QUOTES, REF)
    assert "truncated" in problem and MANIFEST_NAME in problem
    with pytest.raises(LakeError, match="truncated"):
        lake.read(schemas.STOCK_QUOTES, REF)
    (pdir / MANIFEST_NAME).unlink()
    (problem,) = verify_partition(lake, schemas.STOCK_QUOTES, REF)
    assert "has no _manifest.json" in problem
    assert REF in lake.partition_folders(schemas.STOCK_QUOTES) and REF not in lake.partitions(schemas.STOCK_QUOTES)


def test_a_partition_built_from_a_replaced_input_is_stale(lake: Lake):
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(20), source="s")
    inputs = lake.input_shas([schemas.STOCK_QUOTES], REF)
    empty_rates = pl.from_arrow(schemas.RATES.schema.empty_table())
    lake.write(schemas.RATES, REF, empty_rates, source="derived", inputs=inputs)
    assert stale_inputs(lake, schemas.RATES, REF) == []
    lake.write(schemas.STOCK_QUOTES, REF, _quotes(21), source="s")
    assert stale_inputs(lake, schemas.RATES, REF) == ["raw.stock_quotes was replaced"]
