"""No look-ahead, provably, on a seeded random hour built here (fast): the as-of cut of the
inputs, the five-cut-point check, and a change of the future that moves no earlier feature."""

import numpy as np
import polars as pl
import pytest

from m17_platform.errors import SchemaError
from m17_platform.levels.asof import build_signals, lookahead_check, truncate_inputs
from m17_platform.levels.asof import compare_signals
from m17_platform.levels.settings import LevelSettings

S = LevelSettings(baseline_minutes=10)


def random_hour(kit, seed: int = 7) -> dict[str, pl.DataFrame]:
    """09:30-10:30: an ES book row and maybe a print every second around a random walk,
    SPY quotes at ES / 10.004, option prints and gamma rows every minute."""
    rng = np.random.default_rng(seed)
    t0, n = kit.at(9, 30), 3600
    best = 6800.0 + 0.25 * np.cumsum(rng.choice([-1, 0, 0, 1], size=n))
    rows, prints, quotes = [], [], []
    for i in range(n):
        t = t0 + i * kit.NS
        rows.append(
            dict(
                ts_ns=t + 1000,
                bids=kit.ladder(best[i], list(rng.integers(1, 60, 10)), "bid"),
                asks=kit.ladder(best[i] + 0.25, list(rng.integers(1, 60, 10)), "ask"),
            )
        )
        if rng.random() < 0.6:
            buy = rng.random() < 0.5
            prints.append(
                dict(
                    ts_ns=t + 500,
                    price=best[i] + 0.25 if buy else best[i],
                    size=int(rng.integers(1, 20)),
                    aggressor="B" if buy else "S",
                )
            )
        quotes.append(t + 700)
    fut = kit.trades(prints)
    spy = kit.spy_quotes(quotes, [float((best[i] + 0.125) / 10.004) for i in range(n)])
    opts = kit.options([dict(ts_ns=t0 + int(rng.integers(0, n)) * kit.NS, strike=float(k)) for k in range(676, 685)])
    g = []
    for m in range(60):
        ts = t0 + m * 60 * kit.NS
        g += [dict(ts_ns=ts, strike=float(k), net_gex=float(rng.normal(0, 1e6))) for k in range(676, 685)]
        g.append(dict(ts_ns=ts, grain="total", call_wall=680.0 + m % 3, put_wall=677.0, gamma_flip=678.0 + m / 30))
    return dict(
        futures_mbp10=kit.book(rows),
        futures_trades_enriched=fut,
        bars=kit.bars_of(fut),
        stock_quotes=spy,
        option_trades_enriched=opts,
        gamma_exposure=kit.gamma(g),
    )


@pytest.fixture(scope="module")
def hour(kit):
    return random_hour(kit)


def test_truncate_cuts_rows_strictly_before_and_bars_by_their_end(kit, hour):
    cut = kit.at(10, 0) + 1000  # the 10:00:00 book row is at +1000 ns
    out = truncate_inputs(hour, cut)
    assert out["futures_mbp10"].get_column("ts_ns").max() == kit.at(9, 59, 59) + 1000
    assert out["bars"].get_column("bar_end_ns").max() == kit.at(10, 0)
    assert out["gamma_exposure"].get_column("ts_ns").max() == kit.at(10, 0)  # < cut
    assert truncate_inputs(hour, kit.at(10, 0))["gamma_exposure"].get_column("ts_ns").max() == kit.at(9, 59)
    assert truncate_inputs(hour, kit.at(10, 1))["bars"].get_column("bar_end_ns").max() == kit.at(10, 1)
    with pytest.raises(SchemaError, match="table 'futures_quotes' from truncate_inputs: unknown input"):
        truncate_inputs({"futures_quotes": hour["bars"]}, cut)


def test_no_feature_changes_at_five_cut_points(kit, hour):
    cuts = [kit.at(9, 41), kit.at(9, 52, 30), kit.at(10, 3), kit.at(10, 14) + 1, kit.at(10, 26, 59)]
    results = lookahead_check(hour, S, cuts)
    assert [c for c, _ in results] == cuts
    assert all(m == [] for _, m in results), [(c, m[:3]) for c, m in results if m]
    full = build_signals(hour, S).tables["level_signals"]
    for cut in cuts:  # not vacuous: signals were decided before each cut, some labelled, some not yet
        due = full.filter(pl.col("decision_ts_ns") <= cut)
        assert due.height > 0
    assert full.get_column("outcome").null_count() < full.height
    assert set(full.get_column("ratio_source")) == {"measured", "settings"}  # the first minute has no samples


def test_the_check_sees_a_feature_that_looks_ahead(kit, hour):
    full = build_signals(hour, S).tables["level_signals"]
    cut = kit.at(10, 0)
    part = build_signals(hour, S, as_of_ns=cut).tables["level_signals"]
    assert compare_signals(full, part, cut, 2**62) == []
    due = part.filter(pl.col("decision_ts_ns") <= cut)
    leaked = part.with_columns(
        pl.when(pl.col("event_id") == due.item(0, "event_id"))
        .then(pl.col("tape_buy_vol") + 1)
        .otherwise(pl.col("tape_buy_vol"))
        .alias("tape_buy_vol")
    )
    found = compare_signals(full, leaked, cut, 2**62)
    assert [(m["column"], m["cut"] - m["full"]) for m in found] == [("tape_buy_vol", 1)]
    labelled = part.with_columns(pl.lit("CHOP").alias("outcome"))  # a label before its window ended
    assert any(m["column"] == "outcome" for m in compare_signals(full, labelled, cut, 2**62))


def test_changing_the_future_moves_no_earlier_feature(kit, hour):
    kit.check_future_changes_nothing(hour, S, kit.at(10, 0))
    kit.check_future_changes_nothing(hour, S, kit.at(9, 45, 30))
