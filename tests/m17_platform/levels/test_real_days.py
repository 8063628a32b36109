"""The chain on the seeded synthetic SPY day (scale 0.02, with the full-size ES book) and on
the real ESH4 MBO sample: schemas, invariants, independent recomputations, no look-ahead,
and the MBP-10 inference against exact MBO adds / cancels / fills."""

import time

import numpy as np
import polars as pl
import pytest

from m17_platform.levels.asof import build_signals, lookahead_check
from m17_platform.levels.schemas import LEVEL_TABLES
from m17_platform.levels.settings import LevelSettings
from m17_platform.schemas import conform

pytestmark = pytest.mark.slow
S = LevelSettings()


@pytest.fixture(scope="module")
def synthetic(synthetic_day):
    started = time.perf_counter()
    result = build_signals(synthetic_day, S)
    result.stats["_wall_seconds"] = time.perf_counter() - started
    return result


@pytest.fixture(scope="module")
def esh4(esh4_day):
    return build_signals(esh4_day, S)


def _cuts(inputs, fractions=(0.1, 0.3, 0.5, 0.7, 0.95)):
    b = inputs["bars"].filter(pl.col("kind") == "futures")
    lo, hi = b.get_column("bar_start_ns").min(), b.get_column("bar_end_ns").max()
    return [int(lo + (hi - lo) * f) for f in fractions]


def _invariants(result):
    t = result.tables
    for name, frame in t.items():
        conform(frame, LEVEL_TABLES[name], origin=name)
    levels, touches, physics, labels = t["levels"], t["level_touches"], t["level_physics"], t["outcome_labels"]
    assert levels.filter(pl.col("known_from_ts_ns") > pl.col("bar_start_ns")).height == 0
    assert (
        touches.filter(
            (pl.col("level_price") < pl.col("low") - S.touch_band - 1e-9)
            | (pl.col("level_price") > pl.col("high") + S.touch_band + 1e-9)
        ).height
        == 0
    )
    assert (
        touches.get_column("critical").to_list() == (touches.get_column("distance") <= S.critical_zone + 1e-9).to_list()
    )
    assert t["level_signals"].height == int(touches.get_column("critical").sum())
    assert (
        physics.filter(
            (pl.col("barrier_depth_start") < 0) | (pl.col("barrier_added") < 0) | (pl.col("tape_imbalance").abs() > 1)
        ).height
        == 0
    )
    done = labels.filter(pl.col("label_status") == "ok")
    assert (
        labels.filter(pl.col("label_status") == "incomplete").get_column("outcome").null_count()
        == labels.filter(pl.col("label_status") == "incomplete").height
    )
    thr = S.outcome_threshold
    bad = done.filter(
        (
            (pl.col("outcome") == "BREAK")
            & ~((pl.col("excursion_through") >= thr) & (pl.col("excursion_through") > pl.col("excursion_away")))
        )
        | ((pl.col("outcome") == "BOUNCE") & ~(pl.col("excursion_away") >= thr))
        | ((pl.col("outcome") == "CHOP") & ((pl.col("excursion_away") >= thr) | (pl.col("excursion_through") >= thr)))
        | (pl.col("time_to_through_2_ns") < pl.col("time_to_through_1_ns"))
        | (pl.col("time_to_away_2_ns") > S.label_ns)
    )
    assert bad.height == 0


def test_synthetic_day_tables_and_invariants(synthetic):
    _invariants(synthetic)
    t, stats = synthetic.tables, synthetic.stats
    kinds = set(t["levels"].get_column("level_kind"))
    assert {"STRIKE", "ROUND", "OR_HIGH", "SESSION_HIGH", "VWAP", "CALL_WALL", "PUT_WALL", "GAMMA_FLIP"} <= kinds
    assert "PM_HIGH" not in kinds and "SMA_200" not in kinds  # the synthetic day starts at the open; 390 < 400 min
    # ES = SPY x 10 within half an ES tick in the synthetic model: the measured ratio says so
    ratios = t["levels"].filter(pl.col("ratio_source") == "measured").get_column("es_spy_ratio")
    assert ratios.len() > 0 and (ratios - 10.0).abs().max() < 0.125 / 680
    signals = t["level_signals"]
    assert signals.height > 100 and set(signals.get_column("barrier_source")) == {"mbp10_inferred"}
    assert signals.get_column("fuel_effect").null_count() < signals.height
    assert stats["level_physics"]["touches"] == t["level_touches"].height
    assert stats["_wall_seconds"] < 22.0  # the whole chain, full-size book (the brief's physics budget)


def test_synthetic_tape_against_an_independent_recount(synthetic, synthetic_day):
    trades = synthetic_day["futures_trades_enriched"].filter(~pl.col("canceled"))
    sample = (
        synthetic.tables["level_physics"]
        .join(synthetic.tables["level_touches"].select("touch_id", "es_spy_ratio"), on="touch_id")
        .head(60)
    )
    for row in sample.iter_rows(named=True):
        band = S.tape_band * row["es_spy_ratio"]
        window = trades.filter(
            (pl.col("ts_ns") >= row["bar_start_ns"])
            & (pl.col("ts_ns") < row["decision_ts_ns"])
            & ((pl.col("price") - row["level_price_es"]).abs() <= band + 1e-9)
        )
        buy = window.filter(pl.col("aggressor_side") == "B").get_column("size").sum()
        sell = window.filter(pl.col("aggressor_side") == "S").get_column("size").sum()
        assert (row["tape_buy_vol"], row["tape_sell_vol"], row["tape_trades"]) == (buy, sell, window.height)


def test_synthetic_fills_never_exceed_the_prints_against_the_zone(synthetic, synthetic_day):
    trades = synthetic_day["futures_trades_enriched"].filter(~pl.col("canceled"))
    lookback = int(S.fill_match_ms * 1e6)
    zone = S.barrier_zone_ticks * S.es_tick
    for row in synthetic.tables["level_physics"].filter(pl.col("barrier_filled") > 0).head(80).iter_rows(named=True):
        hits = "B" if row["barrier_side"] == "ask" else "S"
        against = trades.filter(
            (pl.col("ts_ns") >= row["bar_start_ns"] - lookback)
            & (pl.col("ts_ns") < row["decision_ts_ns"])
            & (pl.col("aggressor_side") == hits)
            & ((pl.col("price") - row["level_price_es"]).abs() <= zone + 1e-9)
        )
        assert row["barrier_filled"] <= against.get_column("size").sum()


def test_synthetic_day_has_no_lookahead_at_five_cut_points(synthetic_day):
    results = lookahead_check(synthetic_day, S, _cuts(synthetic_day))
    assert all(m == [] for _, m in results), [(c, m[:3]) for c, m in results if m]


def test_synthetic_future_changes_move_no_earlier_feature(kit, synthetic_day):
    kit.check_future_changes_nothing(synthetic_day, S, _cuts(synthetic_day, (0.5,))[0])


def test_esh4_sample(esh4, esh4_day):
    _invariants(esh4)
    t = esh4.tables
    assert esh4.partition.symbol == "ESH4" and str(esh4.partition.trade_date) == "2023-12-26"
    # no SPY quotes in the evening session: the settings ratio, named on every row
    assert set(t["level_signals"].get_column("ratio_source")) == {"settings"}
    assert set(t["level_signals"].get_column("es_spy_ratio")) == {10.0}
    # no options: no strikes, walls or fuel
    assert not {"STRIKE", "CALL_WALL", "PUT_WALL", "GAMMA_FLIP"} & set(t["levels"].get_column("level_kind"))
    assert t["level_signals"].get_column("fuel_effect").null_count() == t["level_signals"].height
    assert int(t["level_physics"].get_column("sweep_count").sum()) > 0  # CME aggressors walk the book
    results = lookahead_check(esh4_day, S, _cuts(esh4_day))
    assert all(m == [] for _, m in results), [(c, m[:3]) for c, m in results if m]


def test_esh4_inferred_barrier_agrees_with_mbo(kit, esh4, esh4_day):
    exact = build_signals({**esh4_day, "futures_mbo": kit.esh4_mbo()}, S)
    inferred, mbo = esh4.tables["level_physics"], exact.tables["level_physics"]
    assert set(mbo.get_column("barrier_source")) == {"mbo"}
    j = inferred.join(mbo, on="touch_id", suffix="_mbo")
    assert j.height == inferred.height > 50
    for c in ("barrier_added", "barrier_canceled", "barrier_filled"):
        a, b = j.get_column(c).to_numpy(), j.get_column(c + "_mbo").to_numpy()
        assert np.corrcoef(a, b)[0, 1] > 0.95, c
        assert abs(a.sum() - b.sum()) <= 0.1 * b.sum(), c
    agree = (j.get_column("barrier_state") == j.get_column("barrier_state_mbo")).mean()
    assert agree >= 0.9
