"""The level universe against hand-computed values: every level known at its bar's start,
none computed from the whole day (the seed's flaw)."""

import datetime as dt

import polars as pl
import pytest

from m17_platform.errors import SchemaError
from m17_platform.levels.asof import build_signals
from m17_platform.levels.schemas import LEVELS
from m17_platform.levels.settings import LevelSettings
from m17_platform.schemas import conform


def _prints(kit) -> list[dict]:
    rows = [dict(ts_ns=kit.at(9, m, 5), price=6790.0 + m % 5) for m in range(30)]  # pre-market
    rows += [dict(ts_ns=kit.at(9, 10, 30), price=6797.0), dict(ts_ns=kit.at(9, 20, 30), price=6785.0)]
    for m in range(41):  # 09:30 .. 10:10, two prints a minute
        p = 6795.0 + (m % 7) * 0.5
        hour, minute = divmod(9 * 60 + 30 + m, 60)
        rows += [
            dict(ts_ns=kit.at(hour, minute, 5), price=p, size=1 + m % 3),
            dict(ts_ns=kit.at(hour, minute, 50), price=p + 0.25, size=2),
        ]
    rows += [dict(ts_ns=kit.at(9, 40, 30), price=6805.0, size=4), dict(ts_ns=kit.at(9, 57, 30), price=6810.0, size=1)]
    return sorted(rows, key=lambda r: r["ts_ns"])


def _inputs(kit, prints=None, **extra):
    fut = kit.trades(prints if prints is not None else _prints(kit))
    return dict(futures_trades_enriched=fut, bars=kit.bars_of(fut), **extra)


def _levels(kit, inputs, settings=None) -> pl.DataFrame:
    return build_signals(inputs, settings or LevelSettings(), trade_date=kit.DAY, underlying="SPY").tables["levels"]


def _level(frame, kit, hour, minute, kind):
    rows = frame.filter((pl.col("bar_start_ns") == kit.at(hour, minute)) & (pl.col("level_kind") == kind))
    return rows.rows(named=True)


def test_session_levels_by_hand(kit):
    prints = _prints(kit)
    out = _levels(kit, _inputs(kit, prints))
    conform(out, LEVELS)
    assert out.get_column("ratio_source").unique().to_list() == ["settings"]  # no SPY quotes
    # pre-market 04:00 - 09:30: high 6797, low 6785; known from the open, listed from the open on
    assert _level(out, kit, 9, 29, "PM_HIGH") == []
    (pm_high,) = _level(out, kit, 9, 30, "PM_HIGH")
    assert (pm_high["level_price"], pm_high["level_price_es"], pm_high["known_from_ts_ns"]) == (
        679.7,
        6797.0,
        kit.at(9, 30),
    )
    assert _level(out, kit, 10, 0, "PM_LOW")[0]["level_price"] == 678.5
    # opening range 09:30 - 09:45: high the 09:40 spike, known at 09:45
    assert _level(out, kit, 9, 44, "OR_HIGH") == []
    assert _level(out, kit, 9, 45, "OR_HIGH")[0]["level_price_es"] == 6805.0
    assert _level(out, kit, 9, 45, "OR_HIGH")[0]["known_from_ts_ns"] == kit.at(9, 45)
    regular = [p for p in prints if kit.at(9, 30) <= p["ts_ns"] < kit.at(9, 45)]
    assert _level(out, kit, 9, 50, "OR_LOW")[0]["level_price_es"] == min(p["price"] for p in regular)
    # session high: running, from earlier bars of the regular session only
    assert _level(out, kit, 9, 30, "SESSION_HIGH") == []
    (before,) = _level(out, kit, 9, 57, "SESSION_HIGH")
    assert (before["level_price_es"], before["known_from_ts_ns"]) == (6805.0, kit.at(9, 41))
    (after,) = _level(out, kit, 9, 58, "SESSION_HIGH")
    assert (after["level_price_es"], after["known_from_ts_ns"]) == (6810.0, kit.at(9, 58))
    # VWAP at 10:00: the regular session's prints before 10:00, by hand
    done = [p for p in prints if kit.at(9, 30) <= p["ts_ns"] < kit.at(10, 0)]
    vwap = sum(p["price"] * p.get("size", 1) for p in done) / sum(p.get("size", 1) for p in done)
    assert _level(out, kit, 10, 0, "VWAP")[0]["level_price_es"] == pytest.approx(vwap, rel=1e-12)
    # ROUND levels within grid_range of the bar; constants, listed at the bar start
    rounds = {r["level_price"] for r in _level(out, kit, 10, 0, "ROUND")}
    assert rounds == {677.0, 678.0, 679.0, 680.0, 681.0, 682.0}
    assert out.filter(pl.col("known_from_ts_ns") > pl.col("bar_start_ns")).height == 0


def test_no_level_sees_a_later_bar(kit):
    prints = _prints(kit)
    later = [dict(p, price=p["price"] + 50.0) if p["ts_ns"] >= kit.at(9, 58) else p for p in prints]
    full, changed = _levels(kit, _inputs(kit, prints)), _levels(kit, _inputs(kit, later))
    early = pl.col("bar_start_ns") < kit.at(9, 58)
    assert full.filter(early).equals(changed.filter(early))
    # the 09:58 bar's own values are known at its start too; only which ROUND / STRIKE levels
    # are listed follows its range (a listing, not a value)
    same_bar = (pl.col("bar_start_ns") == kit.at(9, 58)) & ~pl.col("level_kind").is_in(["ROUND", "STRIKE"])
    assert full.filter(same_bar).equals(changed.filter(same_bar))
    assert not full.filter(~early).equals(changed.filter(~early))


def test_sma_200_warms_up_from_earlier_partitions(kit):
    prints = _prints(kit)
    assert _levels(kit, _inputs(kit, prints)).filter(pl.col("level_kind") == "SMA_200").height == 0  # 70 closes
    length = 120 * kit.NS
    first_end = kit.at(9, 0)
    history = pl.DataFrame({"bar_end_ns": [first_end - length * k for k in range(200, 0, -1)], "close": [700.0] * 200})
    out = _levels(kit, _inputs(kit, prints, sma_history=history))
    (first,) = _level(out, kit, 9, 0, "SMA_200")
    assert (first["level_price"], first["known_from_ts_ns"]) == (700.0, first_end - length)
    # 09:02: the 09:00-09:02 close (the 09:01 bar's, 6791 / 10) replaces the oldest history close
    assert _level(out, kit, 9, 2, "SMA_200")[0]["level_price"] == pytest.approx((199 * 700.0 + 679.1) / 200, rel=1e-12)
    assert _level(out, kit, 9, 1, "SMA_200")[0]["level_price"] == 700.0  # the 09:02 close is not known at 09:01


def test_walls_and_flip_from_gamma_rows_strictly_before_the_bar(kit):
    g = kit.gamma(
        [
            dict(ts_ns=kit.at(9, 40), grain="total", source="open_interest", call_wall=700.0, put_wall=660.0),
            dict(ts_ns=kit.at(9, 45), grain="total", call_wall=690.0, put_wall=670.0, gamma_flip=678.5),
            dict(ts_ns=kit.at(9, 50), grain="total", call_wall=691.0, put_wall=670.0),
        ]
    )
    out = _levels(kit, _inputs(kit, gamma_exposure=g))
    assert _level(out, kit, 9, 40, "CALL_WALL") == []
    assert _level(out, kit, 9, 41, "CALL_WALL")[0]["level_price"] == 700.0  # open interest until customer flow has one
    assert _level(out, kit, 9, 45, "CALL_WALL")[0]["level_price"] == 700.0  # the 09:45 row is not before 09:45
    (wall,) = _level(out, kit, 9, 46, "CALL_WALL")
    assert (wall["level_price"], wall["known_from_ts_ns"]) == (690.0, kit.at(9, 45) + 1)
    assert _level(out, kit, 9, 46, "GAMMA_FLIP")[0]["level_price"] == 678.5
    assert _level(out, kit, 9, 50, "CALL_WALL")[0]["level_price"] == 690.0
    assert _level(out, kit, 9, 51, "CALL_WALL")[0]["level_price"] == 691.0
    assert _level(out, kit, 9, 51, "GAMMA_FLIP") == []  # the 09:50 row has no flip
    assert _level(out, kit, 9, 51, "PUT_WALL")[0]["level_price_es"] == 6700.0


def test_strikes_of_the_nearest_expiration_with_prints_so_far(kit):
    opts = kit.options(
        [
            dict(ts_ns=kit.at(9, 35, 10), expiration=kit.DAY + dt.timedelta(days=4), strike=679.0),
            dict(ts_ns=kit.at(9, 36), strike=700.0),  # 0DTE, but out of the bar's grid range
            dict(ts_ns=kit.at(9, 40, 10), strike=680.0),
            dict(ts_ns=kit.at(10, 5, 10), strike=681.0),
            dict(ts_ns=kit.at(9, 31), strike=678.0, canceled=True),
            dict(ts_ns=kit.at(9, 31), expiration=kit.DAY - dt.timedelta(days=3), strike=677.0),  # expired
        ]
    )
    out = _levels(kit, _inputs(kit, option_trades_enriched=opts))

    def strikes(hour, minute):
        return sorted(r["level_price"] for r in _level(out, kit, hour, minute, "STRIKE"))

    assert strikes(9, 35) == []
    assert strikes(9, 36) == [679.0]  # the 0DTE print at 09:36:00 is not before 09:36
    assert strikes(9, 37) == []  # 0DTE is the nearest now; its only strike is out of range
    assert strikes(9, 41) == [680.0]
    assert strikes(10, 6) == [680.0, 681.0]
    assert _level(out, kit, 10, 6, "STRIKE")[1]["known_from_ts_ns"] == kit.at(10, 5, 10) + 1


def test_bars_of_another_length_are_refused(kit):
    inputs = _inputs(kit)
    bars = inputs["bars"].with_columns(pl.col("bar_end_ns") + kit.NS)
    with pytest.raises(SchemaError, match="is not 60 s long"):
        _levels(kit, dict(inputs, bars=bars))


def test_sma_history_of_one_partition_warms_the_next(kit):
    from m17_platform.levels.asof import sma_history_of

    day1 = dt.date(2025, 11, 10)
    prices = [6800.0 + (k % 11) * 0.25 for k in range(420)]  # 09:00 .. 15:59, one print a minute
    first = [dict(ts_ns=kit.at(9, 0, 30, day=day1) + k * kit.MIN, price=p) for k, p in enumerate(prices)]
    history = sma_history_of(_inputs(kit, first), LevelSettings(), trade_date=day1, underlying="SPY")
    assert history.height == 210 and history.get_column("bar_end_ns").is_sorted()
    day2 = dt.date(2025, 11, 11)
    second = [dict(ts_ns=kit.at(9, 30, 10, day=day2), price=6801.0)]
    fut = kit.trades(second)
    out = build_signals(
        dict(futures_trades_enriched=fut, bars=kit.bars_of(fut), sma_history=history),
        LevelSettings(),
        trade_date=day2,
        underlying="SPY",
    ).tables["levels"]
    (sma,) = out.filter(pl.col("level_kind") == "SMA_200").rows(named=True)
    closes = [prices[k] / 10.0 for k in range(1, 420, 2)]  # each 2-minute bar closes on its second minute's print
    assert sma["level_price"] == pytest.approx(sum(closes[-200:]) / 200, rel=1e-12)
    assert sma["known_from_ts_ns"] == kit.at(16, 0, day=day1)
