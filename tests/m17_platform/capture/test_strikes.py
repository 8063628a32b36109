"""The ATM ± N 0DTE window: which contracts, and when it moves."""

import dataclasses
import datetime as dt

from m17_platform.capture.strikes import StrikeManager
from m17_platform.settings import DEFAULT
from m17_platform.symbols import occ_symbol

DAY = dt.date(2025, 11, 10)
STRIKES = [680.0 + k for k in range(11)]  # 680 .. 690, $1 apart
LISTED = [occ_symbol("SPY", DAY, r, k) for k in STRIKES for r in "CP"] + [
    occ_symbol("SPY", DAY + dt.timedelta(days=1), "C", 685.0)  # next day's: never in a 0DTE window
]
S = 1_000_000_000


def strikes_of(symbols):
    return sorted({int(s[-8:]) / 1000 for s in symbols})


def test_window_is_atm_plus_minus_three_listed_strikes_calls_and_puts():
    m = StrikeManager("SPY")
    m.set_contracts(LISTED, DAY)
    change = m.on_price(685.30, 0)
    assert change.reason == "first" and change.atm_strike == 685.0
    assert strikes_of(change.window) == [682.0, 683.0, 684.0, 685.0, 686.0, 687.0, 688.0]
    assert len(change.window) == 14 and change.remove == frozenset()
    assert all(s[5:11] == "251110" for s in change.window)


def test_ties_go_to_the_lower_strike_and_edges_clip():
    m = StrikeManager("SPY")
    m.set_contracts(LISTED, DAY)
    assert m.select(685.5)[1] == 685.0
    window, atm = m.select(679.0)
    assert atm == 680.0 and strikes_of(window) == [680.0, 681.0, 682.0, 683.0]


def test_recentred_only_past_the_move_threshold_or_the_timer():
    m = StrikeManager("SPY")
    m.set_contracts(LISTED, DAY)
    m.on_price(685.00, 0)
    assert m.on_price(685.49, 10 * S) is None  # within $0.50, within 60 s
    moved = m.on_price(686.10, 20 * S)  # $1.10 away: re-centred on 686
    assert moved.reason == "moved" and moved.atm_strike == 686.0
    assert strikes_of(moved.add) == [689.0] and strikes_of(moved.remove) == [682.0]
    assert m.on_price(686.40, 79 * S) is None  # 59 s after the last centring
    # 60 s of event time later the window is re-centred on 686.40, which is still ATM 686: no change
    assert m.on_price(686.40, 80 * S) is None and m.centered_at_ns == 80 * S
    timer = m.on_price(686.45, 140 * S)
    assert timer is None and m.centered_at_ns == 140 * S


def test_the_window_follows_the_setting_and_new_listings():
    m = StrikeManager("SPY", dataclasses.replace(DEFAULT.capture, strikes_each_side=1))
    m.set_contracts(LISTED[:10], DAY)  # 680 .. 684 only
    first = m.on_price(684.2, 0)
    assert strikes_of(first.window) == [683.0, 684.0]
    relisted = m.set_contracts(LISTED, DAY)  # 685 .. 690 listed now
    assert relisted.reason == "contracts" and strikes_of(relisted.window) == [683.0, 684.0, 685.0]


def test_nothing_listed_means_no_window():
    m = StrikeManager("SPY")
    assert m.on_price(685.0, 0) is None and m.window == frozenset()
