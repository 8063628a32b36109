"""The websocket codec: Polygon's documented messages decode to raw rows, and lake rows
survive encode -> decode exactly (the replay path)."""

import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from m17_platform import schemas
from m17_platform.settings import DEFAULT
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
               "c": 0, "i": [604], "t": 1536036818784, "q": 50385480, "z": 3}  # 2018-09-04 00:53:38 ET
IN_SESSION = 1536036818784 + 10 * 3_600_000  # the same quote at 10:53:38 ET
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
    before = Decoder(["MSFT"]).decode("stocks", STOCK_QUOTE | {"t": IN_SESSION}).row  # 2018
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
        "ts_ns": 1_536_072_818_784_123_456, "sequence": 5, "symbol": "MSFT", "underlying": "MSFT",
        "bid": 114.125, "bid_size": 137, "ask": 114.13, "ask_size": 200, "bid_exchange": "Q", "ask_exchange": "4",
        "source": "test",
    }])
    decoder = Decoder(["MSFT"])
    (event,) = encode_rows("stock_quotes", frame, decoder)
    assert event["t"] == 1_536_072_818_784 and event["bs"] == 1 and event["as"] == 2  # Polygon's own fields
    assert event[EXTENSION] == {"ts_ns": 1_536_072_818_784_123_456, "bid_size": 137, "bid_exchange": "Q"}
    row = decoder.decode("stocks", event).row
    assert {c: row[c] for c in spec.columns if c != "source"} == {c: frame.row(0, named=True)[c] for c in spec.columns if c != "source"}


# --- nothing a feed sends gets past the decoder unchecked: every bad value is a reject

TRADE = {"ev": "T", "sym": "O:SPY241220P00720000", "x": 65, "p": 9.75, "s": 2, "c": [209], "t": 1644506128351, "q": 7}
ET_0300 = 1644480000000  # 2022-02-10 03:00 ET
SATURDAY = 1644506128351 + 2 * 86_400_000  # 2022-02-12


@pytest.mark.parametrize(
    ("feed", "event", "kind", "names"),
    [
        ("options", OPTION_QUOTE | {"t": 10**30}, "bad_field", "'t'"),  # OverflowError before
        ("options", OPTION_QUOTE | {"t": -(10**30)}, "bad_field", "'t'"),
        ("options", OPTION_QUOTE | {"q": 10**30}, "bad_field", "'q'"),  # did not fit int64 at the flush
        ("options", OPTION_QUOTE | {"bs": 2**63}, "bad_field", "'bs'"),
        ("options", OPTION_QUOTE | {"bp": 10**400}, "bad_field", "'bp'"),  # beyond the float range
        ("options", OPTION_QUOTE | {"bp": float("nan")}, "bad_field", "'bp'"),
        ("options", OPTION_QUOTE | {"t": True}, "bad_field", "'t'"),
        ("options", OPTION_QUOTE | {"c": {"x": 1}}, None, None),  # unknown fields are not read
        ("options", OPTION_QUOTE | {"bx": [1]}, "bad_field", "'bx'"),
        ("options", OPTION_QUOTE | {"t": 0}, "not_trading_day", "1969-12-31"),  # landed in 1969-12-31 before
        ("options", OPTION_QUOTE | {"t": SATURDAY}, "not_trading_day", "2022-02-12"),
        ("options", OPTION_QUOTE | {"t": ET_0300}, "outside_session", "03:00:00"),
        ("options", OPTION_QUOTE | {"bp": -0.01}, "bad_price", "bid"),
        ("options", OPTION_QUOTE | {"as": -1}, "bad_size", "ask_size"),
        ("options", TRADE | {"p": 0}, "bad_price", "price"),
        ("options", TRADE | {"p": -9.75}, "bad_price", "price"),
        ("options", TRADE | {"s": 0}, "bad_size", "size"),
        ("options", OPTION_QUOTE | {EXTENSION: {"ts_ns": 10**30}}, "bad_extension", "ts_ns"),
        ("options", OPTION_QUOTE | {EXTENSION: {"ts_ns": 0}}, "not_trading_day", "1969-12-31"),
        ("options", OPTION_QUOTE | {EXTENSION: {"expiration": 20241220}}, "bad_extension", "expiration"),
        ("options", OPTION_QUOTE | {EXTENSION: {"sequence": None}}, "bad_extension", "sequence"),
        ("options", OPTION_QUOTE | {EXTENSION: {"underlying": "../../etc"}}, "bad_extension", "underlying"),
        ("options", OPTION_QUOTE | {EXTENSION: {"bid": -1.0}}, "bad_price", "bid"),
        ("stocks", MINUTE_BAR | {"e": MINUTE_BAR["s"] - 1}, "bad_field", "'e'"),
        ("stocks", MINUTE_BAR | {"v": -5}, "bad_size", "volume"),
        ("stocks", MINUTE_BAR | {"s": 0, "e": 60_000}, "not_trading_day", "1969-12-31"),
    ],
)
def test_every_bad_value_is_a_named_reject(feed, event, kind, names):
    decoder = Decoder(["SPY", "MSFT"])
    if kind is None:
        decoder.decode(feed, event)
        return
    with pytest.raises(WireFormatError) as err:
        decoder.decode(feed, event)
    assert err.value.kind == kind and names in err.value.detail


def test_one_sided_quotes_are_kept_and_the_session_bounds_come_from_the_calendar():
    decoder = Decoder(["SPY"])
    row = decoder.decode("options", OPTION_QUOTE | {"bp": 0, "bs": 0}).row  # no bid: a one-sided quote
    assert (row["bid"], row["bid_size"], row["ask"]) == (0.0, 0, 9.81)
    slack = DEFAULT.capture.event_window_slack_seconds * 1000
    day = dt.date(2016, 11, 25)  # the day after Thanksgiving: the close is 13:00, the post-market ends 17:00
    lo, hi = decoder.window(day)
    et = ZoneInfo("America/New_York")
    assert lo == int(dt.datetime(2016, 11, 25, 4, tzinfo=et).timestamp() * 1e9) - slack * 1e6
    assert hi == int(dt.datetime(2016, 11, 25, 17, tzinfo=et).timestamp() * 1e9) + slack * 1e6
    assert decoder.decode("options", OPTION_QUOTE | {"t": hi // 1_000_000}).trade_date == day
    with pytest.raises(WireFormatError, match="outside_session"):
        decoder.decode("options", OPTION_QUOTE | {"t": hi // 1_000_000 + 1})
    assert decoder.window(dt.date(2016, 11, 24)) is None  # Thanksgiving
    with pytest.raises(WireFormatError, match="outside_session"):
        Decoder(["MSFT"]).decode("stocks", STOCK_QUOTE)  # the docs' sample quote, at 00:53 ET
    # a tool that decodes off-session data on purpose can say so
    assert Decoder(["MSFT"], check_sessions=False).decode("stocks", STOCK_QUOTE).trade_date == dt.date(2018, 9, 4)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("[" * 200_000 + "]" * 200_000, "too_deep"),  # RecursionError in the JSON parser before
        ("[" * 17 + "]" * 17, "too_deep"),  # parses, but deeper than max_frame_depth
        ('[{"ev": "Q", "m17": {"conditions": [[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]}}]', "too_deep"),
        ("[" + "7" * 5_000 + "]", "invalid_json"),  # an integer of over 4,300 digits: a ValueError before
        (b'[{"ev": "\xff"}]', "invalid_json"),
        (" " * (DEFAULT.capture.max_frame_chars + 1), "too_large"),
    ],
)
def test_frames_too_deep_too_large_or_unreadable_are_rejected(text, kind):
    with pytest.raises(WireFormatError) as err:
        parse_frame(text)
    assert err.value.kind == kind
    assert len(parse_frame("[" * 16 + "]" * 16)) == 1  # exactly at the limit: parsed
