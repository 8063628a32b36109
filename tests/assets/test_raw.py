"""The whole graph materialized for every bundled sample partition (the session's
``m17 demo`` run): row counts and values against the samples' own ground truth
(PROVENANCE.md facts), reruns, and a corrupted sample materialized in-process.
"""

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.partitions import partition_key
from m17_platform import schemas
from m17_platform.definitions import defs
from m17_platform.lake import Lake, PartitionRef
from m17_platform.sources.samples import SAMPLE_PARTITIONS
from resources import LakeResource

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


def _rows(lake: Lake, table: str, day: dt.date, underlying: str) -> pl.DataFrame:
    return lake.read(schemas.table(table), PartitionRef(day, underlying), verify=True)


def test_every_partition_runs_every_asset_and_check(materialized):
    lake, reports, results = materialized
    n_checks = len(list(defs.resolve_asset_graph().asset_check_keys))
    for key, result in results.items():
        assert result.success, key
        materialized_keys = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()}
        assert materialized_keys == (
            {f"raw/{t}" for t in schemas.RAW_TABLES} | {f"enriched/{t}" for t in schemas.ENRICHED_TABLES}
            | {f"gold/{t}" for t in schemas.GOLD_TABLES} | {"gold/daily_report"}
        ), key
        assert len(result.get_asset_check_evaluations()) == n_checks, key
        # schema, nulls and sorted are ERROR checks: the real samples must pass them all
        for ev in result.get_asset_check_evaluations():
            if ev.severity.value == "ERROR":
                assert ev.passed, (key, ev.asset_key, ev.check_name, ev.metadata)


def test_lobster_amzn_partition(materialized):
    lake, _, _ = materialized
    trades = _rows(lake, "stock_trades", dt.date(2012, 6, 21), "AMZN")
    assert trades.height == 11_419
    assert trades.filter(pl.col("conditions").list.contains("hidden_execution")).height == 2_445
    assert trades["ts_ns"].is_sorted()
    # first execution: 09:30:00.017459617 ET, hidden, 1 share at $223.82, resting sell => buyer-initiated
    first = trades.row(0, named=True)
    assert first["ts_ns"] == 1_340_285_400_017_459_617
    assert (first["price"], first["size"], first["aggressor_side"]) == (223.82, 1, "B")
    quotes = _rows(lake, "stock_quotes", dt.date(2012, 6, 21), "AMZN")
    assert quotes.height > 0 and (quotes["bid"] < quotes["ask"]).all()
    assert _rows(lake, "option_trades", dt.date(2012, 6, 21), "AMZN").height == 0


def test_cboe_vix_trades_partition(materialized):
    lake, _, _ = materialized
    trades = _rows(lake, "option_trades", dt.date(2016, 6, 1), "VIX")
    assert trades.height == 2_295
    assert trades["size"].sum() == 306_679
    assert trades["option_symbol"].n_unique() == 230
    row = trades.filter(pl.col("sequence") == 78677916).row(0, named=True)
    assert row["option_symbol"] == "O:VIX160608C00012500" and row["price"] == 2.40 and row["size"] == 1
    quotes = _rows(lake, "option_quotes", dt.date(2016, 6, 1), "VIX")
    assert quotes.height == 2_295
    contracts = _rows(lake, "option_contracts", dt.date(2016, 6, 1), "VIX")
    assert contracts.height == 230 and set(contracts["exercise_style"]) == {"E"}


def test_cboe_interval_partitions_split_by_underlying(materialized):
    lake, _, _ = materialized
    a = _rows(lake, "option_quotes", dt.date(2021, 4, 26), "A")
    vix = _rows(lake, "option_quotes", dt.date(2021, 4, 26), "VIX")
    assert (a.height, vix.height) == (5_096, 15_064)
    greeks = _rows(lake, "option_vendor_greeks", dt.date(2021, 4, 26), "VIX")
    assert greeks.height == 15_064


def test_tda_spy_partition(materialized):
    lake, _, _ = materialized
    quotes = _rows(lake, "option_quotes", dt.date(2022, 5, 20), "SPY")
    assert quotes.height == 1_024
    greeks = _rows(lake, "option_vendor_greeks", dt.date(2022, 5, 20), "SPY")
    assert greeks.filter(pl.col("implied_volatility").is_null()).height == 12
    call = greeks.filter(pl.col("option_symbol") == "O:SPY220523C00382000").row(0, named=True)
    assert call["implied_volatility"] == pytest.approx(0.22196) and call["delta"] == pytest.approx(0.82)


def test_es_evening_session_lands_in_next_trade_date(materialized):
    lake, _, _ = materialized
    trades = _rows(lake, "futures_trades", dt.date(2023, 12, 26), "SPY")
    assert trades.height == 2_973
    assert trades["aggressor_side"].value_counts().sort("aggressor_side").rows() == [("B", 1_542), ("N", 1), ("S", 1_430)]
    assert set(trades["symbol"]) == {"ESH4"}
    book = _rows(lake, "futures_mbp10", dt.date(2023, 12, 26), "SPY")
    two_sided = book.filter(pl.col("bid_px_00").is_not_null() & pl.col("ask_px_00").is_not_null())
    open_ns = 1_703_545_200_000_000_000  # 2023-12-25 18:00 ET, Globex open for trade date 2023-12-26
    crossed = two_sided.filter(pl.col("bid_px_00") > pl.col("ask_px_00"))
    # orders cross in the pre-open (no matching until the open); never after it
    assert crossed.height == 891 and crossed["ts_ns"].max() < open_ns
    assert (two_sided.filter(pl.col("ts_ns") >= open_ns).select(pl.col("bid_px_00") < pl.col("ask_px_00")).to_series()).all()


def test_rates_and_duckdb_views(materialized):
    lake, _, _ = materialized
    con = lake.duckdb()
    counts = dict(
        con.execute(
            "select underlying, count(*) from option_trades where trade_date = ? group by 1 order by 1",
            [dt.date(2016, 6, 1)],
        ).fetchall()
    )
    assert counts == {"VIX": 2_295}
    rates = con.execute("select rate from rates where trade_date = ? and underlying = ?", [dt.date(2016, 6, 1), "VIX"]).fetchall()
    assert rates == [(0.045,)]  # no rate stated by the 2016 sample: the configured constant


def test_daily_report_written_with_metadata(materialized):
    _, reports, results = materialized
    for key, result in results.items():
        (mat,) = [m for m in result.get_asset_materialization_events() if m.asset_key.path == ["gold", "daily_report"]]
        meta = mat.materialization.metadata
        path = Path(meta["path"].value)
        assert path.parent.parent == reports and path.exists(), key
        html = path.read_text()
        assert "data:image/png;base64," in html
        assert "data:image/png;base64," in meta["report"].value or meta["tables"].value >= 1


def _files_of(lake_root: Path, reports_root: Path, ref: PartitionRef) -> dict[str, str]:
    """sha256 of every file of the partition ``ref`` in every table, its ground truth, and its report."""
    paths = list(lake_root.glob(f"*/*/{ref.hive_path}/*")) + list(lake_root.glob(f"_truth/*/*/{ref.hive_path}/*"))
    paths += list(reports_root.glob(f"{ref.trade_date.isoformat()}/{ref.underlying}*"))
    return {str(p.relative_to(lake_root.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths if p.is_file()}


@pytest.mark.slow
def test_rerun_of_a_partition_is_byte_identical(materialized, tmp_path, make_run_config):
    """A rerun of the main job for a partition the demo materialized (in another process)
    replaces every raw, enriched and gold partition and the report with the same bytes."""
    demo_lake, demo_reports, _ = materialized
    shutil.copytree(demo_lake.root, tmp_path / "lake")  # the session's lake stays as the demo left it
    shutil.copytree(demo_reports, tmp_path / "reports")
    lake, ref = Lake(tmp_path / "lake"), PartitionRef(dt.date(2016, 6, 1), "VIX")
    before = _files_of(lake.root, tmp_path / "reports", ref)
    commits = len(lake.commits())
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", ["VIX"])
        result = defs.resolve_job_def("main").execute_in_process(
            partition_key=partition_key(ref), instance=instance,
            run_config=make_run_config(lake.root, tmp_path / "reports"), raise_on_error=False)
    assert result.success
    assert len(lake.commits()) > commits  # every table was written again
    after = _files_of(lake.root, tmp_path / "reports", ref)
    assert len(before) > 40 and any(name.endswith(".html") for name in before)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    assert changed == []


def test_corrupted_sample_fails_with_file_line_field(tmp_path, make_run_config):
    samples = tmp_path / "samples"
    shutil.copytree(SAMPLES / "cboe_datashop_samples", samples / "cboe_datashop_samples")
    path = samples / "cboe_datashop_samples" / "UnderlyingOptionsTrades_2016-06-01.csv"
    lines = path.read_text().splitlines(keepends=True)
    fields = lines[41].split(",")
    fields[9] = "two-forty"  # trade_price
    lines[41] = ",".join(fields)
    path.write_text("".join(lines))
    ref = PartitionRef(dt.date(2016, 6, 1), "VIX")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", ["VIX"])
        result = defs.resolve_job_def("main").execute_in_process(
            partition_key=partition_key(ref),
            instance=instance,
            run_config=make_run_config(tmp_path / "lake", tmp_path / "reports", samples),
            raise_on_error=False,
        )
    assert not result.success
    failed_steps = {e.step_key: e.step_failure_data.error for e in result.all_events if e.is_step_failure}
    assert "raw_ingest" in failed_steps
    error, messages = failed_steps["raw_ingest"], []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    assert any("UnderlyingOptionsTrades_2016-06-01.csv, line 42, field 'trade_price'" in m for m in messages), messages
    # nothing half-written: the day's raw tables commit together, so none of them was written
    assert not [name for name, spec in schemas.RAW_TABLES.items() if Lake(tmp_path / "lake").exists(spec, ref)]
