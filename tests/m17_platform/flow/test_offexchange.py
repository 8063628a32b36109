"""Off-exchange prints and the inferred events of seed 004 on crafted frames (the bundled
samples have no TRF prints: LOBSTER is Nasdaq's own book)."""

import polars as pl
import pytest

from m17_platform.flow import check_table
from m17_platform.flow.offexchange import cooldown, off_exchange_events, off_exchange_prints
from m17_platform.schemas import OFF_EXCHANGE_EVENTS, OFF_EXCHANGE_PRINTS, conform
from m17_platform.settings import OffExchangeSettings, Settings

MS = 1_000_000
NS = 1_000_000_000


@pytest.mark.parametrize(
    "source, exchange, expected",
    [
        ("polygon.rest.v3_trades", "4", True),  # FINRA TRFs / ADF share Polygon id 4
        ("polygon.flatfiles.us_stocks_sip", "4", True),
        ("polygon.rest.v3_trades", "10", False),  # NYSE
        ("databento.xnas-itch.mbo", "XNAS", False),
        ("databento.equs-mini.mbo", "FINN", True),
        ("databento.equs-mini.mbo", "XADF", True),
        ("lobster.message", "XNAS", False),  # one exchange's book: never off-exchange
        ("lobster.message", "4", False),  # the code means nothing outside Polygon's code space
        ("synthetic.stock_trades", "D", True),
        ("polygon.rest.v3_trades", None, False),
    ],
)
def test_off_exchange_flag_in_each_sources_code_space(stocks, source, exchange, expected):
    frame = off_exchange_prints(stocks([dict(exchange=exchange, source=source)]))
    assert frame["off_exchange"].to_list() == [expected]


def test_off_exchange_prints_keep_every_print(stocks, at):
    enriched = stocks([dict(exchange="4"), dict(exchange="10"), dict(exchange="4", canceled=True, trade_id=None)])
    frame = off_exchange_prints(enriched)
    conform(frame, OFF_EXCHANGE_PRINTS)
    assert frame.height == 3 and frame["off_exchange"].to_list() == [True, False, True]
    assert frame["evidence_id"][2] == f"SPY@{frame['ts_ns'][2]}:2"
    (outcome,) = check_table("off_exchange_prints", frame, {"stock_trades_enriched": enriched})
    assert outcome.passed and outcome.metadata["off_exchange"] == 2


def _quotes(rows):
    return pl.DataFrame(rows, schema={"symbol": pl.String, "ts_ns": pl.Int64, "bid": pl.Float64, "ask": pl.Float64})


def test_absorbed_block(stocks, at):
    t = at(11, 0)
    prints = off_exchange_prints(stocks([dict(ts_ns=t, exchange="4", size=25_000, price=100.00, bid=99.99, ask=100.01,
                                              side="unknown", trade_id="blk")]))
    # a minute later the mid is still inside the print's 99.99 / 100.01 quote: absorbed
    held = _quotes([dict(symbol="SPY", ts_ns=t + 59 * NS, bid=99.99, ask=100.01)])
    events, stats = off_exchange_events(prints, held)
    conform(events, OFF_EXCHANGE_EVENTS)
    assert events["kind"].to_list() == ["absorbed_block"] and events["evidence_trade_ids"].to_list() == [["blk"]]
    e = events.row(0, named=True)
    assert e["known_ts_ns"] == t + 60 * NS and e["mid_after"] == pytest.approx(100.0) and e["size"] == 25_000
    assert stats == {"off_exchange_prints": 1, "candidates": 1, "suppressed_by_cooldown": 0}
    # the market moved away: not absorbed
    moved = _quotes([dict(symbol="SPY", ts_ns=t + 30 * NS, bid=100.05, ask=100.07)])
    assert off_exchange_events(prints, moved)[0].height == 0
    # a quote that moves only after the window does not count (no look past known_ts_ns)
    late = _quotes([dict(symbol="SPY", ts_ns=t, bid=99.99, ask=100.01), dict(symbol="SPY", ts_ns=t + 61 * NS, bid=101, ask=101.02)])
    assert off_exchange_events(prints, late)[0].height == 1


def test_small_or_on_exchange_prints_are_no_block(stocks, at):
    t = at(11, 0)
    quotes = _quotes([dict(symbol="SPY", ts_ns=t, bid=99.99, ask=100.01)])
    small = off_exchange_prints(stocks([dict(ts_ns=t, exchange="4", size=9_999)]))
    lit = off_exchange_prints(stocks([dict(ts_ns=t, exchange="10", size=50_000)]))
    wide = off_exchange_prints(stocks([dict(ts_ns=t, exchange="4", size=50_000, bid=99.0, ask=101.0)]))
    for prints in (small, lit, wide):
        assert off_exchange_events(prints, quotes)[0].filter(pl.col("kind") == "absorbed_block").height == 0


def _stealth(at, start, side="buy", n=5, size=1_000):
    return [dict(ts_ns=at(11, 0) + start * NS + k * 5 * NS, exchange="4", size=size, side=side, trade_id=f"{side}{start}-{k}")
            for k in range(n)]


def test_stealth_accumulation_and_distribution(stocks, at):
    prints = off_exchange_prints(stocks(_stealth(at, 0) + _stealth(at, 1_000, side="sell")))
    events, _ = off_exchange_events(prints, _quotes([]))
    assert events["kind"].to_list() == ["stealth_accumulation", "stealth_distribution"]
    acc = events.row(0, named=True)
    assert acc["prints"] == 5 and acc["size"] == 5_000 and acc["evidence_count"] == 5
    assert acc["evidence_trade_ids"] == [f"buy0-{k}" for k in range(5)]
    assert acc["known_ts_ns"] == at(11, 0) + 20 * NS
    checks = check_table("off_exchange_events", events, {"off_exchange_prints": prints})
    assert all(o.passed for o in checks)


def test_stealth_needs_count_size_and_one_side(stocks, at):
    too_few = _stealth(at, 0, n=4)
    too_small = _stealth(at, 0, size=99)  # below min_print_size
    opposed = _stealth(at, 0) + [dict(ts_ns=at(11, 0, 7), exchange="4", size=5_000, side="sell")]  # 50% buy
    for rows in (too_few, too_small, opposed):
        events, _ = off_exchange_events(off_exchange_prints(stocks(rows)), _quotes([]))
        assert events.filter(pl.col("kind").str.starts_with("stealth")).height == 0


def test_cooldown_suppresses_repeats(stocks, at):
    # bursts at +0 s, +100 s (inside the 300 s cooldown) and +400 s
    rows = _stealth(at, 0) + _stealth(at, 100) + _stealth(at, 400)
    events, stats = off_exchange_events(off_exchange_prints(stocks(rows)), _quotes([]))
    assert events["ts_ns"].to_list() == [at(11, 0), at(11, 0) + 400 * NS]
    assert stats["candidates"] == 3 and stats["suppressed_by_cooldown"] == 1
    assert cooldown([1, 1, 1, 2], [0, 5, 10, 6], 10).tolist() == [True, False, True, True]


def test_evidence_is_capped_but_counted(stocks, at):
    rows = [dict(ts_ns=at(11, 0) + k * NS, exchange="4", size=1_000, side="buy") for k in range(8)]
    settings = Settings(off_exchange=OffExchangeSettings(max_evidence=3, min_accum_count=8))
    events, _ = off_exchange_events(off_exchange_prints(stocks(rows)), _quotes([]), settings)
    e = events.row(0, named=True)
    assert len(e["evidence_trade_ids"]) == 3 and e["evidence_count"] == 8
