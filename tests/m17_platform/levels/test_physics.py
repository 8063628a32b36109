"""Barrier (a VACUUM and a WALL book), tape (imbalance, sweep), fuel, approach and book
quality against hand-computed values."""

import numpy as np
import polars as pl
import pytest

from m17_platform.levels.asof import build_signals
from m17_platform.levels.barrier import barrier_features, classify
from m17_platform.levels.events import MBP10_INFERRED, book_arrays, infer_level_events
from m17_platform.levels.fuel import fuel_features
from m17_platform.levels.partition import trade_arrays
from m17_platform.levels.settings import LevelSettings
from m17_platform.levels.tape import tape_features

S = LevelSettings()


def _touch(kit, t0, level_es=6800.0, direction="UP", ratio=10.0):
    return pl.DataFrame(
        {
            "bar_start_ns": [t0],
            "decision_ts_ns": [t0 + 60 * kit.NS],
            "direction": [direction],
            "level_price_es": [level_es],
            "level_price": [level_es / ratio],
            "es_spy_ratio": [ratio],
        }
    )


def _barrier(kit, rows, prints, t0, grid=None, **touch):
    bk = book_arrays(kit.book(rows), kit.ES, S.es_tick)
    tr = trade_arrays(kit.trades(prints), kit.ES)
    grid = np.array([], dtype=np.int64) if grid is None else np.asarray(grid, dtype=np.int64)
    out = barrier_features(_touch(kit, t0, **touch), bk, infer_level_events(bk, tr, S), MBP10_INFERRED, tr, grid, S)
    return out.row(0, named=True)


def test_a_vacuum_book_by_hand(kit):
    t0, bids = kit.at(10, 0), kit.ladder(6799.75, [20] * 10, "bid")
    rows = [
        dict(ts_ns=t0 - kit.NS, bids=bids, asks=kit.ladder(6800.0, [50, 40, 30, 20, 10, 10, 10, 10, 10, 10], "ask")),
        # 6800.00 (50) pulled; 6802.50 comes into view at the far end: not an add
        dict(
            ts_ns=t0 + 10 * kit.NS, bids=bids, asks=kit.ladder(6800.25, [40, 30, 20, 10, 10, 10, 10, 10, 10, 10], "ask")
        ),
        dict(
            ts_ns=t0 + 20 * kit.NS, bids=bids, asks=kit.ladder(6800.25, [5, 30, 20, 10, 10, 10, 10, 10, 10, 10], "ask")
        ),
        # a buy of 5 lifts the last 5 at 6800.25: a fill, not a cancel
        dict(
            ts_ns=t0 + 30 * kit.NS, bids=bids, asks=kit.ladder(6800.50, [30, 20, 10, 10, 10, 10, 10, 10, 10, 10], "ask")
        ),
    ]
    b = _barrier(kit, rows, [dict(ts_ns=t0 + 30 * kit.NS, price=6800.25, size=5, aggressor="B")], t0)
    # zone: asks within 8 ticks of 6800.00, i.e. up to 6802.00
    assert (b["barrier_depth_start"], b["barrier_depth_end"]) == (190, 100)
    assert (b["barrier_added"], b["barrier_canceled"], b["barrier_filled"]) == (0, 85, 5)
    assert b["barrier_delta_liq"] == -90 and b["barrier_replenishment_ratio"] == 0.0
    assert b["barrier_side"] == "ask" and b["barrier_state"] == "VACUUM" and b["barrier_source"] == MBP10_INFERRED
    assert b["wall_ratio"] is None and b["book_quality"] == "ok"


def test_a_wall_book_by_hand(kit):
    t0 = kit.at(10, 0)
    flat = dict(bids=kit.ladder(6799.75, [10] * 10, "bid"), asks=kit.ladder(6800.0, [10] * 10, "ask"))
    rows = [dict(ts_ns=t, **flat) for t in range(t0 - 360 * kit.NS, t0, 20 * kit.NS)]  # quiet for 6 minutes
    rows += [
        dict(ts_ns=t0 + 10 * kit.NS, bids=flat["bids"], asks=kit.ladder(6800.0, [210] + [10] * 9, "ask")),
        dict(ts_ns=t0 + 20 * kit.NS, bids=flat["bids"], asks=kit.ladder(6800.0, [210, 60] + [10] * 8, "ask")),
        dict(ts_ns=t0 + 45 * kit.NS, bids=flat["bids"], asks=kit.ladder(6800.0, [210, 60] + [10] * 8, "ask")),
    ]
    grid = [t0 - k * 60 * kit.NS for k in range(5, 0, -1)] + [t0]
    b = _barrier(kit, rows, [], t0, grid=grid)
    # baseline: 9 ask levels within 8 ticks of the best, 10 each, at the five minute marks before 10:00
    assert b["barrier_baseline_depth"] == 90.0
    assert (b["barrier_depth_start"], b["barrier_depth_end"], b["barrier_added"]) == (90, 340, 250)
    assert b["wall_ratio"] == pytest.approx(340 / 90) and b["barrier_replenishment_ratio"] is None
    assert b["barrier_state"] == "WALL" and b["book_quality"] == "ok"
    # the same book seen from below (DOWN: the bid defends): nothing changed there, thin vs nothing
    d = _barrier(kit, rows, [], t0, grid=grid, direction="DOWN", level_es=6799.75)
    assert (d["barrier_side"], d["barrier_added"], d["barrier_depth_end"], d["barrier_state"]) == (
        "bid",
        0,
        90,
        "NEUTRAL",
    )


def test_states_follow_the_settings_in_order():
    d0 = np.array([100, 100, 100, 100, 100, -1])
    d1 = np.array([50, 50, 95, 100, 20, 10])
    added, canceled, filled = (
        np.array([0, 0, 40, 0, 0, 0]),
        np.array([60, 10, 0, 0, 0, 0]),
        np.array([0, 40, 30, 0, 0, 0]),
    )
    wall = np.array([np.nan, np.nan, 1.0, 2.0, 0.3, np.nan])
    assert classify(d0, d1, added, canceled, filled, wall, S).tolist() == [
        "VACUUM",
        "CONSUMED",
        "ABSORPTION",
        "WALL",
        "WEAK",
        None,
    ]
    strict = LevelSettings(vacuum_min_canceled_share=0.9)  # 60 canceled of 100 is no longer enough
    assert classify(d0[:1], d1[:1], added[:1], canceled[:1], filled[:1], wall[:1], strict).tolist() == ["NEUTRAL"]
    # thresholds scale with the zone's depth: 30 filled of 1,000 resting is no absorption
    deep = classify(d0[2:3] * 10, d1[2:3] * 10, added[2:3], canceled[2:3], filled[2:3], wall[2:3], S)
    assert deep.tolist() == ["NEUTRAL"]


def test_book_quality_is_counted_and_flagged(kit):
    t0 = kit.at(10, 0)
    ok = dict(bids=kit.ladder(6799.75, [10] * 10, "bid"), asks=kit.ladder(6800.0, [10] * 10, "ask"))
    rows = [
        dict(ts_ns=t0 - kit.NS, sequence=1, **ok),
        dict(ts_ns=t0 + kit.NS, sequence=2, bids=[(6800.5, 5)], asks=[(6800.0, 5)]),  # crossed
        dict(ts_ns=t0 + 2 * kit.NS, sequence=500, **ok),  # a gap of 498 > sequence_gap_min
        dict(ts_ns=t0 + 50 * kit.NS, sequence=499, **ok),
    ]  # backwards; 48 s without a row: stale
    prints = [
        dict(ts_ns=t0 + 5 * kit.NS, price=6800.0, sequence=9),
        dict(ts_ns=t0 + 6 * kit.NS, price=6800.0, sequence=3),
    ]
    b = _barrier(kit, rows, prints, t0)
    assert (b["book_rows"], b["book_crossed_rows"], b["sequence_gaps"], b["out_of_order_events"]) == (3, 1, 1, 2)
    assert b["book_max_gap_ns"] == 48 * kit.NS
    assert b["book_quality"] == "crossed+stale+sequence_gap+out_of_order"
    # the crossed row is never used: nothing changed between the valid rows
    assert (b["barrier_added"], b["barrier_canceled"], b["barrier_filled"]) == (0, 0, 0)


def test_tape_by_hand(kit):
    t0 = kit.at(10, 0)
    prints = [
        dict(ts_ns=t0 + kit.NS, price=6800.0, size=3, aggressor="B"),
        dict(ts_ns=t0 + kit.NS + 500_000, price=6800.25, size=2, aggressor="B"),  # walks a level in 0.5 ms
        dict(ts_ns=t0 + 5 * kit.NS, price=6799.75, size=4, aggressor="S"),
        dict(ts_ns=t0 + 6 * kit.NS, price=6806.0, size=7, aggressor="B"),  # 6 points away > $0.50 x 10
        dict(ts_ns=t0 + 60 * kit.NS, price=6800.0, size=9, aggressor="S"),
    ]  # at the decision: outside
    out = tape_features(_touch(kit, t0), trade_arrays(kit.trades(prints), kit.ES), S).row(0, named=True)
    assert (out["tape_buy_vol"], out["tape_sell_vol"], out["tape_trades"]) == (5, 4, 3)
    assert out["tape_imbalance"] == pytest.approx(1 / 9) and out["tape_velocity"] == pytest.approx(3 / 60)
    assert out["sweep_detected"] and out["sweep_count"] == 1
    slow = LevelSettings(sweep_window_ms=0.1)  # 0.5 ms apart: no longer one sweep
    assert not tape_features(_touch(kit, t0), trade_arrays(kit.trades(prints), kit.ES), slow).item(0, "sweep_detected")
    empty = tape_features(_touch(kit, t0), trade_arrays(kit.trades(prints[3:4]), kit.ES), S).row(0, named=True)
    assert empty["tape_imbalance"] is None and empty["tape_trades"] == 0


def test_fuel_by_hand(kit):
    t0 = kit.at(10, 0)
    before = [
        dict(ts_ns=kit.at(9, 59), strike=k, net_gex=v)
        for k, v in ((678.0, -5e6), (679.0, -3e6), (680.0, 1e6), (690.0, 50e6))
    ]
    at_decision = [dict(ts_ns=kit.at(10, 1), strike=680.0, net_gex=9e9)]  # not strictly before: unused
    g = kit.gamma(before + at_decision)
    touches = pl.concat([_touch(kit, t0, level_es=x * 10) for x in (680.0, 690.0, 684.0)])
    out = fuel_features(touches, g, S)
    assert out.get_column("gamma_exposure").to_list() == [-7e6, 50e6, 0.0]
    assert out.get_column("fuel_effect").to_list() == ["AMPLIFY", "DAMPEN", "NEUTRAL"]
    assert out.get_column("gamma_ts_ns").to_list() == [kit.at(9, 59)] * 3
    assert out.get_column("fuel_source").to_list() == ["customer_flow"] * 3
    none = fuel_features(touches, None, S)
    assert (
        none.get_column("fuel_effect").to_list() == [None] * 3 and none.get_column("gamma_exposure").null_count() == 3
    )


def test_approach_by_hand(kit):
    prints = []
    for m in range(10):  # 09:50 .. 09:59: each bar opens 1 point higher and closes 0.5 above its open
        prints += [
            dict(ts_ns=kit.at(9, 50 + m, 5), price=6790.0 + m),
            dict(ts_ns=kit.at(9, 50 + m, 50), price=6790.5 + m),
        ]
    prints += [dict(ts_ns=kit.at(10, 0, 5), price=6799.75), dict(ts_ns=kit.at(10, 0, 50), price=6799.5)]
    fut = kit.trades(prints)
    out = build_signals(
        dict(futures_trades_enriched=fut, bars=kit.bars_of(fut)), S, trade_date=kit.DAY, underlying="SPY"
    ).tables["level_physics"]
    row = out.filter(
        (pl.col("bar_start_ns") == kit.at(10, 0)) & (pl.col("level_kind") == "ROUND") & (pl.col("level_price") == 680.0)
    ).row(0, named=True)
    assert row["direction"] == "UP"
    assert row["approach_distance"] == pytest.approx(0.95) and row["approach_velocity"] == pytest.approx(0.095)
    assert row["approach_bars"] == 10 and row["bars_since_open"] == 30
    assert row["prior_touches"] == 1  # the 09:59 bar reached 679.95: 680 within its band
