"""Flow windows against a plain Python loop over hand-built prints; the cumulative series,
the prints left out, and M17's plain-text window artifact."""

from collections import defaultdict

import polars as pl
import pytest

from m17_platform.flow.prints import option_flow_prints
from m17_platform.flow.windows import flow_windows, window_artifact
from m17_platform.schemas import FLOW_WINDOWS, conform
from m17_platform.settings import DEFAULT, FlowSettings, Settings

NS = 1_000_000_000
SIGN = {"buy": 1, "sell": -1, "unknown": 0}


def _prints(at):
    """A morning of prints on three contracts, both sides, unknown side, a canceled print,
    a print without greeks, windows crossing 09:40 and 10:00."""
    rows = []
    spec = [
        # (time, strike, right, side, size, price, delta, gamma, S)
        ((9, 30, 5.0), 680.0, "C", "buy", 10, 2.00, 0.52, 0.041, 680.10),
        ((9, 30, 40.0), 680.0, "C", "sell", 3, 2.05, 0.53, 0.040, 680.25),
        ((9, 31, 1.0), 680.0, "P", "buy", 7, 1.80, -0.47, 0.042, 680.00),
        ((9, 39, 59.9), 675.0, "P", "unknown", 20, 0.60, -0.21, 0.020, 679.50),
        ((9, 40, 0.0), 675.0, "P", "sell", 50, 0.55, -0.20, 0.019, 679.80),
        ((9, 52, 30.0), 680.0, "C", "buy", 4, 2.40, 0.58, 0.043, 681.00),
        ((10, 0, 0.5), 680.0, "P", "sell", 12, 1.50, -0.42, 0.044, 681.40),
        ((10, 0, 0.7), 680.0, "P", "sell", 6, 1.50, None, None, 681.40),  # no greeks
        ((10, 1, 0.0), 680.0, "C", "buy", 100, 2.60, 0.60, 0.045, 681.50),
    ]
    for (h, m, s), k, r, side, size, price, delta, gamma, spot in spec:
        rows.append(dict(ts_ns=at(h, m, s), strike=k, right=r, side=side, size=size, price=price,
                         delta=delta, gamma=gamma, S=spot))
    rows.append(dict(ts_ns=at(9, 45), strike=680.0, right="C", side="buy", size=999, price=9.0, canceled=True))
    return rows


def _expected(rows, length_s, grain):
    """The window measures by a plain loop: {(key, window_start): {measure: value}}."""
    out = defaultdict(lambda: defaultdict(float))
    for p in rows:
        if p.get("canceled"):
            continue
        start = p["ts_ns"] // (length_s * NS) * (length_s * NS)
        key = {"contract": (p["strike"], p["right"], "SPY251110"), "strike": (p["strike"], p["right"]),
               "underlying": ()}[grain]
        m = out[(key, start)]
        sign = SIGN[p["side"]]
        premium = p["price"] * p["size"] * 100
        m["trades"] += 1
        m["volume"] += p["size"]
        m["premium"] += premium
        m[f"{p['side']}_volume"] += p["size"]
        m[f"{p['side']}_premium"] += premium
        m["net_premium"] += sign * premium
        if p["delta"] is None:
            m["greeks_missing"] += 1
        else:
            m["delta_flow"] += sign * p["size"] * 100 * p["delta"] * p["S"]
            m["gamma_flow"] += sign * p["size"] * 100 * p["gamma"] * p["S"] ** 2 * 0.01
    return out


def _windows(options, rows, settings=DEFAULT):
    enriched, greeks = options(rows)
    prints, stats = option_flow_prints(enriched, greeks, settings)
    return flow_windows(prints, settings), stats


@pytest.mark.parametrize("grain", ["contract", "strike", "underlying"])
@pytest.mark.parametrize("length_s", [60, 600])
def test_window_measures_match_a_plain_loop(options, at, grain, length_s):
    rows = _prints(at)
    windows, _ = _windows(options, rows)
    got = windows.filter((pl.col("grain") == grain) & (pl.col("window_ns") == length_s * NS))
    expected = _expected(rows, length_s, grain)
    assert got.height == len(expected)
    for r in got.iter_rows(named=True):
        key = {"contract": (r["strike"], r["right"], r["option_symbol"][2:11] if r["option_symbol"] else None),
               "strike": (r["strike"], r["right"]), "underlying": ()}[grain]
        want = expected[(key, r["window_start_ns"])]
        assert r["window_end_ns"] - r["window_start_ns"] == length_s * NS
        for m in ("trades", "volume", "buy_volume", "sell_volume", "unknown_volume", "greeks_missing"):
            assert r[m] == want[m], (m, r)
        for m in ("premium", "buy_premium", "sell_premium", "unknown_premium", "net_premium", "delta_flow", "gamma_flow"):
            assert r[m] == pytest.approx(want[m], rel=1e-12, abs=1e-9), (m, r)


def test_signed_delta_flow_by_hand(options, at):
    # a buyer of 10 calls at delta 0.5 on a $600 underlying adds +$300,000 of delta;
    # a seller of 4 puts at delta -0.25 also adds delta: -1 x 4 x 100 x -0.25 x 600 = +$60,000
    rows = [dict(ts_ns=at(11, 0, 1), side="buy", size=10, delta=0.5, gamma=0.02, S=600.0),
            dict(ts_ns=at(11, 0, 2), side="sell", size=4, right="P", delta=-0.25, gamma=0.03, S=600.0)]
    windows, _ = _windows(options, rows)
    total = windows.filter((pl.col("grain") == "underlying") & (pl.col("window_ns") == 60 * NS)).row(0, named=True)
    assert total["delta_flow"] == pytest.approx(300_000 + 60_000)
    # gamma flow: +10 x 100 x 0.02 x 600^2 x 0.01 - 4 x 100 x 0.03 x 600^2 x 0.01
    assert total["gamma_flow"] == pytest.approx(72_000 - 43_200)


def test_cumulative_series_end_at_the_day_totals(options, at):
    rows = _prints(at)
    windows, stats = _windows(options, rows)
    assert stats == {"prints_in": len(rows), "prints_canceled": 1, "prints_used": len(rows) - 1}
    live = [p for p in rows if not p.get("canceled")]
    premium = sum(p["price"] * p["size"] * 100 for p in live)
    net = sum(SIGN[p["side"]] * p["price"] * p["size"] * 100 for p in live)
    for (grain, length), part in windows.group_by(["grain", "window_ns"]):
        assert part["premium"].sum() == pytest.approx(premium)
        ends = part.sort("window_start_ns").group_by(["option_symbol", "strike", "right"]).agg(
            pl.col("cum_premium").last(), pl.col("premium").sum(), pl.col("cum_net_premium").last(),
            pl.col("net_premium").sum(), pl.col("cum_trades").last(), pl.col("trades").sum())
        assert (ends["cum_premium"] - ends["premium"]).abs().max() < 1e-6
        assert (ends["cum_net_premium"] - ends["net_premium"]).abs().max() < 1e-6
        assert (ends["cum_trades"] == ends["trades"]).all()
    under = windows.filter((pl.col("grain") == "underlying") & (pl.col("window_ns") == 600 * NS)).sort("window_start_ns")
    assert under["cum_net_premium"][-1] == pytest.approx(net)
    # cumulative is non-decreasing in volume and follows the window order
    assert under["cum_volume"].diff().drop_nulls().min() > 0


def test_windows_align_to_wall_clock_and_schema(options, at):
    windows, _ = _windows(options, _prints(at))
    conform(windows, FLOW_WINDOWS)  # fits the schema, required columns filled
    ten = windows.filter((pl.col("grain") == "underlying") & (pl.col("window_ns") == 600 * NS)).sort("window_start_ns")
    assert ten["window_start_ns"].to_list() == [at(9, 30), at(9, 40), at(9, 50), at(10, 0)]
    strike = windows.filter(pl.col("grain") == "strike")
    assert strike["option_symbol"].null_count() == strike.height and strike["strike"].null_count() == 0


def test_no_prints_no_windows_and_bad_lengths_raise(options, at):
    enriched, greeks = options([dict(ts_ns=at(10, 0), canceled=True)])
    prints, stats = option_flow_prints(enriched, greeks)
    assert stats["prints_used"] == 0 and flow_windows(prints).height == 0
    bad = Settings(flow=FlowSettings(window_seconds=(60, 0)))
    with pytest.raises(ValueError, match="window_seconds"):
        flow_windows(prints, bad)


def test_window_artifact_one_line_per_finished_window(options, at):
    windows, _ = _windows(options, _prints(at))
    text = window_artifact(windows)
    lines = text.splitlines()
    assert len(lines) == 4 and text.endswith("\n")
    assert lines[0].startswith("2025-11-10 09:30-09:40 EST SPY 10m trades=4 volume=40 ")
    assert "net=+$" in lines[0] and "delta_flow=" in lines[0] and "cum_net=" in lines[0]
    # a live partition: windows ending after "now" are not finished
    assert window_artifact(windows, now_ns=at(9, 55)).splitlines() == lines[:2]
    one_min = Settings(flow=FlowSettings(artifact_window_seconds=60))
    assert window_artifact(windows, one_min).splitlines()[0].startswith("2025-11-10 09:30-09:31 EST SPY 1m trades=2 ")


def test_greeks_join_by_key_when_tables_are_not_aligned(options, at):
    rows = _prints(at)
    enriched, greeks = options(rows)
    shuffled = greeks.reverse().slice(1)  # other order, one print without a greeks row
    prints, _ = option_flow_prints(enriched, shuffled)
    aligned, _ = option_flow_prints(enriched, greeks)
    missing = set(zip(greeks["option_symbol"], greeks["ts_ns"])) - set(zip(shuffled["option_symbol"], shuffled["ts_ns"]))
    assert len(missing) == 1
    joined = prints.select("option_symbol", "ts_ns", "delta")
    same = aligned.select("option_symbol", "ts_ns", "delta")
    for a, b in zip(joined.iter_rows(), same.iter_rows()):
        assert a[:2] == b[:2]
        assert a[2] == (None if (a[0], a[1]) in missing else b[2])
