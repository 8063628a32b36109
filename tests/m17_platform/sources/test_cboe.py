"""Cboe DataShop readers against the real bundled samples (numbers from PROVENANCE.md)."""

from __future__ import annotations

import datetime as dt
import gzip
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from m17_platform import calendar, schemas
from m17_platform.errors import SourceFormatError
from m17_platform.sources import cboe
from m17_platform.sources.base import ReadResult

SAMPLES = Path(__file__).resolve().parents[3] / "data" / "samples" / "cboe_datashop_samples"
TRADES = SAMPLES / "UnderlyingOptionsTrades_2016-06-01.csv"
INTERVALS = SAMPLES / "UnderlyingOptionsIntervals_1800sec_calcs_oi_2021-04-26.csv.gz"
ET = "America/New_York"


def et_wall(ts_ns: int) -> str:
    """``ts_ns`` as America/New_York wall clock, ms precision."""
    return pl.Series([ts_ns]).cast(pl.Datetime("ns", "UTC")).dt.convert_time_zone(ET).dt.strftime("%Y-%m-%d %H:%M:%S%.3f")[0]


@pytest.fixture(scope="module")
def trades() -> ReadResult:
    return cboe.read_option_trades(TRADES)


@pytest.fixture(scope="module")
def intervals() -> ReadResult:
    return cboe.read_option_intervals(INTERVALS)


def assert_conforms(result: ReadResult, origin: Path) -> None:
    for name, frame in result.tables.items():
        assert isinstance(frame, pl.DataFrame), name
        spec = schemas.table(name)
        assert frame.columns == spec.columns, name
        schemas.conform(frame, spec, origin=str(origin))  # raises SchemaError if not


# --- option trades --------------------------------------------------------------------


def test_trades_tables_conform(trades: ReadResult) -> None:
    assert set(trades.tables) == {"option_trades", "option_quotes", "stock_quotes", "option_contracts"}
    assert_conforms(trades, TRADES)
    assert all(isinstance(v, int) for v in trades.stats.values())


def test_trades_counts(trades: ReadResult) -> None:
    t = trades.tables["option_trades"]
    assert t.height == 2295
    assert t.get_column("size").sum() == 306_679
    assert t.get_column("option_symbol").n_unique() == 230
    assert trades.tables["option_contracts"].height == 230
    assert trades.tables["option_quotes"].height == 2295
    assert trades.tables["stock_quotes"].height == 2295
    assert t.get_column("underlying").unique().to_list() == ["VIX"]
    assert t.get_column("root").unique().to_list() == ["VIX"]
    assert t.get_column("exchange").unique().to_list() == ["5"]
    assert t.get_column("sequence").n_unique() == 2295
    assert trades.stats["rows"] == 2295
    assert trades.stats["contracts_traded"] == 306_679


def test_trades_time_range(trades: ReadResult) -> None:
    ts = trades.tables["option_trades"].get_column("ts_ns")
    assert et_wall(ts.min()) == "2016-06-01 09:30:02.025"
    assert et_wall(ts.max()) == "2016-06-01 16:14:52.675"
    # 87 VIX prints after the 16:00 equity close, all inside Cboe's 16:15 close for VIX.
    _, close_ns = calendar.session_open_close_ns(dt.date(2016, 6, 1))
    lo, hi = calendar.session_window_ns("option", dt.date(2016, 6, 1), root="VIX")
    assert ts.filter(ts > close_ns).len() == 87
    assert ts.min() >= lo and ts.max() <= hi


def test_trade_conditions(trades: ReadResult) -> None:
    conditions = trades.tables["option_trades"].get_column("conditions").to_list()
    assert all(len(c) == 1 for c in conditions)
    counts = Counter(c[0] for c in conditions)
    assert counts == {"0": 1493, "35": 719, "106": 49, "13": 22, "95": 9, "2": 2, "40": 1}


def test_first_csv_row(trades: ReadResult) -> None:
    # ^VIX,2016-06-01 13:57:58.175,78677916,VIX,2016-06-08,12.500,C,5,1,2.4000,0,0,2.1500,2.6000,
    #   14.7500,14.7500,1,5,269,2.1500,2420,2.6000
    t = trades.tables["option_trades"].filter(pl.col("sequence") == 78677916).row(0, named=True)
    assert t["option_symbol"] == "O:VIX160608C00012500"
    assert (t["underlying"], t["root"], t["expiration"], t["strike"], t["right"]) == (
        "VIX", "VIX", dt.date(2016, 6, 8), 12.5, "C",
    )  # fmt: skip
    assert (t["size"], t["price"], t["exchange"], t["conditions"], t["trade_id"]) == (1, 2.40, "5", ["0"], "78677916")
    assert t["canceled"] is False
    assert et_wall(t["ts_ns"]) == "2016-06-01 13:57:58.175"
    assert t["source"] == "cboe_datashop.option_trades"

    q = trades.tables["option_quotes"].filter(pl.col("sequence") == 78677916).row(0, named=True)
    assert q["ts_ns"] == t["ts_ns"]
    assert (q["bid"], q["bid_size"], q["ask"], q["ask_size"]) == (2.15, 269, 2.60, 2420)
    assert (q["bid_exchange"], q["ask_exchange"]) == ("5", "5")
    assert q["source"] == "cboe_datashop.option_trades.nbbo"

    s = trades.tables["stock_quotes"].filter(pl.col("sequence") == 78677916).row(0, named=True)
    assert (s["symbol"], s["underlying"], s["bid"], s["ask"]) == ("VIX", "VIX", 14.75, 14.75)
    assert s["bid_size"] is None and s["bid_exchange"] is None
    assert s["source"] == "cboe_datashop.option_trades.underlying"

    c = trades.tables["option_contracts"].filter(pl.col("option_symbol") == "O:VIX160608C00012500").row(0, named=True)
    assert (c["multiplier"], c["exercise_style"]) == (100, "E")
    assert et_wall(c["expiry_ts_ns"]) == "2016-06-08 16:00:00.000"


def test_trades_against_nbbo(trades: ReadResult) -> None:
    joined = trades.tables["option_trades"].join(
        trades.tables["option_quotes"], on=["option_symbol", "ts_ns", "sequence"], how="inner", validate="1:1"
    )
    assert joined.height == 2295
    price, bid, ask = pl.col("price"), pl.col("bid"), pl.col("ask")
    at_or_above_ask = joined.filter(price >= ask).height
    at_or_below_bid = joined.filter((price <= bid) & (price < ask)).height
    inside = joined.filter((price > bid) & (price < ask)).height
    unquoted = joined.filter(bid.is_null() & ask.is_null()).height
    assert (at_or_above_ask, at_or_below_bid, inside, unquoted) == (442, 409, 1443, 1)
    # PROVENANCE's 443 at/above ask counts the one print whose vendor NBBO is 0.00/0.00
    # ("no quote", null here) as above the ask.
    filled = joined.with_columns(bid.fill_null(0.0), ask.fill_null(0.0))
    assert filled.filter(price >= ask).height == 443


def test_trades_flags(trades: ReadResult) -> None:
    stats = trades.stats
    assert stats["canceled"] == 2
    assert trades.tables["option_trades"].get_column("canceled").sum() == 2
    assert stats["nbbo_block_disagreements"] == 0
    assert stats["rows_without_exchange_blocks"] == 1
    assert stats["nbbo_unavailable"] == 1
    assert stats["nbbo_crossed"] == 0
    assert stats["nbbo_locked"] == 0
    assert stats["nbbo_zero_bid"] == 51
    # The two 09:30:02.025 prints came before the VIX index had a value (0.00/0.00).
    assert stats["underlying_quote_unavailable"] == 2
    stock = trades.tables["stock_quotes"]
    assert stock.filter(pl.col("bid").is_null()).get_column("sequence").sort().to_list() == [223327, 537094501]
    # VIX is an index: one value, bid == ask.
    assert stock.filter(pl.col("bid") != pl.col("ask")).height == 0


def test_row_without_exchange_blocks(trades: ReadResult) -> None:
    # Line 778: ...,0.0000,0.0000,0.0000,0.0000,0  (number_of_exchanges 0, NBBO 0/0)
    q = trades.tables["option_quotes"].filter(pl.col("sequence") == 223327).row(0, named=True)
    assert q["option_symbol"] == "O:VIX160615P00016000"
    assert all(q[k] is None for k in ("bid", "ask", "bid_size", "ask_size", "bid_exchange", "ask_exchange"))


def test_trades_sorted_by_sort_key(trades: ReadResult) -> None:
    for name, frame in trades.tables.items():
        key = list(schemas.table(name).sort_key)
        assert frame.equals(frame.sort(key)), name


# --- corrupt trade files -------------------------------------------------------------------


def corrupt_copy(tmp_path: Path, line_no: int, edit) -> Path:
    lines = TRADES.read_text().splitlines(keepends=True)
    lines[line_no - 1] = edit(lines[line_no - 1])
    out = tmp_path / "UnderlyingOptionsTrades_corrupt.csv"
    out.write_text("".join(lines))
    return out


def set_field(index: int, value: str):
    def edit(line: str) -> str:
        fields = line.rstrip("\n").split(",")
        fields[index] = value
        return ",".join(fields) + "\n"

    return edit


@pytest.mark.parametrize(
    ("line_no", "index", "value", "field"),
    [
        (1500, 9, "abc", "trade_price"),
        (2, 6, "X", "option_type"),
        (321, 1, "2016-06-01 25:61:00.000", "quote_datetime"),
        (2296, 5, "twelve", "strike"),
        (40, 8, "1.5", "trade_size"),
        (900, 4, "2016-02-30", "expiration"),
        (77, 19, "2.1x", "bid[1]"),
        (77, 16, "x", "number_of_exchanges"),
    ],
)
def test_corrupt_field_names_file_line_and_field(tmp_path: Path, line_no: int, index: int, value: str, field: str) -> None:
    path = corrupt_copy(tmp_path, line_no, set_field(index, value))
    with pytest.raises(SourceFormatError) as info:
        cboe.read_option_trades(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line_no, field)
    assert str(path) in str(err) and f"line {line_no}" in str(err) and repr(field) in str(err)


def test_truncated_exchange_block(tmp_path: Path) -> None:
    path = corrupt_copy(tmp_path, 1000, lambda line: line.rsplit(",", 2)[0] + "\n")
    with pytest.raises(SourceFormatError) as info:
        cboe.read_option_trades(path)
    assert info.value.line == 1000
    assert info.value.field == cboe.TRADE_GROUP_SPEC
    assert "number_of_exchanges is 1" in str(info.value)


def test_more_blocks_than_declared(tmp_path: Path) -> None:
    path = corrupt_copy(tmp_path, 12, lambda line: line.rstrip("\n") + ",7,10,2.0000,10,2.1000\n")
    with pytest.raises(SourceFormatError, match="line 12") as info:
        cboe.read_option_trades(path)
    assert info.value.field == cboe.TRADE_GROUP_SPEC


def test_first_bad_line_wins(tmp_path: Path) -> None:
    lines = TRADES.read_text().splitlines(keepends=True)
    lines[199] = set_field(12, "bid?")(lines[199])  # line 200, best_bid
    lines[99] = set_field(15, "n/a")(lines[99])  # line 100, underlying_ask
    path = tmp_path / "two_errors.csv"
    path.write_text("".join(lines))
    with pytest.raises(SourceFormatError) as info:
        cboe.read_option_trades(path)
    assert (info.value.line, info.value.field) == (100, "underlying_ask")


def test_wrong_header(tmp_path: Path) -> None:
    path = corrupt_copy(tmp_path, 1, lambda line: line.replace("trade_price", "price"))
    with pytest.raises(SourceFormatError) as info:
        cboe.read_option_trades(path)
    assert (info.value.line, info.value.field) == (1, "trade_price")


def test_gzip_trades_read_the_same(tmp_path: Path, trades: ReadResult) -> None:
    path = tmp_path / "trades.csv.gz"
    path.write_bytes(gzip.compress(TRADES.read_bytes()))
    again = cboe.read_option_trades(path)
    for name, frame in trades.tables.items():
        assert again.tables[name].equals(frame), name


# --- option intervals -----------------------------------------------------------------------


def test_intervals_tables_conform(intervals: ReadResult) -> None:
    assert set(intervals.tables) == {"option_quotes", "option_vendor_greeks", "stock_quotes", "option_contracts"}
    assert_conforms(intervals, INTERVALS)


def test_intervals_counts(intervals: ReadResult) -> None:
    q = intervals.tables["option_quotes"]
    assert q.height == 20_160
    assert dict(q.group_by("underlying").len().iter_rows()) == {"A": 5096, "VIX": 15_064}
    assert dict(q.group_by("root").len().iter_rows()) == {"A": 5096, "VIX": 10_136, "VIXW": 4928}
    assert intervals.tables["option_vendor_greeks"].height == 20_160
    assert sorted(q.get_column("sequence").to_list()) == list(range(1, 20_161))
    times = sorted(et_wall(t)[11:16] for t in q.get_column("ts_ns").unique().to_list())
    assert len(times) == 14
    assert times[0] == "10:00" and times[-1] == "16:15"
    # A (equity options) stops at the 16:00 snapshot; VIX options run to 16:15.
    last = q.group_by("underlying").agg(pl.col("ts_ns").max()).sort("underlying")
    assert [et_wall(t)[11:16] for t in last.get_column("ts_ns")] == ["16:00", "16:15"]
    contracts = intervals.tables["option_contracts"]
    assert contracts.height == 392 + 1076
    assert dict(contracts.group_by("root").agg(pl.col("exercise_style").unique().first()).iter_rows()) == {
        "A": "A",
        "VIX": "E",
        "VIXW": "E",
    }
    stock = intervals.tables["stock_quotes"]
    assert dict(stock.group_by("symbol").len().iter_rows()) == {"A": 13, "VIX": 14}


def test_intervals_first_row(intervals: ReadResult) -> None:
    # A,2021-04-26 10:00:00,A,2021-06-18,70.000,C,0,0,0,0,0,157,66.3000,284,68.8000,137.0600,137.2000,
    #   137.0945,137.1400,1.3248,0.9428,0.0016,-0.0738,0.0599,8.7737,2
    g = intervals.tables["option_vendor_greeks"].filter(pl.col("sequence") == 1).row(0, named=True)
    assert g["option_symbol"] == "O:A210618C00070000"
    assert et_wall(g["ts_ns"]) == "2021-04-26 10:00:00.000"
    assert (g["underlying_price"], g["implied_underlying_price"]) == (137.14, 137.0945)
    assert (g["implied_volatility"], g["delta"], g["gamma"], g["theta"], g["vega"], g["rho"]) == (
        1.3248, 0.9428, 0.0016, -0.0738, 0.0599, 8.7737,
    )  # fmt: skip
    assert g["open_interest"] == 2 and g["theoretical_value"] is None
    assert g["source"] == "cboe_datashop.option_intervals.calcs"
    q = intervals.tables["option_quotes"].filter(pl.col("sequence") == 1).row(0, named=True)
    assert (q["bid"], q["bid_size"], q["ask"], q["ask_size"]) == (66.3, 157, 68.8, 284)
    assert q["bid_exchange"] is None and q["ask_exchange"] is None
    s = intervals.tables["stock_quotes"].filter((pl.col("symbol") == "A") & (pl.col("ts_ns") == g["ts_ns"])).row(0, named=True)
    assert (s["bid"], s["ask"], s["sequence"]) == (137.06, 137.20, 1)


def test_intervals_last_row_vix_floor_iv(intervals: ReadResult) -> None:
    # ^VIX,2021-04-26 16:15:00,VIX,2021-07-21,150.000,P,...,126.5000,2297,126.7000,17.6400,17.6400,
    #   23.2983,17.6400,0.0200,-1.0000,0.0000,0.0000,0.0000,-35.3312,0
    g = intervals.tables["option_vendor_greeks"].filter(pl.col("sequence") == 20_160).row(0, named=True)
    assert g["option_symbol"] == "O:VIX210721P00150000"
    assert g["underlying"] == "VIX"
    assert (g["implied_volatility"], g["delta"], g["rho"]) == (0.02, -1.0, -35.3312)
    assert (g["underlying_price"], g["implied_underlying_price"]) == (17.64, 23.2983)


def test_intervals_flags(intervals: ReadResult) -> None:
    assert intervals.stats["rows"] == 20_160
    assert intervals.stats["snapshots"] == 14
    assert intervals.stats["quotes_zero_bid"] == 2734
    assert intervals.stats["quotes_crossed"] == 1
    assert intervals.stats["underlying_quote_conflicts"] == 0


def intervals_subset(tmp_path: Path, n: int = 50) -> tuple[list[str], Path]:
    with gzip.open(INTERVALS, "rt") as fh:
        lines = [next(fh) for _ in range(n + 1)]
    return lines, tmp_path / "intervals.csv"


def test_intervals_corrupt_greek(tmp_path: Path) -> None:
    lines, path = intervals_subset(tmp_path)
    fields = lines[30].rstrip("\n").split(",")
    fields[20] = "0.9x"  # delta on line 31
    lines[30] = ",".join(fields) + "\n"
    path.write_text("".join(lines))
    with pytest.raises(SourceFormatError) as info:
        cboe.read_option_intervals(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 31, "delta")


def test_intervals_short_row(tmp_path: Path) -> None:
    lines, path = intervals_subset(tmp_path)
    lines[9] = lines[9].rsplit(",", 1)[0] + "\n"  # line 10 loses open_interest
    path.write_text("".join(lines))
    with pytest.raises(SourceFormatError) as info:
        cboe.read_option_intervals(path)
    assert (info.value.line, info.value.field) == (10, "open_interest")


def test_intervals_empty_greek_is_null(tmp_path: Path) -> None:
    lines, path = intervals_subset(tmp_path, n=3)
    fields = lines[2].rstrip("\n").split(",")
    fields[19] = ""  # implied_volatility on line 3
    lines[2] = ",".join(fields) + "\n"
    path.write_text("".join(lines))
    result = cboe.read_option_intervals(path)
    g = result.tables["option_vendor_greeks"].filter(pl.col("sequence") == 2).row(0, named=True)
    assert g["implied_volatility"] is None and g["delta"] is not None


def test_intervals_ambiguous_wall_clock_is_an_error(tmp_path: Path) -> None:
    # 01:30 on 2021-11-07 happened twice in New York; the file cannot say which.
    lines, path = intervals_subset(tmp_path, n=5)
    lines[4] = lines[4].replace("2021-04-26 1", "2021-11-07 0", 1)
    path.write_text("".join(lines))
    with pytest.raises(SourceFormatError) as info:
        cboe.read_option_intervals(path)
    assert (info.value.line, info.value.field) == (5, "quote_datetime")
