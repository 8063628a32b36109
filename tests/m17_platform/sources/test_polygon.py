"""Polygon / Massive REST source against a local HTTP server replaying recorded responses.

The official client (``massive.RESTClient``) talks to a ``ThreadingHTTPServer`` on
127.0.0.1 over a real socket (base URL override). Recorded responses live in
``polygon_mocks/`` (see its PROVENANCE.md); responses the recordings lack are written
inline below and marked synthetic.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from m17_platform import calendar, schemas
from m17_platform.errors import CalendarError, SourceFormatError
from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT, Settings
from m17_platform.sources.polygon import (
    ConditionTable,
    PolygonAuthError,
    PolygonRequestError,
    PolygonRestSource,
    PolygonRetryError,
    day_bounds_ns,
    flag_trades,
)

MOCKS = Path(__file__).parent / "polygon_mocks"
KEY = "test-key-3f9c1a7e"  # the stand-in accepts only this key (POLYGON_TEST_KEY in tests/conftest.py)


def recorded(name: str) -> dict:
    return json.loads((MOCKS / name).read_text())


@pytest.fixture
def server(polygon_server):
    """The loopback Polygon stand-in (tests/conftest.py) serving this folder's recordings."""
    return polygon_server


def settings(**polygon) -> Settings:
    base = dict(backoff_seconds=0.25, max_retries=3, max_days_to_expiry=30, strike_window=0.10)
    base.update(polygon)
    return replace(DEFAULT, polygon=replace(DEFAULT.polygon, **base))


def source(mock, cfg: Settings | None = None, sleeps: list[float] | None = None, **kw) -> PolygonRestSource:
    sleeps = [] if sleeps is None else sleeps
    return PolygonRestSource(cfg or settings(), api_key=kw.pop("api_key", KEY), base_url=mock.url,
                             sleep=sleeps.append, **kw)


def collect(chunks) -> tuple[pl.DataFrame, dict[str, int], list[int]]:
    chunks = list(chunks)
    stats: dict[str, int] = {}
    for c in chunks:
        for k, v in c.stats.items():
            stats[k] = stats.get(k, 0) + v
    return pl.concat([c.frame for c in chunks]), stats, [c.frame.height for c in chunks]


def daily_bar(open_price: float, day: dt.date) -> dict:
    """Synthetic ``/v2/aggs`` response: one daily bar (the recordings have none for our dates)."""
    t = int(dt.datetime.combine(day, dt.time(4), tzinfo=dt.timezone.utc).timestamp() * 1000)
    return {"ticker": "X", "status": "OK", "resultsCount": 1, "request_id": "r",
            "results": [{"o": open_price, "h": open_price + 1, "l": open_price - 1, "c": open_price, "v": 1000.0,
                         "vw": open_price, "t": t, "n": 10}]}


# --- stocks: quotes (paging), trades (conditions, correction) ----------------------------------------


def test_stock_quotes_follow_next_url_and_convert_round_lots(server):
    ref = PartitionRef(dt.date(2022, 5, 10), "AAPL")
    cfg = replace(settings(), ingest=replace(DEFAULT.ingest, chunk_rows=7))
    frame, stats, sizes = collect(source(server, cfg).chunks("stock_quotes", ref))

    page1 = recorded("v3/quotes/AAPL.json")["results"]
    page2_name = next(p.name for p in (MOCKS / "v3/quotes").iterdir() if "cursor" in p.name)
    page2 = recorded(f"v3/quotes/{page2_name}")["results"]
    assert sizes == [7, 7, 6] and frame.height == len(page1) + len(page2) == 20
    assert stats["rows"] == 20 and stats["http_requests"] == 2 and stats["http_retries"] == 0
    # first page: the day window, page size and order; second page: only the cursor from next_url
    first, second = server.hits("/v3/quotes/AAPL")
    start, end = day_bounds_ns(ref.trade_date, "America/New_York")
    assert first.query == {"timestamp.gte": str(start), "timestamp.lt": str(end), "limit": "50000",
                           "sort": "timestamp", "order": "asc"}
    assert second.query == {"cursor": page2_name.split("cursor=")[1].removesuffix(".json")}
    # values: ns SIP timestamps, prices in dollars, sizes from round lots (before 2025-11-03) to shares
    assert stats["quote_sizes_converted_from_round_lots"] == 20
    for row, raw in zip(frame.iter_rows(named=True), page1 + page2):
        assert row["ts_ns"] == raw["sip_timestamp"] and row["sequence"] == raw["sequence_number"]
        assert row["bid"] == raw["bid_price"] and row["ask"] == raw["ask_price"]
        assert row["bid_size"] == raw["bid_size"] * 100 and row["ask_size"] == raw["ask_size"] * 100
        assert row["bid_exchange"] == str(raw["bid_exchange"]) and row["ask_exchange"] == str(raw["ask_exchange"])
    assert frame.row(0, named=True)["ts_ns"] == 1652191872800638700
    assert set(frame["symbol"]) == {"AAPL"} and set(frame["source"]) == {"polygon.rest.v3_quotes"}
    assert frame.schema == pl.from_arrow(schemas.STOCK_QUOTES.schema.empty_table()).schema


def test_stock_trades_keep_conditions_and_count_corrections(server):
    server.routes["/v3/trades/AAPL"] = "v3/trades/AAPL&limit=2.json"
    ref = PartitionRef(dt.date(2022, 4, 28), "AAPL")
    frame, stats, _ = collect(source(server).chunks("stock_trades", ref))

    raw = recorded("v3/trades/AAPL&limit=2.json")["results"]
    assert frame["price"].to_list() == [156.43, 157.43]
    assert frame["size"].to_list() == [10, 10]
    assert frame["ts_ns"].to_list() == [1651181822461979400, 1651181822461979400]
    assert frame["sequence"].to_list() == [7179341, 7179341]
    assert frame["exchange"].to_list() == ["11", "12"]
    assert frame["trade_id"].to_list() == ["183276", "183276"]
    assert frame["conditions"].to_list() == [["12", "37"], ["12", "37"]]
    assert frame["canceled"].to_list() == [False, False]
    assert frame["aggressor_side"].null_count() == 2 and set(frame["source"]) == {"polygon.rest.v3_trades"}
    # correction 1 = original later corrected: kept, counted, out of volume; codes 12 and 37 are not
    # in the recorded 10-code stock table, so they are counted as unknown
    assert [r["correction"] for r in raw] == [1, 1]
    assert stats["corrected"] == 2 and stats["excluded_from_volume"] == 2
    assert stats["unknown_condition_codes"] == 2 and stats["canceled"] == 0 and stats["late"] == 0
    cond = server.hits("/v3/reference/conditions")[0].query
    assert cond == {"asset_class": "stocks", "data_type": "trade", "limit": "1000"}


def test_trade_missing_a_required_field_names_the_url_and_field(server):
    server.bodies["/v3/trades/AAPL"] = {"status": "OK", "results": [
        {"price": 1.0, "size": 1, "sip_timestamp": 1651181822461979400, "sequence_number": 1},
        {"price": 1.0, "size": 1, "sequence_number": 2},
    ]}
    with pytest.raises(SourceFormatError) as err:
        collect(source(server).chunks("stock_trades", PartitionRef(dt.date(2022, 4, 28), "AAPL")))
    assert err.value.field == "sip_timestamp" and "/v3/trades/AAPL?" in err.value.path
    assert "result #1" in str(err.value)


# --- options: contracts reference (two pages), trades with cancel / late codes, quotes ----------------

# Synthetic options condition table in the REST shape: the names are Polygon's documented
# options conditions; the update rules are chosen for the test.
OPTION_CONDITIONS = {"status": "OK", "request_id": "r", "results": [
    {"id": cid, "name": name, "type": "sale_condition", "asset_class": "options", "data_types": ["trade"],
     "update_rules": {"consolidated": {"updates_high_low": vol, "updates_open_close": vol, "updates_volume": vol}}}
    for cid, name, vol in ((201, "Canceled", False), (204, "Late", True), (209, "Automatic Execution", True),
                           (219, "Intermarket Sweep Order", True))
]}
T0 = 1651152600_000_000_000  # 2022-04-28 09:30 ET


def option_partition(server) -> PartitionRef:
    ref = PartitionRef(dt.date(2022, 4, 28), "A")
    server.bodies["/v2/aggs/ticker/A/range/1/day/2022-04-28/2022-04-28"] = daily_bar(125.0, ref.trade_date)
    server.bodies["/v3/reference/conditions"] = OPTION_CONDITIONS
    return ref


def test_option_contracts_page_through_the_reference_within_the_window(server):
    ref = option_partition(server)
    frame, stats, _ = collect(source(server).chunks("option_contracts", ref))

    hits = server.hits("/v3/reference/options/contracts")
    assert len(hits) == 2 and hits[1].query == {"cursor": "YXA9JTdCJTIySUQlMjIlM0ElMjIy"}
    assert hits[0].query == {
        "underlying_ticker": "A", "as_of": "2022-04-28", "expiration_date.gte": "2022-04-28",
        "expiration_date.lte": "2022-05-28", "strike_price.gte": "112.5", "strike_price.lte": "137.5",
        "limit": "1000", "sort": "ticker", "order": "asc",
    }
    assert server.hits("/v2/aggs/ticker/A/range/1/day/2022-04-28/2022-04-28")[0].query["adjusted"] == "false"
    # the server ignored the filters and returned all 20 contracts: 5 are in the +/-10% window of the 125 open
    assert frame["option_symbol"].to_list() == [f"O:A220520C00{k}000" for k in (115, 120, 125, 130, 135)]
    assert stats["contracts"] == 5 and stats["contracts_outside_window"] == 15
    assert frame["strike"].to_list() == [115.0, 120.0, 125.0, 130.0, 135.0]
    assert set(frame["root"]) == {"A"} and set(frame["right"]) == {"C"} and set(frame["underlying"]) == {"A"}
    assert set(frame["expiration"]) == {dt.date(2022, 5, 20)} and set(frame["multiplier"]) == {100}
    assert set(frame["exercise_style"]) == {"A"}
    expiry = calendar.expiry_instant_ns(dt.date(2022, 5, 20))
    assert set(frame["expiry_ts_ns"]) == {expiry} == {1653076800_000_000_000}  # 16:00 EDT
    assert set(frame["source"]) == {"polygon.rest.v3_reference_options_contracts"}


def test_option_trades_flag_canceled_corrected_and_late_from_the_code_table(server):
    ref = option_partition(server)
    symbols = [f"O:A220520C00{k}000" for k in (115, 120, 125, 130, 135)]
    for s in symbols:
        server.bodies[f"/v3/trades/{s}"] = {"status": "OK", "results": []}
    # synthetic trades of one contract: (conditions, correction)
    cases = [([209], 0), ([201], 0), ([204], 0), ([209], 8), ([209], 1), ([209, 999], 0), (None, None)]
    results = []
    for i, (codes, corr) in enumerate(cases):
        t = {"exchange": 302 + i, "price": 2.5 + i / 100, "size": i + 1, "sip_timestamp": T0 + i * 1_000_000,
             "participant_timestamp": T0 + i * 1_000_000 - 500}
        if codes is not None:
            t["conditions"] = codes
        if corr is not None:
            t["correction"] = corr
        results.append(t)
    server.bodies[f"/v3/trades/{symbols[1]}"] = {"status": "OK", "results": results}

    src = source(server)
    frame, stats, _ = collect(src.chunks("option_trades", ref))
    assert frame.height == 7 and set(frame["option_symbol"]) == {symbols[1]}
    assert frame["canceled"].to_list() == [False, True, False, True, False, False, False]
    assert frame["sequence"].to_list() == list(range(7))
    assert frame["price"].to_list() == [2.5 + i / 100 for i in range(7)]
    assert frame["size"].to_list() == list(range(1, 8))
    assert frame["ts_ns"].to_list() == [T0 + i * 1_000_000 for i in range(7)]
    assert frame["conditions"].to_list() == [["209"], ["201"], ["204"], ["209"], ["209"], ["209", "999"], None]
    row = frame.row(0, named=True)
    assert (row["root"], row["expiration"], row["strike"], row["right"], row["underlying"]) == (
        "A", dt.date(2022, 5, 20), 120.0, "C", "A")
    assert stats["canceled"] == 2 and stats["late"] == 1 and stats["corrected"] == 1
    assert stats["excluded_from_volume"] == 3 and stats["unknown_condition_codes"] == 1
    assert stats["unknown_correction_codes"] == 0 and stats["contracts"] == 5
    # a bounded day: one bar, one conditions table, two contract pages, one trades request per contract
    assert len(server.requests) == 1 + 1 + 2 + 5 == stats["http_requests"]
    # the contract selection is cached for the partition's other tables
    for s in symbols:
        server.bodies[f"/v3/quotes/{s}"] = {"status": "OK", "results": []}
    server.bodies[f"/v3/quotes/{symbols[0]}"] = {"status": "OK", "results": [
        {"ask_exchange": 302, "ask_price": 3.1, "ask_size": 12, "bid_exchange": 301, "bid_price": 3.0,
         "bid_size": 7, "sequence_number": 991, "sip_timestamp": T0}]}
    quotes, qstats, _ = collect(src.chunks("option_quotes", ref))
    assert quotes.rows() == [(T0, 991, symbols[0], "A", "A", dt.date(2022, 5, 20), 115.0, "C",
                              3.0, 7, 3.1, 12, "301", "302", "polygon.rest.v3_quotes")]
    assert qstats["http_requests"] == 5


def test_vendor_greeks_from_the_chain_snapshot(server):
    ref = PartitionRef(dt.date(2022, 4, 29), "AAPL")
    server.bodies["/v2/aggs/ticker/AAPL/range/1/day/2022-04-29/2022-04-29"] = daily_bar(160.0, ref.trade_date)
    frame, stats, _ = collect(source(server).chunks("option_vendor_greeks", ref))

    snap = recorded("v3/snapshot/options/AAPL.json")["results"][0]
    assert frame.height == 1
    row = frame.row(0, named=True)
    assert row["option_symbol"] == "O:AAPL230616C00150000" and row["underlying"] == "AAPL"
    assert (row["root"], row["expiration"], row["strike"], row["right"]) == ("AAPL", dt.date(2023, 6, 16), 150.0, "C")
    assert row["ts_ns"] == snap["last_quote"]["last_updated"] == 1651254260800059648
    for g in ("delta", "gamma", "theta", "vega"):
        assert row[g] == snap["greeks"][g]
    assert row["implied_volatility"] == snap["implied_volatility"] == 0.3570277203465058
    assert row["open_interest"] == 8133 and row["underlying_price"] == 159.9606
    assert row["theoretical_value"] == 20.5 and row["rho"] is None
    assert row["source"] == "polygon.rest.v3_snapshot_options"
    query = server.hits("/v3/snapshot/options/AAPL")[0].query
    assert query == {"expiration_date.gte": "2022-04-29", "expiration_date.lte": "2022-05-29",
                     "strike_price.gte": "144.0", "strike_price.lte": "176.0", "limit": "250"}
    assert stats.get("snapshot_rows_other_day", 0) == 0


def test_vendor_greeks_of_another_day_are_counted_not_written(server):
    ref = PartitionRef(dt.date(2022, 5, 2), "AAPL")
    server.bodies["/v2/aggs/ticker/AAPL/range/1/day/2022-05-02/2022-05-02"] = daily_bar(160.0, ref.trade_date)
    frame, stats, _ = collect(source(server).chunks("option_vendor_greeks", ref))
    assert frame.height == 0 and stats["snapshot_rows_other_day"] == 1


# --- reference data -------------------------------------------------------------------------------


def test_aggregates_conditions_and_exchanges(server):
    src = source(server)
    bars = src.aggregates("AAPL", 1, "day", "2005-04-01", "2005-04-04")
    raw = recorded("v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04.json")["results"]
    assert bars["ts_ns"].to_list() == [r["t"] * 1_000_000 for r in raw] == [1112331600_000_000_000, 1112587200_000_000_000]
    assert bars["open"].to_list() == [1.5032, 1.4639] and bars["close"].to_list() == [1.4604, 1.4675]
    assert bars["volume"].to_list() == [642646396.0, 578172308.0] and bars["transactions"].to_list() == [82132, 65543]

    table = src.conditions("stocks")
    assert sorted(table.codes) == list(range(1, 11))
    assert table.codes[2].name == "Average Price Trade" and table.codes[2].updates_volume is True
    assert table.canceled_ids == frozenset() and table.no_volume_ids == frozenset()
    src.conditions("stocks")
    assert len(server.hits("/v3/reference/conditions")) == 1  # cached

    exchanges = src.exchanges()
    raw_ex = recorded("v3/reference/exchanges.json")["results"]
    assert exchanges.height == len(raw_ex) == 24
    nyse = exchanges.filter(pl.col("id") == 10).row(0, named=True)
    assert (nyse["mic"], nyse["name"], nyse["participant_id"]) == ("XNYS", "New York Stock Exchange", "N")
    assert exchanges.filter(pl.col("id") == 4).height == 4  # the FINRA TRFs share id 4


def test_bundled_condition_table_flags_opra_cancel_and_late_codes():
    table = ConditionTable.bundled()
    assert {201, 203, 205, 207} <= table.canceled_ids and 209 not in table.canceled_ids
    assert {202, 204, 206, 208, 30, 32, 13} <= table.late_ids
    frame = pl.DataFrame({"condition_codes": [[209], [203], [37], [12, 13]], "correction": [0, 0, 12, 0]},
                         schema={"condition_codes": pl.List(pl.Int64), "correction": pl.Int64})
    flagged, stats = flag_trades(frame, table)
    assert flagged["canceled"].to_list() == [False, True, False, False]
    assert stats["canceled"] == 1 and stats["late"] == 1 and stats["correction_records"] == 1
    assert stats["unknown_condition_codes"] == 0


# --- retries and errors -----------------------------------------------------------------------------


def test_429_is_retried_with_exponential_backoff(server):
    server.routes["/v3/trades/AAPL"] = "v3/trades/AAPL&limit=2.json"
    limited = b'{"status":"ERROR","request_id":"r","error":"You\'ve exceeded the maximum requests per minute"}'
    server.scripted["/v3/trades/AAPL"] = [(429, limited, {}), (429, limited, {}), (502, b"bad gateway", {})]
    sleeps: list[float] = []
    frame, stats, _ = collect(source(server, sleeps=sleeps).chunks("stock_trades", PartitionRef(dt.date(2022, 4, 28), "AAPL")))
    assert len(server.hits("/v3/trades/AAPL")) == 4
    assert sleeps == [0.25, 0.5, 1.0] and stats["http_retries"] == 3
    assert frame["price"].to_list() == [156.43, 157.43] and frame["size"].to_list() == [10, 10]


def test_retry_after_header_wins_when_longer(server):
    server.routes["/v3/trades/AAPL"] = "v3/trades/AAPL&limit=2.json"
    server.scripted["/v3/trades/AAPL"] = [(429, b"{}", {"Retry-After": "3"})]
    sleeps: list[float] = []
    frame, _, _ = collect(source(server, sleeps=sleeps).chunks("stock_trades", PartitionRef(dt.date(2022, 4, 28), "AAPL")))
    assert sleeps == [3.0] and frame.height == 2


def test_retries_exhausted_fail_clearly(server):
    server.scripted["/v3/trades/AAPL"] = [(503, b'{"status":"ERROR","error":"maintenance"}', {})] * 4
    sleeps: list[float] = []
    with pytest.raises(PolygonRetryError) as err:
        collect(source(server, sleeps=sleeps).chunks("stock_trades", PartitionRef(dt.date(2022, 4, 28), "AAPL")))
    msg = str(err.value)
    assert "/v3/trades/AAPL" in msg and "HTTP 503" in msg and "4 attempts" in msg and "maintenance" in msg
    assert sleeps == [0.25, 0.5, 1.0] and len(server.hits("/v3/trades/AAPL")) == 4


def test_a_refused_connection_is_retried_then_fails_clearly():
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps: list[float] = []
    src = PolygonRestSource(settings(max_retries=2), api_key=KEY, base_url=f"http://127.0.0.1:{port}",
                            sleep=sleeps.append)
    with pytest.raises(PolygonRetryError, match=rf"GET http://127.0.0.1:{port}/v2/aggs/ticker/SPY/.*3 attempts"):
        src.aggregates("SPY", 1, "day", "2024-03-07", "2024-03-07")
    assert sleeps == [0.25, 0.5] and src.http_stats == {"http_requests": 3, "http_retries": 2}


def test_401_names_the_endpoint_and_never_the_key(server):
    secret = "wrong-secret-key-0042"
    src = source(server, api_key=secret)
    with pytest.raises(PolygonAuthError) as err:
        collect(src.chunks("stock_trades", PartitionRef(dt.date(2022, 4, 28), "AAPL")))
    msg = str(err.value)
    assert "401" in msg and "/v3/reference/conditions" in msg and "POLYGON_API_KEY" in msg and "invalid" in msg
    assert secret not in msg and secret not in repr(src) and KEY not in msg
    assert server.requests[0].authorization == f"Bearer {secret}"  # the key travels in the header only
    assert all("apiKey" not in r.query for r in server.requests)


def test_403_says_the_plan_lacks_access(server):
    server.scripted["/v3/quotes/AAPL"] = [(403, json.dumps({
        "status": "NOT_AUTHORIZED", "request_id": "r",
        "message": "You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"}).encode(), {})]
    with pytest.raises(PolygonAuthError) as err:
        collect(source(server).chunks("stock_quotes", PartitionRef(dt.date(2022, 5, 10), "AAPL")))
    msg = str(err.value)
    assert "403" in msg and "GET " in msg and "/v3/quotes/AAPL" in msg and "plan" in msg and KEY not in msg


def test_404_is_a_request_error(server):
    with pytest.raises(PolygonRequestError, match=r"/v3/trades/MSFT: HTTP 404"):
        collect(source(server).chunks("stock_trades", PartitionRef(dt.date(2022, 4, 28), "MSFT")))


def test_malformed_json_names_the_url(server):
    server.scripted["/v3/trades/AAPL"] = [(200, b'{"results": [{"price": 156.43,\n "size": ', {})]
    with pytest.raises(SourceFormatError) as err:
        collect(source(server).chunks("stock_trades", PartitionRef(dt.date(2022, 4, 28), "AAPL")))
    assert err.value.path.startswith(f"{server.url}/v3/trades/AAPL?") and "timestamp.gte=" in err.value.path
    assert err.value.line == 2 and "malformed JSON" in str(err.value)


def test_from_env_reads_key_and_base_url(server):
    server.routes["/v3/trades/AAPL"] = "v3/trades/AAPL&limit=2.json"
    src = PolygonRestSource.from_env(settings(), environ={"POLYGON_API_KEY": KEY, "M17_REST_BASE_URL": server.url})
    assert src.base_url == server.url and src.tables() == (
        "option_trades", "option_quotes", "stock_trades", "stock_quotes", "option_contracts", "option_vendor_greeks")
    frame, _, _ = collect(src.chunks("stock_trades", PartitionRef(dt.date(2022, 4, 28), "AAPL")))
    assert frame.height == 2
    with pytest.raises(PolygonAuthError, match="POLYGON_API_KEY"):
        PolygonRestSource.from_env(settings(), environ={})


def test_unknown_table_and_non_session_day_are_refused(server):
    src = source(server)
    with pytest.raises(ValueError, match="futures_trades"):
        list(src.chunks("futures_trades", PartitionRef(dt.date(2022, 4, 28), "AAPL")))
    with pytest.raises(CalendarError, match="2022-04-30"):
        list(src.chunks("stock_trades", PartitionRef(dt.date(2022, 4, 30), "AAPL")))
    assert server.requests == []
