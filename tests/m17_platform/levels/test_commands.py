"""``m17 signals build|export`` and ``m17 validate signals`` on a lake written here from a
seeded random hour of ES book, prints and SPY quotes (fast: no Dagster), and the
generated docs/signals.md."""

import datetime as dt
import io
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from m17_platform.cli_errors import UsageError
from m17_platform.lake import Lake, PartitionRef
from m17_platform.levels import commands
from m17_platform.levels.checks import run_chain
from m17_platform.levels.docs import signals_markdown
from m17_platform.levels.lake_inputs import level_inputs
from m17_platform.levels.schemas import LEVEL_SIGNALS, LEVEL_TABLES
from m17_platform.levels.validate import validate_partition
from m17_platform.schemas import table

REF = PartitionRef(dt.date(2025, 11, 10), "SPY")


def hour(kit, seed: int = 3) -> dict[str, pl.DataFrame]:
    """09:30-10:30 ET: an ES book row and maybe a print every second on a random walk (steps of
    up to 4 ticks, so some moves reach the $2 label threshold), SPY
    quotes at ES / 10.004 (so the ratio is measured), no options."""
    rng = np.random.default_rng(seed)
    t0, n = kit.at(9, 30), 3600
    best = 6800.0 + 0.25 * np.cumsum(rng.choice([-4, -1, 0, 0, 1, 4], size=n))
    rows, prints = [], []
    for i in range(n):
        t = t0 + i * kit.NS
        rows.append({"ts_ns": t + 1000, "bids": kit.ladder(best[i], list(rng.integers(1, 60, 10)), "bid"),
                     "asks": kit.ladder(best[i] + 0.25, list(rng.integers(1, 60, 10)), "ask")})
        if rng.random() < 0.6:
            buy = rng.random() < 0.5
            prints.append({"ts_ns": t + 500, "price": best[i] + 0.25 if buy else best[i],
                           "size": int(rng.integers(1, 20)), "aggressor": "B" if buy else "S"})
    fut = kit.trades(prints)
    spy = kit.spy_quotes([t0 + i * kit.NS + 700 for i in range(n)], [float((b + 0.125) / 10.004) for b in best])
    return {"futures_mbp10": kit.book(rows), "futures_trades_enriched": fut, "bars": kit.bars_of(fut),
            "stock_quotes": spy}


def write_partition(lake: Lake, ref: PartitionRef, inputs: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The inputs and the five level tables of ``ref`` in ``lake``, as the asset writes them."""
    for name, frame in inputs.items():
        lake.write(table(name), ref, frame, source="test")
    result = run_chain(level_inputs(lake, ref, commands.SETTINGS), ref.trade_date, ref.underlying, commands.SETTINGS)
    shas = lake.input_shas([table(n) for n in inputs], ref)
    for name, spec in LEVEL_TABLES.items():
        lake.write(spec, ref, result.tables[name], source="test", inputs=shas)
    return result.tables


@pytest.fixture(scope="module")
def built(kit, tmp_path_factory):
    lake = Lake(tmp_path_factory.mktemp("signals") / "lake")
    tables = write_partition(lake, REF, hour(kit))
    return lake, tables["level_signals"]


def test_as_of_is_new_york_wall_clock_on_the_trade_date(kit):
    assert commands.parse_as_of("10:00:00", REF.trade_date) == kit.at(10, 0)
    assert commands.parse_as_of("10:00:00.25", REF.trade_date) == kit.at(10, 0, 0.25)
    # CME's evening session belongs to the next trade date: the day before, with its date
    assert commands.parse_as_of("2025-11-09 18:30:00", REF.trade_date) == kit.at(18, 30, day=dt.date(2025, 11, 9))
    for bad in ("10:00", "25:00:00", "10:61:00", "ten", "2025-11-08 18:00:00", "2025-13-01 10:00:00"):
        with pytest.raises(UsageError, match=r"--as-of '.*': .*HH:MM:SS"):
            commands.parse_as_of(bad, REF.trade_date)


def test_bad_arguments_are_one_line_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="--partition: partition '2025-11-10' is not DATE|UNDERLYING"):
        commands.parse_partition("2025-11-10")
    with pytest.raises(UsageError, match="expected a file name ending in .parquet"):
        commands.check_out_path(str(tmp_path / "x.csv"))
    with pytest.raises(UsageError, match="does not exist"):
        commands.check_out_path(str(tmp_path / "missing" / "x.parquet"))


def test_build_as_of_equals_the_full_day_for_every_signal_decided_by_then(kit, built, tmp_path):
    lake, full = built
    out, stream = tmp_path / "asof.parquet", io.StringIO()
    assert commands.run_signals_build(str(REF), "10:00:00", str(lake.root), str(out), stream=stream) == 0
    text = stream.getvalue()
    cut = kit.at(10, 0)
    due = full.filter(pl.col("decision_ts_ns") <= cut)
    assert due.height > 0
    written = pl.read_parquet(out)
    assert written.height == due.height and set(written["event_id"]) == set(due["event_id"])
    # labels: null exactly where the window had not ended by the cut
    open_windows = written.filter(pl.col("label_end_ts_ns") >= cut)
    assert open_windows.height > 0 and open_windows["outcome"].null_count() == open_windows.height
    assert written.filter(pl.col("label_end_ts_ns") < cut)["outcome"].null_count() == 0
    assert f"signals decided by then: {due.height:,} (the full day in the lake: {full.height:,})" in text
    assert ("labels still null (window not ended before the as-of instant or the data's end): "
            f"{open_windows.height}") in text
    assert "look-ahead: ok" in text and f"wrote {due.height:,} signals to {out}" in text


def test_past_the_end_of_the_data_labels_stay_null_as_in_the_full_day(built):
    lake, full = built
    result = commands.build_as_of(lake, REF, commands.parse_as_of("23:00:00", REF.trade_date))
    assert result.mismatches == [] and result.signals.height == full.height
    # without the clamp to the data's end, windows past the last print were labelled CHOP
    assert result.signals["outcome"].null_count() == full["outcome"].null_count() > 0


def test_build_exits_1_when_the_lake_disagrees(built, tmp_path):
    lake, full = built
    other = Lake(tmp_path / "lake")
    for name in ("futures_mbp10", "futures_trades_enriched", "bars", "stock_quotes"):
        other.write(table(name), REF, lake.read(table(name), REF), source="test")
    first = full.sort("decision_ts_ns").item(0, "event_id")
    leaked = full.with_columns(pl.when(pl.col("event_id") == first).then(pl.col("tape_buy_vol") + 7)
                               .otherwise(pl.col("tape_buy_vol")).alias("tape_buy_vol"))
    other.write(LEVEL_SIGNALS, REF, leaked, source="test")
    stream = io.StringIO()
    assert commands.run_signals_build(str(REF), "10:30:00", str(other.root), stream=stream) == 1
    assert "look-ahead: MISMATCH: 1 value(s) of 1 signal(s) differ" in stream.getvalue()
    assert f"{first}  tape_buy_vol:" in stream.getvalue()


def test_build_names_a_partition_the_lake_does_not_have(built):
    lake, _ = built
    from m17_platform.errors import LakeError

    with pytest.raises(LakeError, match=r"partition 2025-11-11\|SPY is not in the lake under"):
        commands.run_signals_build("2025-11-11|SPY", "10:00:00", str(lake.root), stream=io.StringIO())


def test_export_concatenates_the_range_with_date_and_underlying(built, tmp_path):
    _, full = built
    export = Lake(tmp_path / "lake")
    refs = [PartitionRef(dt.date(2025, 11, d), u) for d, u in ((10, "SPY"), (11, "SPY"), (12, "SPY"), (11, "QQQ"))]
    for ref in refs:
        export.write(LEVEL_SIGNALS, ref, full, source="test")
    out = tmp_path / "signals.parquet"
    out.write_bytes(b"an older export")
    stream = io.StringIO()
    assert commands.run_signals_export("2025-11-10", "2025-11-11", str(out), "SPY", str(export.root), progress=False,
                                       stream=stream) == 0
    got = pl.read_parquet(out)
    assert got.columns == list(commands.EXPORT_COLUMNS)
    assert got.columns[:2] == ["trade_date", "underlying"] and set(got.columns) >= set(LEVEL_SIGNALS.columns)
    assert got.height == 2 * full.height
    assert sorted(set(got["trade_date"])) == [dt.date(2025, 11, 10), dt.date(2025, 11, 11)]
    assert set(got["underlying"]) == {"SPY"}
    assert f"wrote {2 * full.height:,} signals of 2 partition(s)" in stream.getvalue()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert commands.run_signals_export("2025-11-01", "2025-11-30", str(out), None, str(export.root), progress=False,
                                       stream=io.StringIO()) == 0
    assert pl.read_parquet(out).height == 4 * full.height
    with pytest.raises(UsageError, match=r"no gold.level_signals partition of SPY from 2025-11-13 to 2025-11-14"):
        commands.run_signals_export("2025-11-13", "2025-11-14", str(out), "SPY", str(export.root), progress=False)
    with pytest.raises(UsageError, match="--end 2025-11-09 is before --start 2025-11-10"):
        commands.run_signals_export("2025-11-10", "2025-11-09", str(out), None, str(export.root))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    out = tmp_path / "x.parquet"
    out.write_bytes(b"old")

    def fail(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        commands.write_parquet_atomic(pl.DataFrame({"a": [1]}), out)
    assert out.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["x.parquet"]


def test_validate_a_clean_partition_finds_no_error(built):
    lake, full = built
    findings = validate_partition(lake, REF, full, commands.SETTINGS)
    levels = {f.check: f.level for f in findings}
    assert [f for f in findings if f.level == "ERROR"] == []
    assert levels["check.no_lookahead"] == "INFO" and levels["check.labels_after_decision"] == "INFO"
    message = {f.check: f.message for f in findings}
    assert message["rows"] == f"{full.height:,} signals"
    assert message["check.no_lookahead"].startswith("passed (cut_points=5, mismatches=0")
    assert all(f"{k}=" in message["labels"] for k in ("BREAK", "BOUNCE", "CHOP", "null"))
    stream = io.StringIO()
    assert commands.run_validate_signals(str(REF), str(lake.root), stream=stream) == 0
    assert stream.getvalue().splitlines()[-1].startswith("m17 validate signals: 1 partition(s)")
    assert " 0 ERROR" in stream.getvalue().splitlines()[-1]


def test_validate_flags_each_broken_rule_as_an_error(built, tmp_path):
    _, full = built
    first, second = full.sort("decision_ts_ns")["event_id"][:2]
    broken = full.with_columns(
        pl.when(pl.col("event_id") == first).then(0.40).otherwise(pl.col("distance")).alias("distance"),
        pl.when(pl.col("event_id") == first).then(1.5).otherwise(pl.col("tape_imbalance")).alias("tape_imbalance"),
        pl.when(pl.col("event_id") == second).then(pl.col("ts_ns") - 1).otherwise(pl.col("decision_ts_ns"))
        .alias("decision_ts_ns"),
        pl.when(pl.col("event_id") == second).then(-1.0).otherwise(pl.col("es_spy_ratio")).alias("es_spy_ratio"),
    )
    broken = pl.concat([broken, broken.filter(pl.col("event_id") == first)])
    other = Lake(tmp_path / "lake")
    other.write(LEVEL_SIGNALS, REF, broken, source="test")
    found = validate_partition(other, REF, broken, lookahead=False)
    errors = [(f.check, f.message) for f in found if f.level == "ERROR"]
    text = "\n".join(f"{c}: {m}" for c, m in errors)
    for expected in ("event_id: 1 duplicate event_id(s)", "distance: 2 row(s) break: distance in [0, critical_zone",
                     "tape_imbalance: 2 row(s) break", "times: 1 row(s) break: decision after the bar start",
                     "ratios: 1 row(s) break: es_spy_ratio > 0", "times: 1 row(s) break: label window"):
        assert expected in text, text
    stream = io.StringIO()
    assert commands.run_validate_signals(str(REF), str(other.root), stream=stream) == 1
    assert "ERROR  distance" in stream.getvalue()


def test_docs_signals_md_is_generated_from_the_schemas():
    path = Path(__file__).resolve().parents[3] / "docs" / "signals.md"
    text = signals_markdown()
    assert path.read_text() == text, "run ./m17 docs"
    for name in LEVEL_TABLES:
        assert f"### gold.{name}" in text
    assert "`[t, decision)`" in text and "`(decision, decision + 5 min]`" in text
    assert "`ratio_source`" in text and "## book_quality" in text
