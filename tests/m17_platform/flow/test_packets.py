"""Flow packets: the anchored clustering kernel, and a packet's premium, exchanges, price
range against the NBBO, aggressor mix and evidence."""

import numpy as np
import pytest

from m17_platform.flow.gold import build_flow_packets
from m17_platform.flow.packets import packet_index, packet_table
from m17_platform.flow.prints import option_flow_prints
from m17_platform.schemas import FLOW_PACKETS, conform

MS = 1_000_000


def test_packets_are_anchored_at_their_first_print():
    ts = np.array([0, 200, 500, 501, 900, 1001, 1002]) * MS
    ts[3] = 500 * MS + 1  # 1 ns past the window of the first packet
    contract = np.zeros(ts.size, dtype=np.int64)
    got = packet_index(contract, ts, 500 * MS)
    # 0..500 ms (inclusive) is packet 0; 500 ms + 1 ns opens packet 1, which takes 900 ms
    # (< 500 ms after it) but not 1001 ms (500.999999 ms after it) -> packet 2
    assert got.tolist() == [0, 0, 0, 1, 1, 2, 2]


def test_packets_never_span_contracts():
    ts = np.array([0, 1, 2, 3]) * MS
    contract = np.array([1, 1, 2, 2])
    assert packet_index(contract, ts, 500 * MS).tolist() == [0, 0, 1, 1]


def test_packet_index_rejects_unsorted_and_mismatched_input():
    with pytest.raises(ValueError, match="backwards at row 2"):
        packet_index(np.array([1, 1, 1]), np.array([0, 5, 4]), 10)
    with pytest.raises(ValueError, match="differ in length"):
        packet_index(np.array([1, 1]), np.array([0]), 10)
    with pytest.raises(ValueError, match=">= 0"):
        packet_index(np.array([1]), np.array([0]), -1)


def test_packet_aggregates(options, at):
    t0 = at(10, 0)
    rows = [
        dict(ts_ns=t0, exchange="C", price=2.00, size=10, side="buy", placement="A", trade_id="a"),
        dict(ts_ns=t0 + 100 * MS, exchange="X", price=2.05, size=20, side="buy", placement="AA", trade_id="b"),
        dict(ts_ns=t0 + 300 * MS, exchange="I", price=2.10, size=10, side="unknown", placement="MID", trade_id=None,
             sequence=77, quote_age_ns=5_000 * MS),
        dict(ts_ns=t0 + 2_000 * MS, exchange="C", price=2.00, size=1, side="sell", placement="B", trade_id="d"),
        dict(ts_ns=t0 + 50 * MS, exchange="C", price=5.00, size=1000, side="buy", canceled=True, trade_id="x"),
    ]
    enriched, greeks = options(rows)
    prints, _ = option_flow_prints(enriched, greeks)
    table = packet_table(prints)
    assert table.height == 2
    p = table.row(0, named=True)
    assert p["prints"] == 3 and p["size"] == 40
    assert p["premium"] == pytest.approx((2.00 * 10 + 2.05 * 20 + 2.10 * 10) * 100)
    assert p["vwap"] == pytest.approx((2.00 * 10 + 2.05 * 20 + 2.10 * 10) / 40)
    assert (p["price_min"], p["price_max"]) == (2.00, 2.10)
    assert p["bid"] == pytest.approx(1.95) and p["ask"] == pytest.approx(2.05)  # NBBO at the first print
    assert p["price_max_vs_ask"] == pytest.approx(0.05) and p["price_min_vs_bid"] == pytest.approx(0.05)
    assert p["exchanges"] == ["C", "I", "X"] and p["exchange_count"] == 3
    assert (p["buy_volume"], p["sell_volume"], p["unknown_volume"]) == (30, 0, 10)
    assert p["side_share"] == pytest.approx(0.75)
    assert p["side"] == "mixed"  # 75% buy < the 80% min_aggressor_ratio
    assert (p["at_ask_volume"], p["above_ask_volume"], p["mid_volume"]) == (10, 20, 10)
    assert p["placement"] == "AA"
    assert p["nbbo_coverage"] == 1.0 and p["nbbo_fresh_share"] == pytest.approx(2 / 3)  # one quote is 5 s old
    assert p["evidence_trade_ids"] == ["a", "b", f"{p['option_symbol']}@{t0 + 300 * MS}:77"]
    assert p["end_ts_ns"] - p["ts_ns"] == 300 * MS
    assert p["packet_id"] == f"{p['option_symbol']}@{t0}"
    q = table.row(1, named=True)
    assert q["side"] == "sell" and q["side_share"] == 1.0 and q["evidence_trade_ids"] == ["d"]


def test_flow_packets_fit_the_schema_with_presets(options, at):
    rows = [dict(ts_ns=at(10, 0, i), price=3.0, size=50 * (i + 1), side="buy") for i in range(3)]
    enriched, greeks = options(rows)
    packets, stats = build_flow_packets(enriched, greeks)
    conform(packets, FLOW_PACKETS)
    assert stats["prints_used"] == 3
    # $15,000, $30,000, $45,000 ask-side SPY prints: SPY is an ETF, so smart-money wants
    # $50,000, balanced $25,000; all keeps everything
    assert packets["presets"].to_list() == [["all"], ["balanced", "all"], ["balanced", "all"]]
