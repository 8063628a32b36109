"""`m17 lake`, `m17 lake verify` and `m17 lake recover` as a user runs them."""

import datetime as dt
import os
import subprocess
import sys

import polars as pl

from m17_platform import schemas
from m17_platform.lake import MANIFEST_NAME, Lake, PartitionRef
from m17_platform.settings import PROJECT_ROOT

REF = PartitionRef(dt.date(2012, 6, 21), "AMZN")


def _m17(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "m17_platform.cli", *args], cwd=PROJECT_ROOT,
                          env=dict(os.environ), capture_output=True, text=True, timeout=120)


def _rates(n: int) -> pl.DataFrame:
    return pl.DataFrame({"date": [dt.date(2012, 6, 21)] * n, "tenor_days": list(range(1, n + 1)), "rate": [0.01] * n,
                         "dividend_yield": [0.0] * n, "underlying": ["AMZN"] * n, "source": ["test"] * n},
                        schema_overrides={"tenor_days": pl.Int32})


def test_lake_lists_verifies_and_names_broken_and_stale_partitions(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.write(schemas.RATES, REF, _rates(3), source="vendor")
    other = PartitionRef(dt.date(2012, 6, 22), "AMZN")
    lake.write(schemas.RATES, other, _rates(2), source="vendor")
    proc = _m17("lake", "verify", "--root", str(lake.root))
    assert proc.returncode == 0 and "no problems" in proc.stdout
    # a truncated manifest, a flipped byte, a stale computed partition
    mpath = lake.partition_dir(schemas.RATES, other) / MANIFEST_NAME
    mpath.write_text(mpath.read_text()[:50])
    lake.write(schemas.OPTION_CONTRACTS, REF, pl.from_arrow(schemas.OPTION_CONTRACTS.schema.empty_table()),
               source="derived", inputs=lake.input_shas([schemas.RATES], REF))
    lake.write(schemas.RATES, REF, _rates(4), source="vendor")
    proc = _m17("lake", "--root", str(lake.root))
    assert proc.returncode == 0, proc.stderr
    assert "stale" in proc.stdout and "raw.rates was replaced; rebuild it" in proc.stdout
    assert "broken" in proc.stdout and "truncated" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    part = lake.partition_dir(schemas.RATES, REF) / lake.manifest(schemas.RATES, REF).files[0].name
    data = bytearray(part.read_bytes())
    data[-20] ^= 0xFF
    part.write_bytes(bytes(data))
    proc = _m17("lake", "verify", "--root", str(lake.root))
    assert proc.returncode == 1
    assert "does not match the manifest" in proc.stdout and "3 partition(s) with problems" in proc.stdout


def test_lake_recover_removes_a_dead_writers_stage(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.write(schemas.RATES, REF, _rates(3), source="vendor")
    orphan = lake.root / ".staging" / "rates-0123456789abcdef"
    orphan.mkdir(parents=True)
    (orphan / "part-00000.parquet").write_bytes(b"half written")
    proc = _m17("lake", "recover", "--root", str(lake.root))
    assert proc.returncode == 0 and "0 finished, 1 removed" in proc.stdout
    assert not orphan.exists() and lake.read(schemas.RATES, REF).height == 3
