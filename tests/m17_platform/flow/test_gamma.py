"""Dealer gamma exposure: the gamma kernel against the greeks module, the gamma flip on
crafted profiles and positions (closed form), walls, and the customer-flow and
open-interest series without look-ahead."""

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from m17_platform import calendar, greeks, schemas
from m17_platform.flow import check_table
from m17_platform.flow.gamma import (
    CUSTOMER_FLOW,
    PANEL_COLUMNS,
    exposure,
    flow_grid,
    gamma_exposure,
    gamma_flip,
    position_gamma,
)
from m17_platform.flow.prints import option_flow_prints
from m17_platform.schemas import GAMMA_EXPOSURE, conform
from m17_platform.settings import DEFAULT

DAY = dt.date(2025, 11, 10)
NS = 1_000_000_000


def test_position_gamma_matches_the_greeks_module():
    rng = np.random.default_rng(7)
    n = 200
    u, k = rng.uniform(50, 150, n), rng.uniform(50, 150, n)
    t, r, q, s = rng.uniform(1e-4, 2, n), rng.uniform(0, 0.06, n), rng.uniform(0, 0.03, n), rng.uniform(0.05, 1.5, n)
    call = rng.random(n) < 0.5
    b76 = rng.random(n) < 0.5
    want = np.where(b76, greeks.greeks(u, k, t, r, q, s, call, model="black76")["gamma"],
                    greeks.greeks(u, k, t, r, q, s, call, model="bsm")["gamma"])
    np.testing.assert_allclose(position_gamma(u, k, t, r, q, s, b76), want, rtol=1e-12)
    # expired, or no volatility: no gamma
    assert position_gamma([100.0, 100.0], [100.0, 100.0], [0.0, 0.1], [0, 0], [0, 0], [0.2, np.nan],
                          [False, False]).tolist() == [0.0, 0.0]


def test_gamma_flip_on_crafted_profiles():
    assert gamma_flip([1, 2, 3, 4, 5], [-2, -1, 1, 2, 3], 3.0) == pytest.approx(2.5)
    assert gamma_flip([1, 2, 3], [-1, -1, 3], 1.0) == pytest.approx(2.25)
    levels, total = [10, 20, 30, 40], [1, -1, -1, 1]  # crossings at 15 and 35
    assert gamma_flip(levels, total, 33.0) == pytest.approx(35.0)
    assert gamma_flip(levels, total, 12.0) == pytest.approx(15.0)
    assert gamma_flip([1, 2, 3], [-1, 0, 1], 1.0) == 2.0  # exactly zero at a level
    assert gamma_flip([1, 2, 3, 4], [-1, 0, 0, 1], 1.0) == 2.5
    assert gamma_flip([1, 2, 3], [1, 2, 3], 2.0) is None
    assert gamma_flip([1, 2, 3], [0, 0, 0], 2.0) is None
    with pytest.raises(ValueError, match="increasing"):
        gamma_flip([1, 3, 2], [1, -1, 1], 2.0)


def _panel(rows):
    base = dict(ts_ns=1, expiration=DAY, multiplier=100, u=100.0, sigma=0.2, t_years=0.1, rate=0.0,
                dividend_yield=0.0, model="bsm")
    frame = pl.DataFrame([{**base, **r} for r in rows])
    return frame.with_columns(pl.col("position").cast(pl.Float64)).select(PANEL_COLUMNS)


def test_gamma_flip_of_a_long_call_short_put_book_is_the_closed_form():
    # dealer long 100 calls at 110, short 100 puts at 90, same T and sigma, r = q = 0:
    # total gamma changes sign where phi(d1(110)) = phi(d1(90)), S = sqrt(110 x 90) e^{-sigma^2 T / 2}
    panel = _panel([
        dict(option_symbol="C110", strike=110.0, right="C", position=100),
        dict(option_symbol="P90", strike=90.0, right="P", position=-100),
    ])
    total = exposure(panel, "SPY", CUSTOMER_FLOW).filter(pl.col("grain") == "total").row(0, named=True)
    assert total["gamma_flip"] == pytest.approx(math.sqrt(110 * 90) * math.exp(-0.2**2 * 0.1 / 2), abs=0.01)
    # S = 100 is above the flip (99.30): the long calls' gamma dominates
    g = greeks.greeks([100.0, 100.0], [110.0, 90.0], 0.1, 0.0, 0.0, 0.2, [True, False])["gamma"]
    assert total["net_gamma"] == pytest.approx(100 * 100 * (g[0] - g[1]))
    assert total["net_gex"] == pytest.approx(100 * 100 * (g[0] - g[1]) * 100.0**2 * 0.01)
    assert total["net_gamma"] > 0 and total["gamma_flip"] < 100
    assert (total["call_wall"], total["put_wall"]) == (110.0, 90.0)


def test_walls_are_the_largest_call_and_put_exposure():
    panel = _panel([
        dict(option_symbol="C100", strike=100.0, right="C", position=10),
        dict(option_symbol="C105", strike=105.0, right="C", position=500),
        dict(option_symbol="C95", strike=95.0, right="C", position=-20),
        dict(option_symbol="P95", strike=95.0, right="P", position=-400),
        dict(option_symbol="P100", strike=100.0, right="P", position=50),
    ])
    out = exposure(panel, "SPY", CUSTOMER_FLOW)
    conform(out, GAMMA_EXPOSURE)
    total = out.filter(pl.col("grain") == "total").row(0, named=True)
    assert (total["call_wall"], total["put_wall"]) == (105.0, 95.0)
    strikes = out.filter(pl.col("grain") == "strike").sort("strike")
    assert strikes["strike"].to_list() == [95.0, 100.0, 105.0]
    assert strikes["dealer_position"].to_list() == [-420, 60, 500]
    assert total["net_gex"] == pytest.approx(strikes["net_gex"].sum())


def _flow_prints(options, at, late_size=3):
    rows = [
        dict(ts_ns=at(10, 0, 30), strike=680.0, right="C", side="buy", size=10, S=680.0, iv=0.18),
        dict(ts_ns=at(10, 1, 0), strike=680.0, right="C", side="sell", size=4, S=681.0, iv=0.19),
        dict(ts_ns=at(10, 1, 20), strike=675.0, right="P", side="unknown", size=50, S=681.0, iv=0.21),
        dict(ts_ns=at(10, 5, 10), strike=675.0, right="P", side="buy", size=late_size, S=682.0, iv=0.22),
    ]
    enriched, g = options(rows)
    return enriched, option_flow_prints(enriched, g)[0]


def test_customer_flow_position_uses_only_earlier_prints(options, at):
    enriched, prints = _flow_prints(options, at)
    out = gamma_exposure(prints, DAY, "SPY")
    conform(out, GAMMA_EXPOSURE)
    total = out.filter((pl.col("source") == "customer_flow") & (pl.col("grain") == "total"))
    pos = dict(zip(total["ts_ns"].to_list(), total["dealer_position"].to_list()))
    assert at(10, 1) in pos and pos[at(10, 1)] == -10  # the 10:01:00 print is not before 10:01:00
    assert pos[at(10, 2)] == -6 and pos[at(10, 5)] == -6
    assert pos[at(10, 6)] == -9  # dealer sold 3 puts to the buyer at 10:05:10
    assert min(pos) == at(10, 1)  # nothing before the first print
    assert all(o.passed for o in check_table("gamma_exposure", out, {"option_trades_enriched": enriched}))
    # changing a later print leaves every earlier instant unchanged
    _, later = _flow_prints(options, at, late_size=300)
    other = gamma_exposure(later, DAY, "SPY")
    cut = pl.col("ts_ns") <= at(10, 5)
    assert out.filter(cut).equals(other.filter(cut))
    assert not out.filter(~cut).equals(other.filter(~cut))


def test_customer_flow_gamma_reprices_the_position_at_each_instant(options, at):
    _, prints = _flow_prints(options, at)
    out = gamma_exposure(prints, DAY, "SPY")
    t = at(10, 3)
    row = out.filter((pl.col("ts_ns") == t) & (pl.col("grain") == "strike") & (pl.col("strike") == 680.0)).row(0, named=True)
    expiry = calendar.expiry_instant_ns(DAY)
    years = (expiry - t) / (365 * 86_400 * NS)
    # dealer short 6 calls; latest S before 10:03 is 681.0 (the 10:01:20 print), latest IV of the call 0.19
    g = greeks.greeks(681.0, 680.0, years, 0.0, 0.0, 0.19, True)["gamma"]
    assert row["call_gamma"] == pytest.approx(-6 * 100 * float(g), rel=1e-9)
    assert row["call_gex"] == pytest.approx(-6 * 100 * float(g) * 681.0**2 * 0.01, rel=1e-9)
    assert row["underlying_price"] == 681.0
    # later the same position is re-priced at the new S (682 from 10:05:10) and one hour to expiry:
    # not the sum of the gammas the prints had when they traded
    t = at(15, 0)
    later = out.filter((pl.col("ts_ns") == t) & (pl.col("strike") == 680.0)).row(0, named=True)
    g = greeks.greeks(682.0, 680.0, (expiry - t) / (365 * 86_400 * NS), 0.0, 0.0, 0.19, True)["gamma"]
    assert later["call_gamma"] == pytest.approx(-6 * 100 * float(g), rel=1e-9)
    at_trade = -(10 * 0.05 - 4 * 0.05) * 100  # the prints' own gammas (0.05 each), the issue's literal sum
    assert later["call_gamma"] != pytest.approx(at_trade, rel=0.01)


def test_flow_grid_covers_the_session_and_late_prints():
    grid = flow_grid(DAY, "SPY", None)
    open_ns, close_ns = calendar.session_window_ns("option", DAY, root="SPY")
    assert grid[0] == open_ns + 60 * NS and grid[-1] >= close_ns and grid[-2] < close_ns
    assert np.all(np.diff(grid) == 60 * NS)
    late = flow_grid(DAY, "SPY", close_ns + 10 * 60 * NS)
    assert late[-1] > close_ns + 10 * 60 * NS


def _vendor(rows):
    base = dict(sequence=0, underlying="SPY", root="SPY", expiration=DAY, implied_underlying_price=None,
                delta=None, gamma=None, theta=None, vega=None, rho=None, theoretical_value=None, source="test.vendor")
    frame = pl.DataFrame([{**base, **r} for r in rows], infer_schema_length=None)
    return pl.from_arrow(schemas.conform(frame.select(schemas.OPTION_VENDOR_GREEKS.columns), schemas.OPTION_VENDOR_GREEKS))


def test_open_interest_book_by_convention(at):
    snap = at(10, 0, 30)
    vendor = _vendor([
        dict(ts_ns=snap, option_symbol="O:SPY251110C00690000", strike=690.0, right="C", underlying_price=680.0,
             implied_volatility=0.2, open_interest=1_000),
        dict(ts_ns=snap, option_symbol="O:SPY251110P00670000", strike=670.0, right="P", underlying_price=680.0,
             implied_volatility=0.25, open_interest=3_000),
    ])
    empty = pl.DataFrame()
    out = gamma_exposure(empty, DAY, "SPY", vendor=vendor, quote_greeks=empty)
    conform(out, GAMMA_EXPOSURE)
    assert set(out["source"]) == {"open_interest"}
    total = out.filter(pl.col("grain") == "total")
    assert total["ts_ns"].to_list() == [at(10, 1)]  # first grid instant at or after the snapshot
    row = total.row(0, named=True)
    assert row["dealer_position"] == 1_000 - 3_000  # dealers long the calls, short the puts
    years = (calendar.expiry_instant_ns(DAY) - at(10, 1)) / (365 * 86_400 * NS)
    g = greeks.greeks([680.0, 680.0], [690.0, 670.0], years, DEFAULT.rates.risk_free_rate, 0.0, [0.2, 0.25],
                      [True, False])["gamma"]
    assert row["call_gamma"] == pytest.approx(1_000 * 100 * g[0], rel=1e-9)
    assert row["put_gamma"] == pytest.approx(-3_000 * 100 * g[1], rel=1e-9)
    assert (row["call_wall"], row["put_wall"]) == (690.0, 670.0)


def test_flip_profile_at_the_current_level_is_the_total_exposure():
    from m17_platform.flow.gamma import _profile_kernel

    rng = np.random.default_rng(3)
    n = 50
    u, k = np.full(n, 100.0), rng.uniform(80, 120, n)
    t, r, q, s = rng.uniform(1e-3, 1, n), np.full(n, 0.03), np.full(n, 0.01), rng.uniform(0.1, 0.6, n)
    qty, b76 = rng.integers(-500, 500, n).astype(float), rng.random(n) < 0.3
    levels = np.array([0.9, 1.0, 1.1])
    got = _profile_kernel(np.array([0, n]), qty, u, k, t, r, q, s, b76, levels, 0.01)[0]
    for j, m in enumerate(levels):
        want = np.sum(qty * position_gamma(u * m, k, t, r, q, s, b76) * (u * m) ** 2 * 0.01)
        assert got[j] == pytest.approx(want, rel=1e-10)
