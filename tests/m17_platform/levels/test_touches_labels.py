"""A touch, a BREAK, a BOUNCE and a CHOP computed by hand; labels start where features end
and are null (not CHOP) where their window passes the data."""

import polars as pl
import pytest

from m17_platform.levels.asof import build_signals
from m17_platform.levels.schemas import LEVEL_TOUCHES, OUTCOME_LABELS
from m17_platform.levels.settings import LevelSettings
from m17_platform.schemas import conform


def _day(kit) -> list[dict]:
    p = []
    # 10:00 bar: low 6799.0, high 6800.5, close 6799.5 -> SPY 679.90 / 680.05 / 679.95: touches 680 from below
    p += [
        dict(ts_ns=kit.at(10, 0, 5), price=6799.0),
        dict(ts_ns=kit.at(10, 0, 20), price=6800.5),
        dict(ts_ns=kit.at(10, 0, 50), price=6799.5),
    ]
    # its label window (10:01:00, 10:06:00]
    p += [
        dict(ts_ns=kit.at(10, 1), price=6830.0),  # at the decision itself: not in the window
        dict(ts_ns=kit.at(10, 2), price=6810.0),  # $1.00 through, 60 s after the decision
        dict(ts_ns=kit.at(10, 3, 30), price=6821.0),  # $2.10 through, 150 s
        dict(ts_ns=kit.at(10, 4), price=6795.0),  # $0.50 away
        dict(ts_ns=kit.at(10, 6), price=6805.0),
    ]  # the window's last instant: in it
    # 11:00 bar: close 6800.25 above 680: DOWN (support); then up $2.10: away from it -> BOUNCE
    p += [
        dict(ts_ns=kit.at(11, 0, 5), price=6800.5),
        dict(ts_ns=kit.at(11, 0, 30), price=6799.75),
        dict(ts_ns=kit.at(11, 0, 55), price=6800.25),
        dict(ts_ns=kit.at(11, 2), price=6799.0),
        dict(ts_ns=kit.at(11, 3), price=6821.0),
    ]
    # 12:00 bar: close 6799.5 below 680 (UP); then +/- $0.50 only -> CHOP
    p += [
        dict(ts_ns=kit.at(12, 0, 5), price=6800.0),
        dict(ts_ns=kit.at(12, 0, 50), price=6799.5),
        dict(ts_ns=kit.at(12, 2), price=6805.0),
        dict(ts_ns=kit.at(12, 4), price=6795.0),
        dict(ts_ns=kit.at(12, 7), price=6800.0),
    ]
    # 13:00 bar touches 680, but the data end 2 minutes after its decision
    p += [dict(ts_ns=kit.at(13, 0, 5), price=6800.0), dict(ts_ns=kit.at(13, 3), price=6810.0)]
    return p


@pytest.fixture
def result(kit):
    fut = kit.trades(_day(kit))
    return build_signals(
        dict(futures_trades_enriched=fut, bars=kit.bars_of(fut)), LevelSettings(), trade_date=kit.DAY, underlying="SPY"
    )


def _row(frame, kit, hour, kind="ROUND", price=680.0):
    (row,) = frame.filter(
        (pl.col("bar_start_ns") == kit.at(hour, 0)) & (pl.col("level_kind") == kind) & (pl.col("level_price") == price)
    ).rows(named=True)
    return row


def test_a_touch_by_hand(result, kit):
    touches = result.tables["level_touches"]
    conform(touches, LEVEL_TOUCHES)
    t = _row(touches, kit, 10)
    assert (t["low"], t["high"], t["close"]) == (679.9, 680.05, 679.95)
    assert t["direction"] == "UP" and t["distance"] == pytest.approx(0.05) and t["critical"]
    assert t["decision_ts_ns"] == kit.at(10, 1) and t["es_spy_ratio"] == 10.0 and t["ratio_source"] == "settings"
    assert t["touch_id"] == f"ESZ5:{kit.at(10, 0)}:ROUND:680.0"
    # 679 and 681 lie outside [low - band, high + band] = [679.85, 680.10]
    bar = touches.filter((pl.col("bar_start_ns") == kit.at(10, 0)) & (pl.col("level_kind") == "ROUND"))
    assert bar.get_column("level_price").to_list() == [680.0]
    assert _row(touches, kit, 11)["direction"] == "DOWN"


def test_break_by_hand(result, kit):
    labels = result.tables["outcome_labels"]
    conform(labels, OUTCOME_LABELS)
    b = _row(labels, kit, 10)
    assert b["outcome"] == "BREAK" and b["label_status"] == "ok"
    assert b["excursion_through"] == pytest.approx(2.1) and b["excursion_away"] == pytest.approx(0.5)
    assert (b["time_to_through_1_ns"], b["time_to_through_2_ns"]) == (60 * kit.NS, 150 * kit.NS)
    assert b["time_to_away_1_ns"] is None and b["time_to_away_2_ns"] is None
    assert b["future_price_5min"] == 680.5 and b["label_trades"] == 4
    assert b["label_end_ts_ns"] == kit.at(10, 6)


def test_bounce_by_hand(result, kit):
    b = _row(result.tables["outcome_labels"], kit, 11)
    assert b["outcome"] == "BOUNCE"
    assert b["excursion_away"] == pytest.approx(2.1) and b["excursion_through"] == pytest.approx(0.1)
    assert b["time_to_away_2_ns"] == 120 * kit.NS and b["time_to_through_1_ns"] is None


def test_chop_by_hand(result, kit):
    c = _row(result.tables["outcome_labels"], kit, 12)
    assert c["outcome"] == "CHOP"
    assert c["excursion_through"] == pytest.approx(0.5) and c["excursion_away"] == pytest.approx(0.5)
    assert c["future_price_5min"] == 679.5  # the last print at or before 12:06 is 12:04's


def test_a_window_past_the_data_is_null_not_chop(result, kit):
    late = _row(result.tables["outcome_labels"], kit, 13)
    assert late["label_status"] == "incomplete" and late["outcome"] is None
    assert late["excursion_through"] is None and late["future_price_5min"] is None
    signals = result.tables["level_signals"]
    assert (
        signals.filter(pl.col("label_status") == "incomplete").get_column("outcome").null_count()
        == signals.filter(pl.col("label_status") == "incomplete").height
        > 0
    )


def test_signals_are_the_critical_touches_with_everything(result, kit):
    touches, signals = result.tables["level_touches"], result.tables["level_signals"]
    assert sorted(signals.get_column("touch_id")) == sorted(touches.filter(pl.col("critical")).get_column("touch_id"))
    s = signals.filter(pl.col("ts_ns") == kit.at(10, 0)).filter(pl.col("level_price") == 680.0).row(0, named=True)
    assert s["symbol"] == "SPY" and s["futures_symbol"] == "ESZ5" and s["spot"] == 679.95
    assert s["outcome"] == "BREAK" and s["book_quality"] == "no_book" and s["barrier_state"] is None
    assert s["fuel_effect"] is None  # no options in this partition
    again = build_signals(
        dict(futures_trades_enriched=kit.trades(_day(kit)), bars=kit.bars_of(kit.trades(_day(kit)))),
        LevelSettings(),
        trade_date=kit.DAY,
        underlying="SPY",
    )
    assert again.tables["level_signals"].get_column("event_id").to_list() == signals.get_column("event_id").to_list()
