"""The flow classifiers on hand-built prints whose answers are known, the spike baseline's
freedom from look-ahead, and the signal presets of seed 004 rule by rule."""

import datetime as dt
import statistics

import polars as pl
import pytest

from m17_platform.flow import check_table
from m17_platform.flow.classifiers import classifier_prints, flow_alerts, signal_presets, spike_baselines
from m17_platform.flow.packets import packet_table
from m17_platform.flow.prints import option_flow_prints
from m17_platform.schemas import FLOW_ALERTS, conform
from m17_platform.settings import DEFAULT, ClassifierSettings, Settings

MS = 1_000_000
NS = 1_000_000_000
DAY = dt.date(2025, 11, 10)


def _alerts(options, rows, settings=DEFAULT):
    enriched, greeks = options(rows)
    prints, _ = option_flow_prints(enriched, greeks, settings)
    alerts = flow_alerts(prints, packet_table(prints, settings), DAY, settings)
    return alerts, enriched


def _of(alerts, classifier):
    return alerts.filter(pl.col("classifier") == classifier)


# --- sweep --------------------------------------------------------------------------------


def test_sweep_across_three_exchanges_within_the_window(options, at):
    t0 = at(10, 0)
    rows = [dict(ts_ns=t0 + k * 150 * MS, exchange=ex, price=2.0, size=20, side="buy", placement="A", trade_id=f"s{k}")
            for k, ex in enumerate(["C", "X", "I"])]
    alerts, enriched = _alerts(options, rows)
    sweeps = _of(alerts, "sweep")
    assert sweeps.height == 1
    s = sweeps.row(0, named=True)
    assert s["side"] == "buy" and s["evidence_trade_ids"] == ["s0", "s1", "s2"] and s["evidence_count"] == 3
    assert s["premium"] == pytest.approx(12_000.0) and s["size"] == 60
    assert (s["start_ts_ns"], s["ts_ns"]) == (t0, t0 + 300 * MS)
    assert s["confidence"] == pytest.approx(1.0)  # one side, all at the ask, NBBO usable, side certain
    assert any("3 prints on 3 exchanges (C,I,X)" in r for r in s["reasons"])
    conform(alerts, FLOW_ALERTS)
    assert all(o.passed for o in check_table("flow_alerts", alerts, {"option_trades_enriched": enriched}))


@pytest.mark.parametrize(
    "rows",
    [
        # two prints on one exchange
        [dict(exchange="C", side="buy"), dict(exchange="C", side="buy")],
        # three exchanges, but 600 ms apart: three packets
        [dict(exchange=ex, side="buy", dt_ms=600 * k) for k, ex in enumerate("CXI")],
        # three exchanges, both sides
        [dict(exchange="C", side="buy"), dict(exchange="X", side="sell"), dict(exchange="I", side="buy")],
    ],
    ids=["one_exchange", "outside_window", "mixed_sides"],
)
def test_not_a_sweep(options, at, rows):
    t0 = at(10, 0)
    prints = [dict(ts_ns=t0 + p.pop("dt_ms", 100 * k) * MS, price=2.0, size=20, placement="A", **p)
              for k, p in enumerate(rows)]
    alerts, _ = _alerts(options, prints)
    assert _of(alerts, "sweep").height == 0


def test_sweep_premium_threshold_comes_from_settings(options, at):
    rows = [dict(ts_ns=at(10, 0) + k * MS, exchange=ex, price=2.0, size=20, side="sell", placement="B")
            for k, ex in enumerate("CX")]  # $8,000
    strict = Settings(classifiers=ClassifierSettings(sweep_min_premium=8_000.01))
    assert _of(_alerts(options, rows)[0], "sweep").height == 1
    assert _of(_alerts(options, rows, strict)[0], "sweep").height == 0


# --- block --------------------------------------------------------------------------------


def test_block_is_a_single_large_print(options, at):
    rows = [dict(ts_ns=at(10, 0), size=500, price=0.10, side="sell", trade_id="big"),
            dict(ts_ns=at(10, 5), size=499, price=10.0, side="buy", trade_id="almost")]
    alerts, _ = _alerts(options, rows)
    blocks = _of(alerts, "block")
    assert blocks["evidence_trade_ids"].to_list() == [["big"]]
    assert blocks["side"].to_list() == ["sell"] and blocks["size"].to_list() == [500]


# --- repeated hits ------------------------------------------------------------------------


@pytest.mark.parametrize("packets, expected", [(2, 0), (3, 1), (5, 1), (6, 2)])
def test_repeated_hits_report_each_burst_once(options, at, packets, expected):
    rows = [dict(ts_ns=at(10, 0, 5 * k), price=1.0, size=50, side="buy", trade_id=f"h{k}") for k in range(packets)]
    alerts, _ = _alerts(options, rows)
    hits = _of(alerts, "repeated_hits")
    assert hits.height == expected
    ids = [i for ev in hits["evidence_trade_ids"].to_list() for i in ev]
    assert len(ids) == len(set(ids)) == 3 * expected  # evidence never overlaps
    if expected:
        assert hits.row(0, named=True)["evidence_trade_ids"] == ["h0", "h1", "h2"]


def test_repeated_hits_need_one_side_and_the_window(options, at):
    mixed = [dict(ts_ns=at(10, 0, 5 * k), price=1.0, size=50, side=("buy", "sell", "buy")[k]) for k in range(3)]
    slow = [dict(ts_ns=at(10, 0, 40 * k), price=1.0, size=50, side="buy") for k in range(3)]  # 80 s > 60 s
    assert _of(_alerts(options, mixed)[0], "repeated_hits").height == 0
    assert _of(_alerts(options, slow)[0], "repeated_hits").height == 0


# --- spike --------------------------------------------------------------------------------


def _baseline_rows(at, n=30):
    sizes = [8, 9, 10, 11, 12, 10]
    rows = [dict(ts_ns=at(10, 0, k), price=1.0, size=sizes[k % len(sizes)], side="buy", trade_id=f"b{k}")
            for k in range(n)]
    rows.append(dict(ts_ns=at(10, 0, n), price=1.0, size=200, side="buy", trade_id="spike"))
    return rows


def test_spike_z_score_against_the_contracts_prior_prints(options, at):
    rows = _baseline_rows(at)
    alerts, enriched = _alerts(options, rows)
    spikes = _of(alerts, "spike")
    assert spikes["evidence_trade_ids"].to_list() == [["spike"]]
    s = spikes.row(0, named=True)
    prior = [r["size"] for r in rows[:-1]]
    assert s["baseline_n"] == 30
    assert s["baseline_size_mean"] == pytest.approx(statistics.mean(prior))
    assert s["size_z"] == pytest.approx((200 - statistics.mean(prior)) / statistics.stdev(prior))
    assert s["baseline_premium_mean"] == pytest.approx(statistics.mean(prior) * 100)
    assert s["baseline_last_ts_ns"] == rows[-2]["ts_ns"] < s["ts_ns"]
    assert s["baseline_first_ts_ns"] == rows[0]["ts_ns"]
    checks = {o.name: o for o in check_table("flow_alerts", alerts, {"option_trades_enriched": enriched})}
    assert checks["baseline_no_lookahead"].passed and checks["baseline_no_lookahead"].metadata["spikes"] == 1


def test_spike_baseline_never_uses_later_prints(options, at):
    rows = _baseline_rows(at)
    enriched, greeks = options(rows)
    prints, _ = option_flow_prints(enriched, greeks)
    before = spike_baselines(prints)
    changed = [dict(r) for r in rows]
    changed[25]["size"] = 5_000  # perturb a later print
    changed[25]["price"] = 9.0
    e2, g2 = options(changed)
    p2, _ = option_flow_prints(e2, g2)
    after = spike_baselines(p2)
    # every baseline up to and including print 25's own is unchanged, and so is every
    # z-score before print 25
    assert before.slice(0, 26).equals(after.slice(0, 26).with_columns(before.slice(0, 26).select("premium_z", "size_z")))
    assert before.slice(0, 25).equals(after.slice(0, 25))
    assert not before.slice(26).equals(after.slice(26))  # later baselines do see it


def test_spike_needs_enough_recent_baseline(options, at):
    few = _baseline_rows(at, n=19)  # below spike_min_samples = 20
    assert _of(_alerts(options, few)[0], "spike").height == 0
    rows = _baseline_rows(at)
    rows[-1]["ts_ns"] = rows[-2]["ts_ns"] + 1_801 * NS  # the whole baseline is older than 30 min
    assert _of(_alerts(options, rows)[0], "spike").height == 0
    base = spike_baselines(option_flow_prints(*options(rows))[0])
    assert base["baseline_n"][-1] == 0 and base["size_z"][-1] is None


def test_constant_baseline_gives_infinite_z(options, at):
    rows = [dict(ts_ns=at(10, 0, k), price=1.0, size=10) for k in range(25)] + [dict(ts_ns=at(10, 1), price=1.0, size=150)]
    base = spike_baselines(option_flow_prints(*options(rows))[0])
    assert base["size_z"][-1] == float("inf") and base["size_z"][-2] == 0.0


# --- 0DTE burst ---------------------------------------------------------------------------


def test_zero_dte_near_the_money_burst(options, at):
    near = [dict(ts_ns=at(14, 0, 10 * k), strike=679.0 + k, S=680.0, price=2.0, size=50, side="buy", trade_id=f"z{k}")
            for k in range(3)]  # $30,000, 150 contracts, strikes within 0.15% of S
    alerts, _ = _alerts(options, near)
    burst = _of(alerts, "zero_dte_burst")
    assert burst.height == 1
    b = burst.row(0, named=True)
    assert b["evidence_trade_ids"] == ["z0", "z1", "z2"] and len(b["legs"]) == 3 and b["side"] == "buy"
    assert b["premium"] == pytest.approx(30_000.0)


@pytest.mark.parametrize("change", [dict(strike=700.0), dict(expiration=dt.date(2025, 11, 14))], ids=["far", "not_0dte"])
def test_no_zero_dte_burst(options, at, change):
    rows = [dict(ts_ns=at(14, 0, 10 * k), S=680.0, price=2.0, size=50, side="buy", **change) for k in range(3)]
    assert _of(_alerts(options, rows)[0], "zero_dte_burst").height == 0


# --- multi-leg ----------------------------------------------------------------------------


def test_vertical_straddle_strangle(options, at):
    t = at(11, 0)
    rows = [
        dict(ts_ns=t, strike=680.0, right="C", price=3.0, size=10, side="buy", trade_id="v1"),
        dict(ts_ns=t, strike=685.0, right="C", price=1.0, size=10, side="sell", trade_id="v2"),
        dict(ts_ns=t + NS, strike=680.0, right="C", price=3.0, size=5, side="buy", trade_id="d1"),
        dict(ts_ns=t + NS, strike=680.0, right="P", price=2.5, size=5, side="buy", trade_id="d2"),
        dict(ts_ns=t + 2 * NS, strike=690.0, right="C", price=0.5, size=7, side="sell", trade_id="g1"),
        dict(ts_ns=t + 2 * NS, strike=670.0, right="P", price=0.4, size=7, side="sell", trade_id="g2"),
        dict(ts_ns=t + 3 * NS, strike=690.0, right="C", price=0.5, size=7, side="buy", trade_id="u1"),
        dict(ts_ns=t + 3 * NS, strike=670.0, right="P", price=0.4, size=3, side="buy", trade_id="u2"),  # unequal
    ]
    alerts, _ = _alerts(options, rows)
    legs = alerts.filter(pl.col("classifier").is_in(["vertical", "straddle", "strangle", "multi_leg"])).sort("ts_ns")
    assert legs["classifier"].to_list() == ["vertical", "straddle", "strangle"]
    assert [sorted(e) for e in legs["evidence_trade_ids"].to_list()] == [["v1", "v2"], ["d1", "d2"], ["g1", "g2"]]
    assert legs["side"].to_list() == ["buy", "buy", "sell"]  # the vertical is bought: its dearer leg is bought
    # size match 1, side pattern 1, no multi-leg condition 0.5, NBBO 1
    assert legs["confidence"].to_list() == pytest.approx([0.875, 0.875, 0.875])


def test_legs_marked_multi_leg_by_the_source(options, at):
    t = at(11, 0)
    rows = [dict(ts_ns=t, strike=680.0, right="C", size=10, conditions=["233"]),
            dict(ts_ns=t, strike=690.0, right="C", size=20, conditions=["233"], expiration=dt.date(2025, 11, 14))]
    alerts, _ = _alerts(options, rows)
    assert _of(alerts, "multi_leg").height == 1


# --- signal presets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "premium, size, placement, underlying, sweep, stale, expected",
    [
        (150_000, 10, "B", "SPY", False, True, {"smart-money", "balanced", "all"}),  # auto-keep wins
        (9_999, 10, "A", "AMZN", False, False, {"balanced", "all"}),  # below the 10k floor
        (15_000, 10, "A", "SPY", False, False, {"all"}),  # ETF under 50k (balanced: 25k)
        (15_000, 10, "A", "AMZN", False, False, {"smart-money", "balanced", "all"}),  # ask side at 10k+
        (20_000, 10, "B", "AMZN", False, False, {"all"}),  # bid side under 25k; balanced: no keep rule for it
        (30_000, 10, "B", "AMZN", False, False, {"all"}),  # not rejected, but no keep rule either
        (30_000, 10, "B", "AMZN", True, False, {"smart-money", "balanced", "all"}),  # a bid-side sweep at 25k+
        (15_000, 10, "MID", "AMZN", False, False, {"all"}),  # non-sweep MID under 20k; balanced has no keep rule
        (30_000, 10, "MID", "AMZN", True, False, {"smart-money", "balanced", "all"}),  # sweep at 25k+
        (40_000, 10, "A", "AMZN", False, True, {"balanced", "all"}),  # stale NBBO under 50k
        (12_000, 600, "MID", "AMZN", True, False, {"smart-money", "balanced", "all"}),  # 500+ contracts at 10k+
        (12_000, 400, "MID", "AMZN", True, False, {"balanced", "all"}),  # 400 contracts: smart-money wants 500
    ],
)
def test_signal_presets_follow_seed_004(premium, size, placement, underlying, sweep, stale, expected):
    frame = pl.DataFrame({"premium": [float(premium)], "size": [size], "placement": [placement],
                          "underlying": [underlying], "is_sweep": [sweep], "nbbo_stale": [stale]})
    assert set(signal_presets(frame).to_list()[0]) == expected


def test_alert_ids_are_unique_and_every_alert_has_evidence(options, at):
    rows = _baseline_rows(at) + [dict(ts_ns=at(10, 0, 31) + k, price=1.0, size=600, side="buy") for k in range(3)]
    alerts, enriched = _alerts(options, rows)
    assert alerts.height >= 4
    assert alerts["alert_id"].n_unique() == alerts.height
    assert (alerts["evidence_count"] >= 1).all()
    outcomes = check_table("flow_alerts", alerts, {"option_trades_enriched": enriched})
    assert [o.name for o in outcomes] == ["evidence", "baseline_no_lookahead", "confidence"]
    assert all(o.passed for o in outcomes)


def test_classifier_prints_adds_what_classifiers_read(options, at):
    enriched, greeks = options([dict(ts_ns=at(10, 0), conditions=["219"])])
    prints = classifier_prints(option_flow_prints(enriched, greeks)[0])
    assert prints["iso"].to_list() == [True] and prints["buy_volume"].to_list() == [1]
