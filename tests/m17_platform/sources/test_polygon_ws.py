"""The websocket codec: Polygon's documented messages decode to raw rows, and lake rows
survive encode -> decode exactly (the replay path)."""

import datetime as dt

import polars as pl
import pytest

from m17_platform import schemas
from m17_platform.sources.polygon_ws import (
    EXTENSION,
    Decoder,
    WireFormatError,
    encode_rows,
    frame_of,
    parse_frame,
)
from m17_platform.sources.samples import SamplesSource
from m17_platform.lake import PartitionRef
from m17_platform.sources.samples import DEFAULT_SAMPLES_DIR as SAMPLES

# the sample responses of the Massive docs pages (websocket/options/quotes, stocks/quotes, quickstart)
OPTION_QUOTE = {"ev": "Q", "sym": "O:SPY241220P00720000", "bx": 302, "ax": 302, "bp": 9.71, "ap": 9.81,
                "bs": 17, "as": 24, "t": 1644506128351, "q": 844090872}
STOCK_QUOTE = {"ev": "Q", "sym": "MSFT", "bx": 4, "bp": 114.125, "bs": 100, "ax": 7, "ap": 114.128, "as": 160,
               "c": 0, "i": [604], "t": 1536036818784, "q": 50385480, "z": 3}
STOCK_TRADE = {"ev": "T", "sym": "MSFT", "i": "12856", "x": 4, "p": 215.989, "s": 1, "c": [37],
               "t": 1611082428814, "z": 3, "q": 1}
MINUTE_BAR = {"ev": "AM", "sym": "MSFT", "v": 12345, "o": 150.85, "c": 152.90, "h": 153.17, "l": 150.50,
              "a": 151.87, "vw": 151.9, "s": 1611082800000, "e": 1611082860000}


def test_documented_option_quote_decodes_to_a_raw_row():
    d = Decoder(["SPY"]).decode("options", OPTION_QUOTE)
    assert d.table == "option_quotes"
    assert d.trade_date == dt.date(2022, 2, 10)  # 1644506128351 ms = 2022-02-10 10:15:28 ET
    row = d.row
    assert row["ts_ns"] == 1644506128351 * 1_000_000 and row["sequence"] == 844090872
    assert (row["root"], row["expiration"], row["right"], row["strike"]) == ("SPY", dt.date(2024, 12, 20), "P", 720.0)
    assert (row["bid"], row["ask"], row["bid_size"], row["ask_size"]) == (9.71, 9.81, 17, 24)
    assert row["bid_exchange"] == "302" and row["source"] == "polygon.ws"
    frame = frame_of("option_quotes", [row])
    assert frame.schema == pl.from_arrow(schemas.table("option_quotes").schema.empty_table()).schema


def test_stock_quote_sizes_are_round_lots_before_2025_11_03_and_shares_after():
    before = Decoder(["MSFT"]).decode("stocks", STOCK_QUOTE).row  # 2018
    assert (before["bid_size"], before["ask_size"]) == (100 * 100, 160 * 100)
    after = Decoder(["MSFT"]).decode("stocks", STOCK_QUOTE | {"t": 1762790400000}).row  # 2025-11-10
    assert (after["bid_size"], after["ask_size"]) == (100, 160)


def test_trades_and_aggregates():
    trade = Decoder(["MSFT"]).decode("stocks", STOCK_TRADE)
    assert trade.table == "stock_trades"
    assert trade.row["conditions"] == ["37"] and trade.row["trade_id"] == "12856" and trade.row["canceled"] is False
    bar = Decoder(["MSFT"]).decode("stocks", MINUTE_BAR)
    assert bar.table == "ws_aggregates" and bar.row["start_ns"] == 1611082800000 * 1_000_000
    assert bar.row["vwap"] == 151.9 and bar.row["volume"] == 12345


@pytest.mark.parametrize(
    ("feed", "event", "kind"),
    [
        ("options", {"ev": "XQ", "sym": "O:SPY241220P00720000"}, "unknown_event"),
        ("options", OPTION_QUOTE | {"t": "soon"}, "bad_field"),
        ("options", {k: v for k, v in OPTION_QUOTE.items() if k != "q"}, "bad_field"),
        ("options", OPTION_QUOTE | {"sym": "SPY 241220P720"}, "bad_symbol"),
        ("options", OPTION_QUOTE | {"sym": "O:QQQ241220P00420000"}, "unmapped_symbol"),
        ("stocks", STOCK_TRADE | {"p": float("inf")}, "bad_field"),
        ("stocks", ["T", "MSFT"], "not_an_object"),
        ("options", OPTION_QUOTE | {EXTENSION: {"source": "x"}}, "bad_extension"),
    ],
)
def test_malformed_events_name_their_problem(feed, event, kind):
    with pytest.raises(WireFormatError) as err:
        Decoder(["SPY", "MSFT"]).decode(feed, event)
    assert err.value.kind == kind


def test_frames_must_be_json_arrays():
    assert parse_frame('[{"ev":"status","status":"connected"}]')[0]["status"] == "connected"
    with pytest.raises(WireFormatError, match="invalid_json"):
        parse_frame("[{")
    with pytest.raises(WireFormatError, match="not_a_list"):
        parse_frame("42")


@pytest.mark.parametrize("table", ["option_trades", "option_quotes", "stock_quotes"])
def test_real_sample_rows_round_trip_exactly(table):
    """The 2016-06-01 VIX sample (Cboe DataShop: letter-free ids, millisecond times) and
    its every column except ``source`` survive the wire, extension included."""
    ref = PartitionRef(dt.date(2016, 6, 1), "VIX")
    source = SamplesSource(SAMPLES)
    frame = pl.concat([c.frame for c in source.chunks(table, ref)])
    assert frame.height > 1000
    decoder = Decoder(["VIX"])
    feed = "options" if table.startswith("option") else "stocks"
    rows = [decoder.decode(feed, ev).row for ev in encode_rows(table, frame, decoder)]
    back = frame_of(table, rows)
    assert back.drop("source").equals(frame.drop("source"))


def test_nanosecond_times_and_odd_lots_ride_in_the_extension():
    spec = schemas.table("stock_quotes")
    frame = frame_of("stock_quotes", [{
        "ts_ns": 1_536_036_818_784_123_456, "sequence": 5, "symbol": "MSFT", "underlying": "MSFT",
        "bid": 114.125, "bid_size": 137, "ask": 114.13, "ask_size": 200, "bid_exchange": "Q", "ask_exchange": "4",
        "source": "test",
    }])
    decoder = Decoder(["MSFT"])
    (event,) = encode_rows("stock_quotes", frame, decoder)
    assert event["t"] == 1_536_036_818_784 and event["bs"] == 1 and event["as"] == 2  # Polygon's own fields
    assert event[EXTENSION] == {"ts_ns": 1_536_036_818_784_123_456, "bid_size": 137, "bid_exchange": "Q"}
    row = decoder.decode("stocks", event).row
    assert {c: row[c] for c in spec.columns if c != "source"} == {c: frame.row(0, named=True)[c] for c in spec.columns if c != "source"}
