"""The gold checks pass on what the engines build and fail on tampered tables: each check
recomputes its claim from the input prints."""

import datetime as dt

import polars as pl
import pytest

from m17_platform.flow import CHECKS, check_table, gold_tables
from m17_platform.schemas import FLOW_TABLES

NS = 1_000_000_000
DAY = dt.date(2025, 11, 10)


@pytest.fixture
def day(options, stocks, futures, at):
    """A small day: sweeps, blocks, a spike, bursts, legs, TRF prints, futures; all gold tables."""
    rows = [dict(ts_ns=at(10, 0, k), price=1.0, size=(8, 10, 12)[k % 3], side="buy") for k in range(25)]
    rows += [dict(ts_ns=at(10, 1) + k * 1000, exchange=ex, price=1.0, size=300, side="buy") for k, ex in enumerate("CXI")]
    rows += [dict(ts_ns=at(10, 2), strike=690.0, size=600, price=0.5, side="sell"),
             dict(ts_ns=at(10, 3), strike=685.0, size=10, price=1.2, side="buy"),
             dict(ts_ns=at(10, 3), strike=690.0, size=10, price=0.5, side="sell")]
    enriched, greeks = options(rows)
    stock = stocks([dict(ts_ns=at(11, 0, 5 * k), exchange="4", size=1_000, side="buy") for k in range(5)]
                   + [dict(ts_ns=at(11, 5), exchange="10", size=100)])
    fut = futures([dict(ts_ns=at(10, 0), price=6_800.0), dict(ts_ns=at(10, 0, 1), price=6_801.0)])
    frames = {"option_trades_enriched": enriched, "option_trade_greeks": greeks, "stock_trades_enriched": stock,
              "futures_trades_enriched": fut}
    result = gold_tables(DAY, "SPY", frames)
    return result, {**frames, **result.tables}


def _outcomes(name, frame, inputs):
    return {o.name: o for o in check_table(name, frame, inputs)}


def test_every_gold_table_passes_its_checks(day):
    result, inputs = day
    assert set(result.tables) == set(FLOW_TABLES) == set(CHECKS)
    for name, frame in result.tables.items():
        assert frame.height > 0 or name == "gamma_exposure", name
        outcomes = _outcomes(name, frame, inputs)
        assert list(outcomes) == [c for c, _ in CHECKS[name]]
        assert all(o.passed for o in outcomes.values()), (name, {k: o.metadata for k, o in outcomes.items()})
    assert {"sweep", "block", "spike", "vertical"} <= set(result.tables["flow_alerts"]["classifier"])
    assert result.tables["off_exchange_events"]["kind"].to_list() == ["stealth_accumulation"]


def test_window_checks_catch_wrong_premium_and_flows(day):
    result, inputs = day
    w = result.tables["flow_windows"]
    bumped = w.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.col("premium") + 1).otherwise(pl.col("premium")))
    assert not _outcomes("flow_windows", bumped, inputs)["premium"].passed
    one = (pl.col("grain") == "contract") & (pl.col("window_ns") == 60 * NS)
    skewed = w.with_columns(pl.when(one).then(pl.col("delta_flow") * 1.01).otherwise(pl.col("delta_flow")))
    assert not _outcomes("flow_windows", skewed, inputs)["flows_sum_to_totals"].passed
    cum = w.with_columns(pl.col("cum_volume") + 1)
    assert not _outcomes("flow_windows", cum, inputs)["flows_sum_to_totals"].passed


def test_packet_checks_catch_wrong_premium_and_lost_prints(day):
    result, inputs = day
    p = result.tables["flow_packets"]
    assert not _outcomes("flow_packets", p.with_columns(pl.col("premium") * 1.001), inputs)["premium"].passed
    assert not _outcomes("flow_packets", p.slice(1), inputs)["packets_cover_prints"].passed


def test_alert_checks_catch_missing_evidence_and_look_ahead(day):
    result, inputs = day
    a = result.tables["flow_alerts"]
    first = pl.int_range(pl.len()) == 0
    empty = a.with_columns(pl.when(first).then(pl.lit([], dtype=pl.List(pl.String))).otherwise(pl.col("evidence_trade_ids"))
                           .alias("evidence_trade_ids"))
    assert not _outcomes("flow_alerts", empty, inputs)["evidence"].passed
    ghost = a.with_columns(pl.when(first).then(pl.lit(["no-such-print"])).otherwise(pl.col("evidence_trade_ids"))
                           .alias("evidence_trade_ids"))
    assert not _outcomes("flow_alerts", ghost, inputs)["evidence"].passed
    spike = pl.col("classifier") == "spike"
    peeked = a.with_columns(pl.when(spike).then(pl.col("baseline_premium_mean") * 1.1)
                            .otherwise(pl.col("baseline_premium_mean")))
    assert not _outcomes("flow_alerts", peeked, inputs)["baseline_no_lookahead"].passed
    later = a.with_columns(pl.when(spike).then(pl.col("ts_ns") + 1).otherwise(pl.col("baseline_last_ts_ns"))
                           .alias("baseline_last_ts_ns"))
    assert not _outcomes("flow_alerts", later, inputs)["baseline_no_lookahead"].passed
    wild = a.with_columns(pl.when(first).then(1.5).otherwise(pl.col("confidence")).alias("confidence"))
    assert not _outcomes("flow_alerts", wild, inputs)["confidence"].passed


def test_gamma_check_catches_a_position_that_saw_the_future(day):
    result, inputs = day
    g = result.tables["gamma_exposure"]
    total = (pl.col("grain") == "total") & (pl.col("source") == "customer_flow")
    assert g.filter(total).height > 0
    ahead = g.with_columns(pl.when(total & (pl.col("ts_ns") == pl.col("ts_ns").filter(total).min()))
                           .then(pl.col("dealer_position") - 300).otherwise(pl.col("dealer_position")))
    outcomes = _outcomes("gamma_exposure", ahead, inputs)
    assert not outcomes["no_lookahead"].passed and outcomes["no_lookahead"].metadata["off"] == 1


def test_off_exchange_and_bar_checks_catch_bad_rows(day):
    result, inputs = day
    prints = result.tables["off_exchange_prints"]
    flipped = prints.with_columns(~pl.col("off_exchange"))
    assert not _outcomes("off_exchange_prints", flipped, inputs)["off_exchange_flag"].passed
    events = result.tables["off_exchange_events"]
    lit_id = prints.filter(~pl.col("off_exchange"))["evidence_id"][0]
    wrong = events.with_columns(pl.lit([lit_id]).alias("evidence_trade_ids"))
    assert not _outcomes("off_exchange_events", wrong, inputs)["evidence"].passed
    b = result.tables["bars"]
    assert not _outcomes("bars", b.with_columns(pl.col("high") - 10), inputs)["ohlcv"].passed
    assert not _outcomes("bars", b.slice(1), inputs)["ohlcv"].passed


def test_check_table_names_what_it_lacks():
    with pytest.raises(KeyError, match="not a gold flow table"):
        check_table("option_trades", pl.DataFrame(), {})
    with pytest.raises(KeyError, match="need the tables"):
        check_table("flow_windows", pl.DataFrame(), {})
