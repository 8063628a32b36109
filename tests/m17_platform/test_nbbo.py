"""asof_join_quotes against polars join_asof as an independent reference, flags, errors,
and the LOBSTER AMZN sample."""

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from m17_platform.nbbo import NbboSettings, asof_join_quotes, join_quality

LOBSTER = Path(__file__).resolve().parents[2] / "data" / "samples" / "lobster_amzn_2012-06-21_level1"
MESSAGES = LOBSTER / "AMZN_2012-06-21_34200000_57600000_message_1.csv.gz"
ORDERBOOK = LOBSTER / "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv.gz"


def _random(seed: int, n_trades: int, n_quotes: int, n_instruments: int, ts_range: int):
    rng = np.random.default_rng(seed)
    names = [f"S{i:02d}" for i in range(n_instruments)]

    def frame(n: int, with_quote: bool) -> pl.DataFrame:
        cols = {
            "sym": rng.choice(names, n),
            "ts_ns": rng.integers(0, ts_range, n),  # small range: many exact ties
            "sequence": rng.integers(0, 50, n),
        }
        if with_quote:
            bid = rng.integers(90, 100, n).astype(float)
            cols |= {"bid": bid, "ask": bid + rng.integers(0, 3, n), "bid_size": rng.integers(1, 9, n), "ask_size": rng.integers(1, 9, n)}
        else:
            cols |= {"price": rng.random(n)}
        return pl.DataFrame(cols).sort("sym", "ts_ns", "sequence")

    return frame(n_trades, False), frame(n_quotes, True)


def _reference(trades: pl.DataFrame, quotes: pl.DataFrame, *, mode: str, lag: int = 0) -> pl.DataFrame:
    """polars join_asof; ties resolved on a composite (ts, sequence) key when mode == 'sequence'."""
    q = quotes.with_row_index("qrow")
    t = trades.with_columns(cut=pl.col("ts_ns") - lag)
    if mode == "sequence":  # sequence < 50 and ts < 1e12: ts * 100 + seq orders lexicographically
        t = t.with_columns(key=pl.col("cut") * 100 + pl.col("sequence"))
        q = q.with_columns(key=pl.col("ts_ns") * 100 + pl.col("sequence"))
    else:
        t = t.with_columns(key=pl.col("cut"))
        q = q.with_columns(key=pl.col("ts_ns"))
    ref = t.join_asof(
        q.select("sym", "key", "qrow"),
        on="key",
        by="sym",
        strategy="backward",
        allow_exact_matches=(mode == "at_or_before"),
        check_sortedness=False,
    )
    return ref


@pytest.mark.parametrize(
    "seed,mode,lag",
    [(1, "at_or_before", 0), (2, "strict", 0), (3, "sequence", 0), (4, "at_or_before", 7), (5, "sequence", 5), (6, "strict", 3)],
)
def test_matches_polars_join_asof(seed, mode, lag):
    trades, quotes = _random(seed, 3000, 400, 7, 100)
    joined = asof_join_quotes(
        trades,
        quotes,
        instrument="sym",
        settings=NbboSettings(lag_ns=lag, max_quote_age_ns=10),
        strict=(mode == "strict"),
        strict_sequence=(mode == "sequence"),
    )
    ref = _reference(trades, quotes, mode=mode, lag=lag)
    # join_asof picks the last row among equal keys: in sorted quotes that is the greatest (ts, sequence)
    qrow = ref.get_column("qrow")
    expected_ts = quotes.get_column("ts_ns").gather(qrow)
    expected_bid = quotes.get_column("bid").gather(qrow)
    assert joined.height == trades.height
    assert joined.select(trades.columns).equals(trades)
    assert joined.get_column("quote_ts_ns").equals(expected_ts.alias("quote_ts_ns"), check_names=False)
    assert joined.get_column("bid").equals(expected_bid.alias("bid"), check_names=False)
    assert joined.get_column("ask").equals(quotes.get_column("ask").gather(qrow), check_names=False)
    assert joined.get_column("ask_size").equals(quotes.get_column("ask_size").gather(qrow), check_names=False)
    assert (joined.get_column("nbbo_flag") == "no_quote").sum() == qrow.null_count()
    assert qrow.null_count() > 0 and qrow.null_count() < trades.height


def test_ties_pick_greatest_ts_sequence_not_after_trade():
    quotes = pl.DataFrame(
        {
            "sym": ["A"] * 4,
            "ts_ns": [10, 20, 20, 20],
            "sequence": [1, 3, 5, 7],
            "bid": [1.0, 2.0, 3.0, 4.0],
            "ask": [1.5, 2.5, 3.5, 4.5],
        }
    )
    trades = pl.DataFrame({"sym": ["A"] * 4, "ts_ns": [5, 20, 20, 25], "sequence": [0, 5, 6, 1]})
    default = asof_join_quotes(trades, quotes, instrument="sym")
    assert default.get_column("bid").to_list() == [None, 4.0, 4.0, 4.0]
    strict = asof_join_quotes(trades, quotes, instrument="sym", strict=True)
    assert strict.get_column("bid").to_list() == [None, 1.0, 1.0, 4.0]
    seq = asof_join_quotes(trades, quotes, instrument="sym", strict_sequence=True)
    assert seq.get_column("bid").to_list() == [None, 2.0, 3.0, 4.0]
    assert seq.get_column("quote_age_ns").to_list() == [None, 0, 0, 5]
    # quote sizes absent from the quote table -> null columns
    assert seq.get_column("bid_size").null_count() == 4


def test_instruments_do_not_leak():
    quotes = pl.DataFrame({"sym": ["A", "C"], "ts_ns": [1, 1], "sequence": [1, 1], "bid": [1.0, 3.0], "ask": [2.0, 4.0]})
    trades = pl.DataFrame({"sym": ["A", "B", "C", "D"], "ts_ns": [5, 5, 5, 5], "sequence": [2, 2, 2, 2]})
    out = asof_join_quotes(trades, quotes, instrument="sym")
    assert out.get_column("bid").to_list() == [1.0, None, 3.0, None]
    assert out.get_column("nbbo_flag").to_list() == ["ok", "no_quote", "ok", "no_quote"]


def test_flags_and_quality():
    quotes = pl.DataFrame(
        {
            "sym": ["A", "B", "C", "D", "E", "F"],
            "ts_ns": [0, 0, 0, 0, 0, 0],
            "sequence": [0] * 6,
            "bid": [1.0, 2.0, 2.0, 0.0, None, 1.0],
            "ask": [1.1, 1.9, 2.0, 0.05, 1.0, 1.2],
        }
    )
    trades = pl.DataFrame(
        {"sym": ["A", "A", "B", "C", "D", "E", "F", "G"], "ts_ns": [10, 2_000, 10, 10, 10, 10, 10, 10], "sequence": [1] * 8}
    )
    out = asof_join_quotes(trades, quotes, instrument="sym", settings=NbboSettings(max_quote_age_ns=1_000))
    assert out.get_column("nbbo_flag").to_list() == ["ok", "stale", "crossed", "locked", "zero_bid", "one_sided", "ok", "no_quote"]
    q = join_quality(out)
    assert q["n_trades"] == 8 and q["n_with_quote"] == 7
    assert q["coverage"] == pytest.approx(7 / 8)
    assert q["median_age_ns"] == 10.0
    assert q["crossed_rate"] == pytest.approx(1 / 7) and q["locked_rate"] == pytest.approx(1 / 7)
    assert q["stale_rate"] == pytest.approx(1 / 7)
    assert q["count_ok"] == 2 and q["count_no_quote"] == 1


def test_empty_inputs():
    quotes = pl.DataFrame(schema={"sym": pl.String, "ts_ns": pl.Int64, "sequence": pl.Int64, "bid": pl.Float64, "ask": pl.Float64})
    trades = pl.DataFrame({"sym": ["A"], "ts_ns": [1], "sequence": [1]})
    out = asof_join_quotes(trades, quotes, instrument="sym")
    assert out.get_column("nbbo_flag").to_list() == ["no_quote"]
    none = asof_join_quotes(trades.clear(), quotes, instrument="sym")
    assert none.height == 0 and join_quality(none)["coverage"] == 0.0


def test_unsorted_input_raises_naming_table_and_row():
    quotes = pl.DataFrame({"sym": ["A", "A", "A"], "ts_ns": [1, 3, 2], "sequence": [1, 1, 1], "bid": [1.0] * 3, "ask": [2.0] * 3})
    trades = pl.DataFrame({"sym": ["A"], "ts_ns": [5], "sequence": [1]})
    with pytest.raises(ValueError, match=r"quotes is not sorted .* row 2"):
        asof_join_quotes(trades, quotes, instrument="sym")
    bad_trades = pl.DataFrame({"sym": ["B", "A"], "ts_ns": [1, 2], "sequence": [1, 1]})
    with pytest.raises(ValueError, match=r"trades is not sorted .* row 1"):
        asof_join_quotes(bad_trades, quotes.sort("ts_ns"), instrument="sym")
    seq = pl.DataFrame({"sym": ["A", "A"], "ts_ns": [1, 1], "sequence": [2, 1]})
    with pytest.raises(ValueError, match=r"trades is not sorted .* row 1"):
        asof_join_quotes(seq, quotes.sort("ts_ns"), instrument="sym")


def test_input_errors():
    quotes = pl.DataFrame({"sym": ["A"], "ts_ns": [1], "sequence": [1], "bid": [1.0], "ask": [2.0]})
    trades = pl.DataFrame({"sym": ["A"], "ts_ns": [5], "sequence": [1]})
    with pytest.raises(ValueError, match="missing columns"):
        asof_join_quotes(trades, quotes.drop("ask"), instrument="sym")
    with pytest.raises(ValueError, match="nulls"):
        asof_join_quotes(trades.with_columns(sym=pl.lit(None, pl.String)), quotes, instrument="sym")
    with pytest.raises(ValueError, match="output columns"):
        asof_join_quotes(trades.with_columns(bid=pl.lit(1.0)), quotes, instrument="sym")
    with pytest.raises(ValueError, match="lag_ns"):
        asof_join_quotes(trades, quotes, instrument="sym", settings=NbboSettings(lag_ns=-1))


@pytest.fixture(scope="module")
def lobster():
    from m17_platform.sources.lobster import read_lobster

    r = read_lobster(MESSAGES, ORDERBOOK, symbol="AMZN", trade_date=dt.date(2012, 6, 21))
    return r.tables["stock_trades"], r.tables["stock_quotes"]


def test_lobster_strict_sequence_is_previous_book_row(lobster):
    trades, quotes = lobster
    joined = asof_join_quotes(trades, quotes, instrument="symbol", strict_sequence=True)
    # independent reference: the quote table is the book after message `sequence`; the book before
    # message k is the last quote row with sequence < k (join_asof on sequence alone, file order)
    ref = trades.join_asof(
        quotes.select("sequence", qb="bid", qa="ask", qts="ts_ns"),
        on="sequence",
        strategy="backward",
        allow_exact_matches=False,
    )
    assert joined.get_column("bid").equals(ref.get_column("qb"), check_names=False)
    assert joined.get_column("ask").equals(ref.get_column("qa"), check_names=False)
    assert joined.get_column("quote_ts_ns").equals(ref.get_column("qts"), check_names=False)
    q = join_quality(joined)
    assert q["n_trades"] == 11_419 and q["n_with_quote"] == 11_418  # the day's first message is a trade
    assert q["crossed_rate"] == 0.0
    # every visible execution prints at the resting side of the book before it (PROVENANCE)
    visible = joined.filter(pl.col("conditions").list.first() == "visible_execution")
    at_side = visible.select(((pl.col("price") == pl.col("ask")) & (pl.col("aggressor_side") == "B")) | ((pl.col("price") == pl.col("bid")) & (pl.col("aggressor_side") == "S")))
    assert at_side.to_series().all() and visible.height == 8_974
    # the non-strict join would see the post-trade book instead
    loose = asof_join_quotes(trades, quotes, instrument="symbol")
    assert (loose.get_column("bid") != joined.get_column("bid")).sum() + (loose.get_column("ask") != joined.get_column("ask")).sum() > 1_000
    ref_loose = trades.join_asof(quotes.select("ts_ns", "sequence", qb="bid"), on="ts_ns", strategy="backward")
    assert loose.get_column("bid").equals(ref_loose.get_column("qb"), check_names=False)


def test_sequence_tiebreak_gives_each_print_of_one_instant_its_own_quote():
    """Cboe's NBBO rows carry the print's sequence: two prints in one millisecond must
    each get the quote with their own sequence, not the instant's last one."""
    trades = pl.DataFrame({"sym": ["X", "X"], "ts_ns": [10, 10], "sequence": [1, 2], "price": [1.0, 1.1]})
    quotes = pl.DataFrame(
        {"sym": ["X", "X"], "ts_ns": [10, 10], "sequence": [1, 2], "bid": [0.9, 1.0], "ask": [1.0, 1.1]}
    )
    tied = asof_join_quotes(trades, quotes, instrument="sym", sequence_tiebreak=True)
    assert tied["bid"].to_list() == [0.9, 1.0]
    by_time = asof_join_quotes(trades, quotes, instrument="sym")
    assert by_time["bid"].to_list() == [1.0, 1.0]
    strict = asof_join_quotes(trades, quotes, instrument="sym", strict_sequence=True)
    assert strict["bid"].to_list() == [None, 0.9]


def test_long_runs_match_polars_join_asof():
    """Runs of thousands of rows: the kernels scan in blocks of 512 rows."""
    trades, quotes = _random(11, 4_000, 9_000, 3, 10**6)
    for mode in ("at_or_before", "strict"):
        joined = asof_join_quotes(trades, quotes, instrument="sym", strict=(mode == "strict"))
        qrow = _reference(trades, quotes, mode=mode).get_column("qrow")
        assert joined.get_column("quote_ts_ns").equals(quotes.get_column("ts_ns").gather(qrow), check_names=False)
        assert joined.get_column("bid_size").equals(quotes.get_column("bid_size").gather(qrow), check_names=False)


@pytest.mark.parametrize("row", [1, 511, 512, 513, 1_025, 2_990, 2_999])
@pytest.mark.parametrize("tie", [False, True])
def test_unsorted_quote_found_at_any_row(row, tie):
    """A step back (or a sequence step back at equal ts) anywhere in a long run is reported,
    before, inside and after the rows the trades' scan passes."""
    n = 3_000
    ts = np.arange(n, dtype=np.int64) * 10
    seq = np.zeros(n, dtype=np.int64)
    if tie:
        ts[row] = ts[row - 1]
        seq[row - 1] = 1
    else:
        ts[row] = ts[row - 1] - 1
    quotes = pl.DataFrame({"sym": "A", "ts_ns": ts, "sequence": seq, "bid": 1.0, "ask": 2.0})
    trades = pl.DataFrame({"sym": ["A", "A"], "ts_ns": [5_005, 20_000], "sequence": [0, 0]})
    with pytest.raises(ValueError, match=rf"quotes is not sorted .* row {row} "):
        asof_join_quotes(trades, quotes, instrument="sym")
    if tie:  # the same tie with increasing sequences is in order
        in_order = quotes.with_columns(sequence=pl.int_range(n, dtype=pl.Int64))
        assert asof_join_quotes(trades, in_order, instrument="sym").get_column("quote_ts_ns").to_list() == [5_000, 20_000]


def test_run_boundaries_and_unusual_quote_dtypes():
    """Instruments change at and around block edges; integer prices, int16 sizes and a
    sliced quote table give the same result as the float64 / int64 table."""
    sizes = [511, 1, 513, 1_024, 3]
    syms = np.repeat([f"S{i}" for i in range(len(sizes))], sizes)
    n = len(syms)
    quotes = pl.DataFrame(
        {"sym": syms, "ts_ns": np.arange(n) % 700 * 10, "sequence": np.arange(n), "bid": (np.arange(n) % 50).astype(np.int64),
         "ask": (np.arange(n) % 50 + 1).astype(np.int64), "bid_size": np.arange(n) % 7, "ask_size": np.arange(n) % 5}
    ).sort("sym", "ts_ns", "sequence")
    trades = quotes.select("sym", ts_ns=pl.col("ts_ns") + 5, sequence="sequence").gather_every(3)
    base = asof_join_quotes(trades, quotes.with_columns(pl.col("bid", "ask").cast(pl.Float64)), instrument="sym")
    assert base.get_column("nbbo_flag").value_counts().height > 1
    odd = asof_join_quotes(trades, quotes.with_columns(pl.col("bid_size", "ask_size").cast(pl.Int16)), instrument="sym")
    assert odd.equals(base)
    padded = pl.concat([quotes.head(3).with_columns(sym=pl.lit("A")), quotes]).slice(3)
    assert asof_join_quotes(trades, padded, instrument="sym").equals(base)
