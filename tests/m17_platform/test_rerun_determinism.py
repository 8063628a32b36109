"""A rerun of a partition writes the same enriched and gold rows, bit for bit: whatever
polars' and numba's thread counts, however the quotes are cut into batches, in whatever
order the rows a builder sorts arrive (rerun_builders.py runs every builder as the
assets call it)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("rerun_builders", HERE / "rerun_builders.py")
rerun = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rerun)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory) -> Path:
    """The raw tables of every partition of ``rerun.PARTITIONS``, as Parquet."""
    root = tmp_path_factory.mktemp("rerun_raw")
    for key in rerun.PARTITIONS:
        folder = root / key.replace("|", "_")
        folder.mkdir()
        for name, frame in rerun.raw_frames(key).items():
            frame.write_parquet(folder / f"{name}.parquet")
    return root


def _raw(raw_dir: Path, key: str) -> dict[str, pl.DataFrame]:
    return {p.stem: pl.read_parquet(p) for p in sorted((raw_dir / key.replace("|", "_")).glob("*.parquet"))}


def _assert_frames_equal(a: pl.DataFrame, b: pl.DataFrame, what: str) -> None:
    try:
        assert_frame_equal(a, b, check_exact=True)
    except AssertionError as exc:
        raise AssertionError(f"{what}: {exc}") from None


def _assert_same(a: tuple[dict, dict], b: tuple[dict, dict], what: str) -> None:
    (tables_a, extras_a), (tables_b, extras_b) = a, b
    assert sorted(tables_a) == sorted(tables_b)
    for name in tables_a:
        _assert_frames_equal(tables_a[name], tables_b[name], f"{what}: {name}")
    assert json.dumps(extras_a, sort_keys=True, default=str) == json.dumps(extras_b, sort_keys=True, default=str), what


def _built_in(folder: Path) -> tuple[dict, dict]:
    tables = {p.stem: pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
    return tables, json.loads((folder / "extras.json").read_text())


def test_every_builder_gives_the_same_rows_under_other_thread_counts(raw_dir, tmp_path):
    outs = {}
    for label, polars_threads, numba_threads in (("one", "1", "1"), ("many", "4", "2")):
        env = dict(os.environ, POLARS_MAX_THREADS=polars_threads, NUMBA_NUM_THREADS=numba_threads)
        proc = subprocess.run([sys.executable, str(HERE / "rerun_builders.py"), str(raw_dir), str(tmp_path / label)],
                              env=env, capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[label] = tmp_path / label
    for key in rerun.PARTITIONS:
        folder = key.replace("|", "_")
        one, many = _built_in(outs["one"] / folder), _built_in(outs["many"] / folder)
        assert one[0]["flow_windows"].height > 0 or key != "2025-11-10|SPY"
        _assert_same(one, many, f"{key}, 1 vs 4 threads")


def test_every_builder_gives_the_same_rows_whatever_the_quote_batches(raw_dir):
    for key in rerun.PARTITIONS:
        raw = _raw(raw_dir, key)
        whole = rerun.build(key, raw, batch_rows=10_000_000)
        # contracts (and expiries) cut into many batches: a few hundred quotes each
        _assert_same(whole, rerun.build(key, raw, batch_rows=300), f"{key}, batches of 300 quotes")


def _shuffled(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    return frame[np.random.default_rng(seed).permutation(frame.height)] if frame.height else frame


def _gold(frames: dict, day, underlying: str, snapshots: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Every gold builder on ``frames`` (enriched tables, vendor greeks, contracts, stock
    quotes), each output in the lake's order."""
    from m17_platform.flow import gold

    e, g = frames["option_trades_enriched"], frames["option_trade_greeks"]
    stock, futures = frames["stock_trades_enriched"], frames["futures_trades_enriched"]
    prints = gold.build_off_exchange_prints(stock)[0]
    built = {
        "flow_windows": gold.build_flow_windows(e, g), "flow_packets": gold.build_flow_packets(e, g),
        "flow_alerts": gold.build_flow_alerts(e, g, day),
        "gamma_exposure": gold.build_gamma_exposure(e, g, frames["option_vendor_greeks"], snapshots,
                                                    frames["option_contracts"], day, underlying),
        "off_exchange_prints": (prints,),
        "off_exchange_events": gold.build_off_exchange_events(prints, frames["stock_quotes"]),
        "bars": gold.build_bars(stock, futures, e),
    }
    return {name: rerun.lake_order(name, result[0]) for name, result in built.items()}


def test_gold_builders_ignore_the_order_their_input_rows_arrive_in(raw_dir):
    """The gold builders sort what they read (prints by contract and time, stock prints,
    quotes by time), so the rows can arrive in any order."""
    from m17_platform.flow import gold

    for key in rerun.PARTITIONS:
        tables, _ = rerun.build(key, _raw(raw_dir, key))
        day, underlying = rerun.parse(key)
        raw = _raw(raw_dir, key)
        vendor = raw["option_vendor_greeks"]
        snapshots = gold.snapshot_quote_greeks([tables["option_quote_greeks"]], vendor)
        names = ("option_trades_enriched", "option_trade_greeks", "stock_trades_enriched", "futures_trades_enriched")
        frames = {name: tables[name] for name in names} | {
            "option_vendor_greeks": vendor, "option_contracts": raw["option_contracts"],
            "stock_quotes": raw["stock_quotes"]}
        expected = _gold(frames, day, underlying, snapshots)
        shuffled = {name: _shuffled(frame, seed) for seed, (name, frame) in enumerate(frames.items())}
        got = _gold(shuffled, day, underlying, snapshots)
        for name, frame in expected.items():
            _assert_frames_equal(frame, got[name], f"{key}: {name} from shuffled inputs")
