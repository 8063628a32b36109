"""Quality checks: which checks apply, and what each reports on clean and broken partitions.

Frames are built with polars, made valid with ``schemas.conform`` and then broken on
purpose (a null in a required column can only be injected after ``conform``, which
refuses it). The first test that runs Great Expectations pays for its import (several
seconds), once per process, through the ``engine`` fixture.
"""

import ast
import datetime as dt
import json
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from m17_platform import quality, schemas
from m17_platform.calendar import session_open_close_ns
from m17_platform.settings import QualitySettings

OPTION_DAY = dt.date(2016, 6, 1)
STOCK_DAY = dt.date(2012, 6, 21)
NY = ZoneInfo("America/New_York")


def et_ns(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> int:
    """ns since epoch of a New York wall-clock time."""
    return int(dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=NY).timestamp()) * 1_000_000_000


def valid(frame: pl.DataFrame, spec: schemas.TableSchema) -> pl.DataFrame:
    return pl.from_arrow(schemas.conform(frame, spec))


def set_at(frame: pl.DataFrame, row: int, **values) -> pl.DataFrame:
    """``frame`` with ``values`` written into row ``row`` (keeping each column's dtype)."""
    idx = pl.int_range(pl.len())
    return frame.with_columns(
        pl.when(idx == row).then(pl.lit(v, dtype=frame.schema[c])).otherwise(pl.col(c)).alias(c)
        for c, v in values.items()
    )


def by_name(outcomes):
    return {o.name: o for o in outcomes}


# --- frames ----------------------------------------------------------------------------

OQ_CONTRACTS = (("O:SPY160601C00210000", 210.0, "C"), ("O:SPY160601P00205000", 205.0, "P"))
OQ_PER = 20
ZERO_BID_ROW, LOCKED_ROW, ONE_SIDED_ROW = 5, 7, 9


def option_quotes() -> pl.DataFrame:
    """40 clean SPY 0DTE quotes, two contracts x 20, stored by contract then time.

    Row 5 has a zero bid, row 7 is locked (bid == ask), row 9 has no bid (one-sided):
    all legitimate, so every check passes.
    """
    cols = {c: [] for c in schemas.OPTION_QUOTES.columns}
    for k, (symbol, strike, right) in enumerate(OQ_CONTRACTS):
        for i in range(OQ_PER):
            row = k * OQ_PER + i
            bid = round(1.0 + 0.01 * i, 2)
            ask = round(bid + 0.05, 2)
            if row == ZERO_BID_ROW:
                bid, ask = 0.0, 0.05
            if row == LOCKED_ROW:
                ask = bid
            one_sided = row == ONE_SIDED_ROW
            values = dict(
                ts_ns=et_ns(OPTION_DAY, 10) + i * 1_000_000_000,
                sequence=row,
                option_symbol=symbol,
                underlying="SPY",
                root="SPY",
                expiration=OPTION_DAY,
                strike=strike,
                right=right,
                bid=None if one_sided else bid,
                bid_size=None if one_sided else 10,
                ask=ask,
                ask_size=20,
                bid_exchange=None if one_sided else "C",
                ask_exchange="X",
                source="synthetic.option_quotes",
            )
            for c, v in values.items():
                cols[c].append(v)
    return valid(pl.DataFrame(cols, strict=False), schemas.OPTION_QUOTES)


def stock_trades() -> pl.DataFrame:
    """10 clean SPY prints over the extended session of 2012-06-21 (04:00 to 20:00 ET)."""
    times = [(4, 0), (8, 0), (9, 30), (10, 0), (11, 0), (12, 0), (13, 0), (15, 59), (16, 30), (19, 59)]
    n = len(times)
    frame = pl.DataFrame(
        {
            "ts_ns": [et_ns(STOCK_DAY, h, m) for h, m in times],
            "sequence": list(range(n)),
            "symbol": ["SPY"] * n,
            "underlying": ["SPY"] * n,
            "price": [135.0 + 0.01 * i for i in range(n)],
            "size": [100] * n,
            "exchange": ["P"] * n,
            "conditions": [["@"]] * (n - 1) + [None],
            "trade_id": [str(i) for i in range(n)],
            "canceled": [False] * n,
            "aggressor_side": [None] * n,
            "source": ["synthetic.stock_trades"] * n,
        },
        strict=False,
    )
    return valid(frame, schemas.STOCK_TRADES)


def option_prints(root: str, underlying: str, symbol: str, expiration: dt.date, strike: float) -> pl.DataFrame:
    """Two prints of one contract: 10:00 ET and 16:10 ET (after the equity close)."""
    frame = pl.DataFrame(
        {
            "ts_ns": [et_ns(OPTION_DAY, 10), et_ns(OPTION_DAY, 16, 10)],
            "sequence": [0, 1],
            "option_symbol": [symbol] * 2,
            "underlying": [underlying] * 2,
            "root": [root] * 2,
            "expiration": [expiration] * 2,
            "strike": [strike] * 2,
            "right": ["C"] * 2,
            "price": [1.25, 1.30],
            "size": [5, 7],
            "exchange": ["C", "C"],
            "conditions": [["I"], None],
            "trade_id": ["t0", "t1"],
            "canceled": [False, False],
            "source": ["synthetic.option_trades"] * 2,
        },
        strict=False,
    )
    return valid(frame, schemas.OPTION_TRADES)


def vix_prints() -> pl.DataFrame:
    return option_prints("VIX", "VIX", "O:VIX160615C00020000", dt.date(2016, 6, 15), 20.0)


def a_prints() -> pl.DataFrame:
    return option_prints("A", "A", "O:A160617C00045000", dt.date(2016, 6, 17), 45.0)


@pytest.fixture(scope="module")
def engine() -> None:
    """Import Great Expectations and build its context once (the import takes seconds)."""
    quality.warm_up()


def run(frame, spec, day, **kwargs):
    outcomes = quality.validate_table(frame, spec, day, **kwargs)
    assert [o.name for o in outcomes] == list(quality.check_names(spec))
    return by_name(outcomes)


def failing(outcomes) -> set[str]:
    return {name for name, o in outcomes.items() if not o.passed}


# --- which checks, described how --------------------------------------------------------


def test_check_names_depend_on_the_spec_only():
    names = {name: quality.check_names(spec) for name, spec in schemas.RAW_TABLES.items()}
    assert names["option_quotes"] == (
        "schema", "nulls", "positive_prices", "bid_le_ask", "in_session", "sorted", "duplicates",
    )
    assert names["option_trades"] == ("schema", "nulls", "positive_prices", "in_session", "sorted", "duplicates")
    assert names["stock_quotes"] == ("schema", "nulls", "bid_le_ask", "in_session", "sorted", "duplicates")
    assert names["futures_mbp10"] == ("schema", "nulls", "bid_le_ask", "in_session", "sorted", "duplicates")
    assert names["option_contracts"] == ("schema", "nulls", "positive_prices", "sorted", "duplicates")
    assert names["rates"] == ("schema", "nulls", "sorted", "duplicates")
    for table_names in names.values():
        order = [quality.CHECK_ORDER.index(n) for n in table_names]
        assert order == sorted(order)


def test_severities_and_descriptions():
    assert {n for n, s in quality.CHECK_SEVERITY.items() if s == quality.ERROR} == {"schema", "nulls", "sorted"}
    assert {n for n, s in quality.CHECK_SEVERITY.items() if s == quality.WARN} == {
        "positive_prices", "bid_le_ask", "in_session", "duplicates",
    }
    for name in quality.CHECK_ORDER:
        generic = quality.check_description(name)
        assert generic == quality.CHECK_DESCRIPTIONS[name] and "\n" not in generic
    infos = quality.check_infos(schemas.OPTION_QUOTES)
    assert [i.name for i in infos] == list(quality.check_names(schemas.OPTION_QUOTES))
    lines = {i.name: i.description for i in infos}
    assert lines["bid_le_ask"] == "bid <= ask on at least 99.9% of two-sided quotes"
    assert lines["nulls"] == "no nulls in the 9 required columns; bid/ask at most 5% null"
    assert lines["sorted"] == "(ts_ns, sequence) non-decreasing within each option_symbol, in stored order"
    assert lines["duplicates"] == "at most 0.1% of rows share a (option_symbol, ts_ns, sequence) key"
    assert all("\n" not in line for line in lines.values())
    with pytest.raises(KeyError, match="known checks"):
        quality.check_severity("nope")


def test_domain_module_imports_no_dagster_and_validates_without_assert():
    source = Path(quality.__file__).read_text()
    tree = ast.parse(source)
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.split(".")[0] == "dagster"]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Assert)]


# --- empty frames ------------------------------------------------------------------------


@pytest.mark.parametrize("spec", list(schemas.RAW_TABLES.values()), ids=list(schemas.RAW_TABLES))
def test_empty_frame_passes_every_check(spec):
    outcomes = run(schemas.empty_frame(spec), spec, OPTION_DAY)
    for o in outcomes.values():
        assert o.passed, (o.name, o.metadata)
        assert o.metadata["rows"] == 0
        assert "ge_skipped" in o.metadata
        assert o.severity == quality.CHECK_SEVERITY[o.name]


# --- option quotes -----------------------------------------------------------------------


def test_clean_option_quotes_pass_with_exact_metadata(engine):
    frame = option_quotes()
    out = run(frame, schemas.OPTION_QUOTES, OPTION_DAY)
    assert failing(out) == set()
    assert all(o.metadata["rows"] == 40 for o in out.values())

    schema = out["schema"].metadata
    assert schema["column_order_ok"] is True
    assert schema["dtype_mismatch_count"] == 0 and schema["missing_columns"] == ""

    nulls = out["nulls"].metadata
    assert nulls["bid_null_count"] == 1 and nulls["bid_null_rate"] == 1 / 40
    assert nulls["ask_null_count"] == 0 and nulls["ask_null_rate"] == 0.0
    assert nulls["required_null_count"] == 0 and nulls["required_columns_with_nulls"] == ""
    assert nulls["max_null_rate"] == 0.05
    assert nulls["ge_expectations"] == 11  # 9 required + bid + ask
    assert nulls["ge_unexpected_count"] == 1

    quotes = out["bid_le_ask"].metadata
    assert quotes["two_sided"] == 39
    assert (quotes["crossed"], quotes["locked"], quotes["zero_bid"]) == (0, 1, 1)
    assert quotes["locked_rate"] == 1 / 39 and quotes["zero_bid_rate"] == 1 / 39
    assert quotes["crossed_rate"] == 0.0 and quotes["bid_le_ask_rate"] == 1.0
    assert quotes["min_bid_le_ask_rate"] == 0.999
    assert quotes["ge_unexpected_count"] == 0

    session = out["in_session"].metadata
    assert session["rows_outside"] == 0 and session["in_session_rate"] == 1.0
    assert session["window_start"] == "2016-06-01T13:30:00+00:00"
    assert session["window_end"] == "2016-06-01T20:15:00+00:00"  # SPY options trade to 16:15 ET
    assert session["late_close_roots"] == "SPY"
    assert session["first_ts"] == "2016-06-01T14:00:00+00:00"
    assert session["last_ts"] == "2016-06-01T14:00:19+00:00"

    order = out["sorted"].metadata
    assert order["out_of_order"] == 0 and order["first_out_of_order_row"] == -1
    assert order["instruments"] == 2 and order["order"] == "ts_ns,sequence within option_symbol"

    dups = out["duplicates"].metadata
    assert (dups["duplicate_rows"], dups["redundant_rows"], dups["duplicate_rate"]) == (0, 0, 0.0)

    for o in out.values():
        json.dumps(o.metadata)
        assert all(isinstance(v, (int, float, str, bool)) for v in o.metadata.values()), o.name
        assert o.description and "\n" not in o.description


def test_crossed_quote_fails_bid_le_ask_only(engine):
    frame = set_at(option_quotes(), 12, bid=1.30, ask=1.20)
    out = run(frame, schemas.OPTION_QUOTES, OPTION_DAY)
    assert failing(out) == {"bid_le_ask"}
    meta = out["bid_le_ask"].metadata
    assert out["bid_le_ask"].severity == "WARN"
    assert (meta["two_sided"], meta["crossed"], meta["locked"]) == (39, 1, 1)
    assert meta["crossed_rate"] == 1 / 39 and meta["bid_le_ask_rate"] == 1 - 1 / 39
    assert meta["ge_unexpected_count"] == 1
    assert meta["ge_unexpected_fraction"] == pytest.approx(1 / 39)


def test_crossed_quote_within_a_looser_threshold_passes(engine):
    frame = set_at(option_quotes(), 12, bid=1.30, ask=1.20)
    loose = QualitySettings(min_bid_le_ask_rate=0.95)
    out = run(frame, schemas.OPTION_QUOTES, OPTION_DAY, quality=loose)
    assert failing(out) == set()
    assert out["bid_le_ask"].metadata["crossed"] == 1
    assert out["bid_le_ask"].metadata["min_bid_le_ask_rate"] == 0.95
    assert "95%" in out["bid_le_ask"].description


def test_null_in_required_column_fails_nulls(engine):
    frame = set_at(option_quotes(), 3, source=None)
    out = run(frame, schemas.OPTION_QUOTES, OPTION_DAY)
    assert failing(out) == {"nulls"}
    nulls = out["nulls"]
    assert nulls.severity == "ERROR"
    assert nulls.metadata["required_null_count"] == 1
    assert nulls.metadata["required_columns_with_nulls"] == "source"
    assert nulls.metadata["source_null_count"] == 1
    assert nulls.metadata["ge_failed"] == "source"
    assert nulls.metadata["ge_unexpected_count"] == 2  # the null source and the tolerated null bid
    assert nulls.metadata["ge_unexpected_fraction"] == 1 / 40


def test_bid_null_rate_above_limit_fails_nulls(engine):
    frame = option_quotes()
    for row in (1, 2, 3):
        frame = set_at(frame, row, bid=None)
    out = run(frame, schemas.OPTION_QUOTES, OPTION_DAY)
    assert failing(out) == {"nulls"}
    meta = out["nulls"].metadata
    assert meta["bid_null_count"] == 4 and meta["bid_null_rate"] == 0.1
    assert meta["required_null_count"] == 0
    assert meta["ge_failed"] == "nullable:bid"
    assert out["bid_le_ask"].metadata["two_sided"] == 36


def test_negative_strike_fails_positive_prices(engine):
    frame = set_at(option_quotes(), 30, strike=-205.0)
    out = run(frame, schemas.OPTION_QUOTES, OPTION_DAY)
    assert failing(out) == {"positive_prices"}
    assert out["positive_prices"].metadata["strike_nonpositive"] == 1
    assert out["positive_prices"].severity == "WARN"


def test_quote_before_the_open_fails_in_session(engine):
    # the first quote of the second contract, so the stored order still holds
    frame = set_at(option_quotes(), OQ_PER, ts_ns=et_ns(OPTION_DAY, 8))
    out = run(frame, schemas.OPTION_QUOTES, OPTION_DAY)
    assert failing(out) == {"in_session"}
    meta = out["in_session"].metadata
    assert (meta["rows_outside"], meta["rows_before_window"], meta["rows_after_window"]) == (1, 1, 0)
    assert meta["outside_rate"] == 1 / 40 and meta["in_session_rate"] == 1 - 1 / 40
    assert meta["first_ts"] == "2016-06-01T12:00:00+00:00"
    assert meta["last_ts"] == "2016-06-01T14:00:19+00:00"
    assert meta["min_in_session_rate"] == 0.999
    assert meta["ge_unexpected_count"] == 1 and meta["ge_unexpected_fraction"] == 1 / 40


def test_out_of_order_timestamps_within_an_instrument_fail_sorted(engine):
    frame = option_quotes()
    ts = frame.get_column("ts_ns").to_list()
    frame = set_at(set_at(frame, 24, ts_ns=ts[25]), 25, ts_ns=ts[24])
    out = run(frame, schemas.OPTION_QUOTES, OPTION_DAY)
    assert failing(out) == {"sorted"}
    meta = out["sorted"].metadata
    assert out["sorted"].severity == "ERROR"
    assert meta["out_of_order"] == 1 and meta["first_out_of_order_row"] == 25
    assert meta["out_of_order_rate"] == 1 / 40
    assert meta["ge_unexpected_count"] == 1


def test_sequence_breaks_timestamp_ties(engine):
    frame = option_quotes()
    tie = frame.get_column("ts_ns")[10]
    ordered = set_at(frame, 11, ts_ns=tie)  # same ts, higher sequence: in order
    assert run(ordered, schemas.OPTION_QUOTES, OPTION_DAY)["sorted"].passed
    backwards = set_at(ordered, 11, sequence=0)  # same ts, lower sequence: out of order
    meta = run(backwards, schemas.OPTION_QUOTES, OPTION_DAY)["sorted"].metadata
    assert meta["out_of_order"] == 1 and meta["first_out_of_order_row"] == 11


def test_interleaved_instruments_each_in_order_pass_sorted(engine):
    frame = option_quotes().sort("ts_ns", "sequence")  # contracts interleaved in time
    assert frame.get_column("option_symbol")[0] != frame.get_column("option_symbol")[1]
    out = run(frame, schemas.OPTION_QUOTES, OPTION_DAY)
    assert failing(out) == set()


def test_duplicated_row_fails_duplicates(engine):
    frame = option_quotes()
    frame = pl.concat([frame[:4], frame[3:4], frame[4:]])  # row 3 twice, adjacent: order holds
    out = run(frame, schemas.OPTION_QUOTES, OPTION_DAY)
    assert failing(out) == {"duplicates"}
    meta = out["duplicates"].metadata
    assert meta["rows"] == 41
    assert meta["duplicate_rows"] == 2  # both rows sharing the key, as GE counts them
    assert meta["redundant_rows"] == 1  # what a dedup would drop
    assert meta["duplicate_rate"] == 2 / 41
    assert meta["ge_unexpected_count"] == 2 and meta["ge_unexpected_fraction"] == 2 / 41
    assert meta["max_duplicate_rate"] == 0.001


def test_wrong_dtype_and_missing_column_fail_schema(engine):
    frame = option_quotes().with_columns(pl.col("bid_size").cast(pl.Int32))
    out = run(frame, schemas.OPTION_QUOTES, OPTION_DAY)
    assert failing(out) == {"schema"}
    meta = out["schema"].metadata
    assert meta["dtype_mismatch_count"] == 1
    assert meta["dtype_mismatches"] == "bid_size: Int32 (want Int64)"
    assert meta["column_order_ok"] is True

    out = run(option_quotes().drop("source"), schemas.OPTION_QUOTES, OPTION_DAY)
    assert failing(out) == {"schema", "nulls"}
    assert out["schema"].metadata["missing_columns"] == "source"
    assert out["schema"].metadata["column_order_ok"] is False
    assert out["nulls"].metadata["not_evaluated"] == "columns missing or mistyped: source"


def test_no_progress_bars_or_log_output(engine, capfd):
    quality.validate_table(option_quotes(), schemas.OPTION_QUOTES, OPTION_DAY)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


# --- option prints: per-root session windows ---------------------------------------------


def test_vix_print_at_1610_is_inside_its_late_window(engine):
    out = run(vix_prints(), schemas.OPTION_TRADES, OPTION_DAY)
    assert failing(out) == set()
    meta = out["in_session"].metadata
    assert meta["rows_outside"] == 0
    assert meta["late_close_roots"] == "VIX"
    assert meta["window_end"] == "2016-06-01T20:15:00+00:00"
    assert meta["last_ts"] == "2016-06-01T20:10:00+00:00"


def test_equity_root_print_at_1610_is_outside_its_window(engine):
    out = run(a_prints(), schemas.OPTION_TRADES, OPTION_DAY)
    assert failing(out) == {"in_session"}
    meta = out["in_session"].metadata
    assert (meta["rows_outside"], meta["rows_after_window"]) == (1, 1)
    assert meta["outside_rate"] == 0.5
    assert meta["window_end"] == "2016-06-01T20:00:00+00:00" and meta["late_close_roots"] == ""


def test_windows_are_per_row_root(engine):
    frame = pl.concat([vix_prints(), a_prints()])
    out = run(frame, schemas.OPTION_TRADES, OPTION_DAY)
    meta = out["in_session"].metadata
    assert meta["rows"] == 4 and meta["rows_outside"] == 1 and meta["rows_after_window"] == 1
    assert meta["window_end"] == "2016-06-01T20:15:00+00:00" and meta["late_close_roots"] == "VIX"
    assert failing(out) == {"in_session"}


# --- stock trades ------------------------------------------------------------------------


def test_clean_stock_trades_pass_including_the_extended_session(engine):
    out = run(stock_trades(), schemas.STOCK_TRADES, STOCK_DAY)
    assert failing(out) == set()
    session = out["in_session"].metadata
    assert session["window_start"] == "2012-06-21T08:00:00+00:00"  # 04:00 ET
    assert session["window_end"] == "2012-06-22T00:00:00+00:00"  # 20:00 ET
    assert session["rows_outside"] == 0
    assert out["positive_prices"].metadata["price_nonpositive"] == 0
    assert out["duplicates"].metadata["duplicate_rows"] == 0


def test_negative_price_fails_positive_prices(engine):
    frame = set_at(set_at(stock_trades(), 2, price=-1.0), 5, price=0.0)
    out = run(frame, schemas.STOCK_TRADES, STOCK_DAY)
    assert failing(out) == {"positive_prices"}
    meta = out["positive_prices"].metadata
    assert meta["price_nonpositive"] == 2
    assert meta["ge_unexpected_count"] == 2 and meta["ge_unexpected_fraction"] == 0.2
    assert meta["ge_failed"] == "price"


def test_stock_print_outside_the_extended_session_fails(engine):
    frame = set_at(stock_trades(), 0, ts_ns=et_ns(STOCK_DAY, 3))
    frame = set_at(frame, 9, ts_ns=et_ns(STOCK_DAY, 20, 30))
    out = run(frame, schemas.STOCK_TRADES, STOCK_DAY)
    assert failing(out) == {"in_session"}
    meta = out["in_session"].metadata
    assert (meta["rows_outside"], meta["rows_before_window"], meta["rows_after_window"]) == (2, 1, 1)
    assert meta["outside_rate"] == 0.2
    assert meta["first_ts"] == "2012-06-21T07:00:00+00:00"
    assert meta["last_ts"] == "2012-06-22T00:30:00+00:00"
    loose = run(frame, schemas.STOCK_TRADES, STOCK_DAY, quality=QualitySettings(min_in_session_rate=0.8))
    assert loose["in_session"].passed


# --- speed ---------------------------------------------------------------------------------


def sixty_thousand(spec: schemas.TableSchema) -> pl.DataFrame:
    """60k rows of 50 SPY 0DTE contracts, in stored order (quotes or prints)."""
    n, contracts = 60_000, 50
    rng = np.random.default_rng(7)
    open_ns, close_ns = session_open_close_ns(OPTION_DAY)
    which = np.sort(rng.integers(0, contracts, n))
    ts = np.concatenate(
        [np.sort(rng.integers(open_ns, close_ns, int((which == k).sum()))) for k in range(contracts)]
    )
    price = rng.uniform(0.5, 5.0, n).round(2)
    symbols = np.array([f"O:SPY160601C{(200 + k) * 1000:08d}" for k in range(contracts)])
    identity = {
        "ts_ns": ts,
        "sequence": np.arange(n),
        "option_symbol": symbols[which],
        "underlying": "SPY",
        "root": "SPY",
        "expiration": OPTION_DAY,
        "strike": 200.0 + which,
        "right": "C",
    }
    if spec is schemas.OPTION_QUOTES:
        body = {
            "bid": price,
            "bid_size": rng.integers(1, 500, n),
            "ask": price + 0.05,
            "ask_size": rng.integers(1, 500, n),
            "bid_exchange": "C",
            "ask_exchange": "X",
        }
    else:
        body = {
            "price": price,
            "size": rng.integers(1, 50, n),
            "exchange": "C",
            "conditions": pl.Series([["I", "X"]] * n),
            "trade_id": [str(i) for i in range(n)],
            "canceled": False,
        }
    return valid(pl.DataFrame({**identity, **body, "source": "synthetic"}), spec)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [schemas.OPTION_QUOTES, schemas.OPTION_TRADES], ids=["quotes", "prints"])
def test_sixty_thousand_rows_validate_in_under_1_5_s(engine, spec):
    frame = sixty_thousand(spec)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        out = run(frame, spec, OPTION_DAY)
        timings.append(time.perf_counter() - started)
    assert failing(out) == set()
    assert out["schema"].metadata["rows"] == 60_000
    assert min(timings) < 1.5, timings


def test_futures_preopen_crossing_is_counted_not_failed():
    """CME's pre-open lets orders cross without matching; only books after the open are held to bid <= ask."""
    import pandas as pd

    spec = schemas.FUTURES_MBP10
    day = dt.date(2023, 12, 26)
    ts = [pd.Timestamp(t, tz="UTC").value for t in ("2023-12-25 22:40", "2023-12-25 22:50", "2023-12-25 23:05", "2023-12-25 23:10")]
    bids = [4809.0, 4809.0, 4800.0, 4800.0]
    asks = [4785.5, 4790.0, 4800.25, 4800.25]
    frame = schemas.empty_frame(spec)
    rows = {c: [None] * 4 for c in spec.columns}
    rows.update(
        ts_ns=ts, sequence=[1, 2, 3, 4], symbol=["ESH4"] * 4, instrument_id=[17077] * 4, underlying=["SPY"] * 4,
        action=["A"] * 4, side=["B"] * 4, event_size=[1] * 4, bid_px_00=bids, ask_px_00=asks, source=["t"] * 4,
    )
    frame = pl.DataFrame(rows, schema=frame.schema)
    out = {o.name: o for o in quality.validate_table(frame, spec, day)}
    meta = out["bid_le_ask"].metadata
    assert out["bid_le_ask"].passed
    assert meta["preopen_crossed"] == 2 and meta["crossed"] == 0 and meta["two_sided"] == 2
    assert meta["matching_open"] == "2023-12-25T23:00:00+00:00"
    # a crossed book after the open still fails
    late = frame.with_columns(pl.when(pl.col("sequence") == 4).then(4801.0).otherwise(pl.col("bid_px_00")).alias("bid_px_00"))
    bad = {o.name: o for o in quality.validate_table(late, spec, day)}["bid_le_ask"]
    assert not bad.passed and bad.metadata["crossed"] == 1


# --- partitions validated in batches ----------------------------------------------------------

_COUNT_KEYS = {
    "nulls": ("rows", "required_null_count", "bid_null_count", "ask_null_count"),
    "bid_le_ask": ("two_sided", "crossed", "locked", "zero_bid", "bid_le_ask_rate"),
    "in_session": ("rows_outside", "rows_before_window", "rows_after_window", "in_session_rate", "first_ts", "last_ts"),
    "sorted": ("out_of_order", "first_out_of_order_row", "instruments"),
    "duplicates": ("duplicate_rows", "redundant_rows", "duplicate_rate"),
}


@pytest.mark.parametrize(
    "defects",
    [
        {},  # clean: everything passes in both
        {"crossed": [3, 30], "early": [12], "dup": [25], "swap": [33]},  # several checks fail
    ],
)
def test_batches_decide_like_one_suite_over_the_whole_partition(engine, defects):
    frame = option_quotes()
    for row in defects.get("crossed", []):
        frame = set_at(frame, row, bid=9.0, ask=1.0)
    for row in defects.get("early", []):
        frame = set_at(frame, row, ts_ns=et_ns(OPTION_DAY, 3))
    for row in defects.get("dup", []):
        prev = frame.row(row - 1, named=True)
        frame = set_at(frame, row, ts_ns=prev["ts_ns"], sequence=prev["sequence"])
    for row in defects.get("swap", []):
        frame = set_at(frame, row, ts_ns=frame["ts_ns"][row] + 10 * 1_000_000_000)
    whole = run(frame, schemas.OPTION_QUOTES, OPTION_DAY)
    # one batch per contract: never splits an instrument
    batches = [frame.slice(0, OQ_PER), frame.slice(OQ_PER)]
    merged = by_name(quality.validate_batches(batches, schemas.OPTION_QUOTES, OPTION_DAY))
    assert {n: o.passed for n, o in merged.items()} == {n: o.passed for n, o in whole.items()}
    if defects:
        assert failing(whole) >= {"bid_le_ask", "sorted", "duplicates", "in_session"}
    for name, keys in _COUNT_KEYS.items():
        for key in keys:
            if key in whole[name].metadata:
                assert merged[name].metadata[key] == pytest.approx(whole[name].metadata[key]), (name, key)
    assert merged["sorted"].metadata["batches"] == 2
