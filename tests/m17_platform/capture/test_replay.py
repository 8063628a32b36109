"""The replay server and recorder against real websocket clients on 127.0.0.1."""

import asyncio
import datetime as dt
import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

import massive
import polars as pl
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from m17_platform import schemas
from m17_platform.capture.replay import (
    RECORDING_META,
    Item,
    ReplayData,
    ReplayServer,
    is_recording,
)
from m17_platform.capture.recording import RecordError, record
from m17_platform.errors import SourceFormatError
from m17_platform.lake import Lake, PartitionRef
from m17_platform.sources.polygon_ws import FEEDS, Decoder, frame_of
from m17_platform.symbols import parse_occ_symbol

REF = PartitionRef(dt.date(2025, 11, 10), "SPY")
T0 = 1_762_785_000_000_000_000  # 2025-11-10 14:30 UTC (09:30 ET)
CALL, PUT = "O:SPY251110C00685000", "O:SPY251110P00680000"
KEY = "replay-test-key-9d2f"
CONNECTED = [{"ev": "status", "status": "connected", "message": "Connected Successfully"}]


# --- a small lake partition: 1 s of SPY and two contracts, sub-ms times, ties across tables


def _identity(symbol: str) -> dict:
    oid = parse_occ_symbol(symbol)
    return {"option_symbol": symbol, "underlying": "SPY", "root": oid.root, "expiration": oid.expiration,
            "strike": oid.strike, "right": oid.right}


def _tables() -> dict[str, pl.DataFrame]:
    option_trades, option_quotes, stock_trades, stock_quotes = [], [], [], []
    for k in range(10):
        ts = T0 + k * 100_000_000 + 123_457  # every 0.1 s, sub-millisecond part
        symbol = CALL if k % 2 else PUT
        option_quotes.append(_identity(symbol) | {
            "ts_ns": ts, "sequence": k, "bid": 1.0 + k / 100, "bid_size": 10 + k, "ask": 1.05 + k / 100,
            "ask_size": 20, "bid_exchange": "301", "ask_exchange": "XCBO", "source": "test"})
        if k % 3 == 0:  # same time as the quote: the trade goes first
            option_trades.append(_identity(symbol) | {
                "ts_ns": ts, "sequence": k, "price": 1.02 + k / 100, "size": 1 + k, "exchange": "312",
                "conditions": ["209"] if k else None, "trade_id": None, "canceled": False, "source": "test"})
        stock_quotes.append({
            "ts_ns": ts + 7, "sequence": 1000 + k, "symbol": "SPY", "underlying": "SPY", "bid": 684.0 + k / 100,
            "bid_size": 300 + k, "ask": 684.02 + k / 100, "ask_size": 250, "bid_exchange": "11", "ask_exchange": "12",
            "source": "test"})
        if k % 4 == 1:
            stock_trades.append({
                "ts_ns": ts + 7, "sequence": 2000 + k, "symbol": "SPY", "underlying": "SPY", "price": 684.01 + k / 100,
                "size": 100 + k, "exchange": "4", "conditions": ["12", "37"], "trade_id": f"T{k}", "canceled": False,
                "aggressor_side": None, "source": "test"})
    # the last quote of the call a second before the others: times are not the lake's order
    option_quotes.append(_identity(CALL) | {
        "ts_ns": T0 - 1_000_000_000, "sequence": 99, "bid": 0.9, "bid_size": 5, "ask": 1.1, "ask_size": 5,
        "bid_exchange": None, "ask_exchange": None, "source": "test"})
    return {"option_trades": frame_of("option_trades", option_trades),
            "option_quotes": frame_of("option_quotes", option_quotes),
            "stock_trades": frame_of("stock_trades", stock_trades),
            "stock_quotes": frame_of("stock_quotes", stock_quotes)}


@pytest.fixture
def spy_lake(lake: Lake) -> Lake:
    for name, frame in _tables().items():
        lake.write(schemas.table(name), REF, frame, source="test")
    return lake


def _lake_rows(lake: Lake, ref: PartitionRef = REF) -> dict[str, list[dict]]:
    """Rows per raw table in lake order, without ``source``."""
    return {name: lake.read(schemas.table(name), ref).drop("source").to_dicts()
            for name in ("option_trades", "option_quotes", "stock_trades", "stock_quotes")
            if lake.exists(schemas.table(name), ref)}


def _decoded_rows(received: dict[str, list[dict]], decoder: Decoder) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for feed, events in received.items():
        for ev in events:
            decoded = decoder.decode(feed, ev)
            out[decoded.table].append({k: v for k, v in decoded.row.items() if k != "source"})
    return dict(out)


def _by_instrument(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        out[row.get("option_symbol") or row["symbol"]].append(row)
    return dict(out)


# --- client helpers


def _url(server: ReplayServer, feed: str) -> str:
    return f"ws://127.0.0.1:{server.port}/{feed}"


async def _open(server: ReplayServer, feed: str, channels: list[str] | None = None, key: str = KEY):
    ws = await connect(_url(server, feed), max_size=None)
    assert json.loads(await ws.recv()) == CONNECTED
    await ws.send(json.dumps({"action": "auth", "params": key}))
    assert json.loads(await ws.recv()) == [{"ev": "status", "status": "auth_success", "message": "authenticated"}]
    if channels:
        await ws.send(json.dumps({"action": "subscribe", "params": ",".join(channels)}))
        for name in channels:
            assert json.loads(await ws.recv()) == [
                {"ev": "status", "status": "success", "message": f"subscribed to: {name}"}]
    return ws


async def _read_events(ws, count: int, timeout: float = 5.0) -> list[list[dict]]:
    """Data frames until ``count`` events arrived (status events left out)."""
    frames, seen = [], 0
    async with asyncio.timeout(timeout):
        while seen < count:
            frame = [ev for ev in json.loads(await ws.recv()) if ev["ev"] != "status"]
            if frame:
                frames.append(frame)
                seen += len(frame)
    assert seen == count
    return frames


async def _read_until(ws, text: str, timeout: float = 5.0) -> list[str]:
    """Every message up to and including the raw frame ``text``."""
    out = []
    async with asyncio.timeout(timeout):
        while not out or out[-1] != text:
            out.append(await ws.recv())
    return out


def _flat(frames: list[list[dict]]) -> list[dict]:
    return [ev for frame in frames for ev in frame]


# --- the protocol


def test_handshake_statuses_and_errors(spy_lake: Lake):
    async def main(server):
        ws = await connect(_url(server, "stocks"))
        assert json.loads(await ws.recv()) == CONNECTED
        await ws.send(json.dumps({"action": "subscribe", "params": "T.SPY"}))
        assert json.loads(await ws.recv()) == [{"ev": "status", "status": "error", "message": "not authorized"}]
        await ws.send(json.dumps({"action": "auth", "params": "any-key"}))
        assert json.loads(await ws.recv())[0]["status"] == "auth_success"
        await ws.send("{not json")
        assert json.loads(await ws.recv()) == [{"ev": "status", "status": "error", "message": "invalid message"}]
        await ws.send(json.dumps({"action": "dance"}))
        assert json.loads(await ws.recv())[0]["message"] == "unknown action: dance"
        await ws.send(json.dumps({"action": "subscribe", "params": "T.XYZ, nonsense"}))  # XYZ has no data
        assert json.loads(await ws.recv())[0] == {"ev": "status", "status": "success",
                                                  "message": "subscribed to: T.XYZ"}
        assert json.loads(await ws.recv())[0] == {"ev": "status", "status": "error",
                                                  "message": "invalid channel: nonsense"}
        await ws.send(json.dumps({"action": "unsubscribe", "params": "T.XYZ"}))
        assert json.loads(await ws.recv())[0] == {"ev": "status", "status": "success",
                                                  "message": "unsubscribed to: T.XYZ"}
        await ws.close()

    with ReplayServer(ReplayData.from_lake(spy_lake, REF), port=0, speed=0) as server:
        asyncio.run(main(server))
        assert server.stats["connections"] == {"stocks": 1, "options": 0}


def test_unknown_path_is_refused(spy_lake: Lake):
    async def main(server):
        with pytest.raises(InvalidStatus) as err:
            await connect(f"ws://127.0.0.1:{server.port}/crypto")
        assert err.value.response.status_code == 404

    with ReplayServer(ReplayData.from_lake(spy_lake, REF), port=0) as server:
        asyncio.run(main(server))


def test_auth_failed_closes_and_never_counts_as_connected(spy_lake: Lake):
    async def main(server):
        ws = await connect(_url(server, "options"))
        assert json.loads(await ws.recv()) == CONNECTED
        await ws.send(json.dumps({"action": "auth", "params": "wrong"}))
        assert json.loads(await ws.recv()) == [
            {"ev": "status", "status": "auth_failed", "message": "authentication failed"}]
        with pytest.raises(ConnectionClosed) as err:
            await ws.recv()
        assert err.value.rcvd.code == 1008
        ok = await _open(server, "options", key="secret")  # the right key works
        await ok.close()

    with ReplayServer(ReplayData.from_lake(spy_lake, REF), port=0, api_key="secret") as server:
        asyncio.run(main(server))
        assert server.stats["auth_failures"] == 1


# --- serving lake data


def test_from_lake_merges_feeds_by_exact_time_stably(spy_lake: Lake):
    data = ReplayData.from_lake(spy_lake, REF)
    tables = _tables()
    assert data.events == {"stocks": tables["stock_trades"].height + tables["stock_quotes"].height,
                           "options": tables["option_trades"].height + tables["option_quotes"].height}
    assert data.symbols("options") == {CALL, PUT} and data.symbols("stocks") == {"SPY"}
    assert data.first_time_ns == T0 - 1_000_000_000
    for feed in FEEDS:
        times = [item.time_ns for item in data.items[feed]]
        assert times == sorted(times)
        assert all(len(item.payload) == 1 for item in data.items[feed])
    # exact ns times (the wire's t is ms); the trade before the quote at the same time
    first = data.items["options"][1:3]
    assert [i.time_ns for i in first] == [T0 + 123_457] * 2
    assert [i.payload[0]["ev"] for i in first] == ["T", "Q"]
    assert first[0].payload[0]["t"] == (T0 + 123_457) // 1_000_000
    empty = ReplayData.from_lake(spy_lake, PartitionRef(dt.date(2025, 11, 11), "SPY"))
    assert empty.events == {"stocks": 0, "options": 0} and empty.first_time_ns is None


def test_served_events_decode_to_the_lake_rows_in_order(spy_lake: Lake):
    data = ReplayData.from_lake(spy_lake, REF)

    async def main(server):
        links = {feed: await _open(server, feed, ["T.*", "Q.*"]) for feed in FEEDS}
        frames = {feed: await _read_events(ws, data.events[feed]) for feed, ws in links.items()}
        for ws in links.values():
            await ws.close()
        return frames

    with ReplayServer(data, port=0, speed=0, max_frame_events=3) as server:
        frames = asyncio.run(main(server))
        assert server.finished.wait(5)
        assert server.stats["events_sent"] == data.events
    assert all(1 <= len(frame) <= 3 for feed in FEEDS for frame in frames[feed])
    received = {feed: _flat(frames[feed]) for feed in FEEDS}
    # each feed's events in the data's order (time order, stable)
    for feed in FEEDS:
        assert received[feed] == [item.payload[0] for item in data.items[feed]]
    decoded = _decoded_rows(received, Decoder(["SPY"]))
    expected = _lake_rows(spy_lake)
    assert decoded.keys() == expected.keys()
    for table, rows in expected.items():
        assert _by_instrument(decoded[table]) == _by_instrument(rows), table


def test_subscriptions_are_honoured_per_connection(spy_lake: Lake):
    data = ReplayData({"options": ReplayData.from_lake(spy_lake, REF).items["options"]})
    call_trades = [r for r in _lake_rows(spy_lake)["option_trades"] if r["option_symbol"] == CALL]
    quotes = _lake_rows(spy_lake)["option_quotes"]

    async def main(server, channels, count):
        ws = await _open(server, "options", channels)
        events = _flat(await _read_events(ws, count))
        marker = "end-of-test"
        assert await asyncio.to_thread(server.finished.wait, 5)
        await asyncio.wrap_future(server.inject("options", marker))
        assert await _read_until(ws, marker) == [marker]  # nothing else arrived
        await ws.close()
        return events

    with ReplayServer(data, port=0, speed=0) as server:
        events = asyncio.run(main(server, [f"T.{CALL}"], len(call_trades)))
    assert [(e["ev"], e["sym"]) for e in events] == [("T", CALL)] * len(call_trades)
    assert [e["q"] for e in events] == [r["sequence"] for r in call_trades]
    with ReplayServer(data, port=0, speed=0) as server:
        events = asyncio.run(main(server, ["Q.*"], len(quotes)))
    assert {e["ev"] for e in events} == {"Q"} and {e["sym"] for e in events} == {CALL, PUT}
    for symbol in (CALL, PUT):  # per instrument, the lake's order
        assert [e["q"] for e in events if e["sym"] == symbol] == [
            r["sequence"] for r in quotes if r["option_symbol"] == symbol]


def test_unsubscribe_stops_the_channel():
    # 60 events, 0.1 s of event time apart, at speed 20: 5 ms wall each
    items = [Item(T0 + k * 100_000_000, [{"ev": "T", "sym": "SPY", "p": 1.0, "s": k, "t": 0}]) for k in range(60)]

    async def main(server):
        ws = await _open(server, "stocks", ["T.SPY"])
        first = _flat(await _read_events(ws, 3))
        await ws.send(json.dumps({"action": "unsubscribe", "params": "T.SPY"}))
        before = []
        async with asyncio.timeout(5):
            while (frame := json.loads(await ws.recv()))[0]["ev"] != "status":
                before.extend(frame)
        assert frame == [{"ev": "status", "status": "success", "message": "unsubscribed to: T.SPY"}]
        assert await asyncio.to_thread(server.finished.wait, 5)
        await asyncio.wrap_future(server.inject("stocks", "marker"))
        assert await _read_until(ws, "marker") == ["marker"]
        await ws.close()
        return first + before

    with ReplayServer(ReplayData({"stocks": items}), port=0, speed=20) as server:
        got = asyncio.run(main(server))
    assert 3 <= len(got) < 60
    assert [e["s"] for e in got] == list(range(len(got)))


def test_speed_paces_the_timeline(spy_lake: Lake):
    data = ReplayData.from_lake(spy_lake, REF)  # 1.9 s of event time on the options feed

    async def main(server):
        ws = await _open(server, "options", ["T.*", "Q.*"])
        start = time.monotonic()
        await _read_events(ws, data.events["options"])
        elapsed = time.monotonic() - start
        await ws.close()
        return elapsed

    with ReplayServer(data, port=0, speed=10) as server:
        elapsed = asyncio.run(main(server))
    span_s = (data.items["options"][-1].time_ns - data.first_time_ns) / 1e9
    assert span_s > 1.8
    assert elapsed >= span_s / 10 * 0.9


def test_timeline_runs_on_while_nobody_listens():
    items = [Item(T0 + k * 50_000_000, [{"ev": "Q", "sym": "SPY", "t": 0, "q": k}]) for k in range(20)]

    async def main(server):
        ws = await _open(server, "stocks", ["Q.SPY"])
        await _read_events(ws, 1)
        await ws.close()
        assert await asyncio.to_thread(server.finished.wait, 5)
        late = await _open(server, "stocks", ["Q.SPY"])
        await asyncio.wrap_future(server.inject("stocks", "marker"))
        assert await _read_until(late, "marker") == ["marker"]  # everything was sent meanwhile
        await late.close()

    with ReplayServer(ReplayData({"stocks": items}), port=0, speed=10) as server:
        asyncio.run(main(server))
        assert server.finished.is_set()
        assert server.stats["connections"]["stocks"] == 2


def test_raw_items_go_verbatim_to_subscribed_connections():
    items = [Item(T0, [{"ev": "T", "sym": "SPY", "t": 0}]), Item(T0 + 1, "{broken"),
             Item(T0 + 2, [{"ev": "T", "sym": "QQQ", "t": 0}])]

    async def main(server):
        ws = await _open(server, "stocks", ["T.SPY"])
        got = [await ws.recv() for _ in range(2)]
        await ws.close()
        return got

    with ReplayServer(ReplayData({"stocks": items}), port=0, speed=0) as server:
        got = asyncio.run(main(server))
        assert server.finished.wait(5)
    assert got == ['[{"ev":"T","sym":"SPY","t":0}]', "{broken"]


# --- controls


def test_drop_connections_and_inject(spy_lake: Lake):
    async def main(server):
        options = await _open(server, "options", ["T.none"])
        stocks = await _open(server, "stocks", ["T.none"])
        assert await asyncio.wrap_future(server.inject("options", "hello[")) == 1
        assert await options.recv() == "hello["
        assert await asyncio.wrap_future(server.drop_connections("options")) == 1
        with pytest.raises(ConnectionClosedError) as err:
            await options.recv()
        assert err.value.rcvd is None  # abrupt: no close frame
        assert await asyncio.wrap_future(server.inject("stocks", "still here")) == 1
        assert await stocks.recv() == "still here"
        again = await _open(server, "options")
        assert await asyncio.wrap_future(server.drop_connections()) == 2
        for ws in (stocks, again):
            with pytest.raises(ConnectionClosedError):
                await ws.recv()

    with ReplayServer(ReplayData.from_lake(spy_lake, REF), port=0, speed=1) as server:
        asyncio.run(main(server))
        assert server.stats["connections"] == {"stocks": 1, "options": 2}
    with pytest.raises(RuntimeError, match="not running"):
        server.inject("options", "x")
    with pytest.raises(ValueError, match="unknown feed"):
        ReplayServer(ReplayData({})).drop_connections("crypto")


def test_serve_coroutine_runs_until_cancelled(spy_lake: Lake):
    data = ReplayData.from_lake(spy_lake, REF)

    async def main():
        server = ReplayServer(data, port=0, speed=0)
        task = asyncio.create_task(server.serve())
        async with asyncio.timeout(5):
            while not server.serving.is_set():
                await asyncio.sleep(0.01)
        ws = await _open(server, "stocks", ["Q.SPY"])
        await _read_events(ws, _tables()["stock_quotes"].height)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not server.serving.is_set()
        with pytest.raises(ConnectionClosed):
            await ws.recv()

    asyncio.run(main())


# --- recording


def test_record_round_trip_serves_the_same_events(spy_lake: Lake, tmp_path: Path):
    data = ReplayData.from_lake(spy_lake, REF)
    out = tmp_path / "rec"
    channels = {"stocks": ["T.*", "Q.*"], "options": ["T.*", "Q.*"]}

    async def capture(server):
        urls = {feed: _url(server, feed) for feed in FEEDS}
        task = asyncio.create_task(record(urls, KEY, channels, out))
        assert await asyncio.to_thread(server.finished.wait, 5)
        await asyncio.wrap_future(server.inject("options", "garbage{"))
        await asyncio.to_thread(server.stop)  # closing the connections ends the recording
        return await asyncio.wait_for(task, 5)

    with ReplayServer(data, port=0, speed=0, api_key=KEY, max_frame_events=4) as server:
        counts = asyncio.run(capture(server))
    assert is_recording(out)
    meta = json.loads((out / RECORDING_META).read_text())
    assert meta["feeds"] == list(FEEDS) and meta["subscriptions"] == channels and meta["frames"] == counts
    assert dt.datetime.fromisoformat(meta["started"]) <= dt.datetime.fromisoformat(meta["ended"])
    for path in out.iterdir():
        assert KEY not in path.read_text()
    lines = [json.loads(x) for x in (out / "options.jsonl").read_text().splitlines()]
    assert len(lines) == counts["options"]
    assert json.loads(lines[0]["frame"])[0]["ev"] == "status"  # subscription replies are recorded
    assert lines[-1]["frame"] == "garbage{"

    replayed = ReplayData.from_recording(out)
    assert replayed.events == data.events
    assert isinstance(replayed.items["options"][-1].payload, str)

    async def main(server):
        links = {feed: await _open(server, feed, ["T.*", "Q.*"]) for feed in FEEDS}
        received = {feed: _flat(await _read_events(ws, replayed.events[feed])) for feed, ws in links.items()}
        assert await links["options"].recv() == "garbage{"
        for ws in links.values():
            await ws.close()
        return received

    with ReplayServer(replayed, port=0, speed=0) as server:
        received = asyncio.run(main(server))
    for feed in FEEDS:
        assert received[feed] == [item.payload[0] for item in data.items[feed]]
    decoded = _decoded_rows(received, Decoder(["SPY"]))
    for table, rows in _lake_rows(spy_lake).items():
        assert _by_instrument(decoded[table]) == _by_instrument(rows), table


def test_record_refuses_a_bad_key_without_naming_it(tmp_path: Path):
    bad = "my-secret-wrong-key-771"

    async def main(server):
        urls = {feed: _url(server, feed) for feed in FEEDS}
        with pytest.raises(RecordError) as err:
            await record(urls, bad, {"stocks": ["T.SPY"]}, tmp_path / "rec")
        return str(err.value)

    with ReplayServer(ReplayData({}), port=0, api_key=KEY) as server:
        message = asyncio.run(main(server))
    assert "stocks feed" in message and "refused" in message and bad not in message
    assert not (tmp_path / "rec").exists()


def test_record_stops_after_duration_or_on_stop(tmp_path: Path):
    async def main(server):
        urls = {"stocks": _url(server, "stocks")}
        start = time.monotonic()
        counts = await record(urls, KEY, {"stocks": ["T.SPY", "Q.SPY"]}, tmp_path / "a", duration_s=0.2)
        assert time.monotonic() - start >= 0.2
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.1, stop.set)
        await record(urls, KEY, {"stocks": ["T.SPY"]}, tmp_path / "b", stop=stop)
        with pytest.raises(FileExistsError):
            await record(urls, KEY, {}, tmp_path / "b", duration_s=0)
        return counts

    with ReplayServer(ReplayData({}), port=0) as server:
        counts = asyncio.run(main(server))
    assert counts == {"stocks": 2}  # the two subscription replies
    assert json.loads((tmp_path / "b" / RECORDING_META).read_text())["frames"] == {"stocks": 1}


def test_from_recording_keeps_bad_frames_raw_and_drops_statuses(tmp_path: Path):
    frames = [
        '[{"ev":"status","status":"success","message":"subscribed to: T.*"}]',
        '[{"ev":"status","status":"x"},{"ev":"T","sym":"SPY","p":1}]',
        "not json",
        '[{"ev":"T"}]',
        '{"ev":"Q","sym":"SPY"}',
    ]
    (tmp_path / RECORDING_META).write_text("{}")
    (tmp_path / "stocks.jsonl").write_text("".join(
        json.dumps({"recv_ns": 10 + i, "frame": f}) + "\n" for i, f in enumerate(frames)))
    data = ReplayData.from_recording(tmp_path)
    assert data.items["stocks"] == [Item(11, [{"ev": "T", "sym": "SPY", "p": 1}]), Item(12, "not json"),
                                    Item(13, '[{"ev":"T"}]'), Item(14, [{"ev": "Q", "sym": "SPY"}])]
    assert data.items["options"] == [] and data.events == {"stocks": 2, "options": 0}
    (tmp_path / "options.jsonl").write_text('{"recv_ns": 1, "frame": "[]"}\n{"recv_ns": "late"}\n')
    with pytest.raises(SourceFormatError, match="options.jsonl, line 2, field 'recv_ns'"):
        ReplayData.from_recording(tmp_path)
    with pytest.raises(FileNotFoundError, match="recording.json"):
        ReplayData.from_recording(tmp_path / "nowhere")


# --- the REST shim


def test_contracts_rest_shim_with_the_massive_client():
    symbols = [CALL, PUT, "O:SPY251111C00690000", "O:VIXW251110C00020000", "O:VIX251119P00018000"]
    data = ReplayData({"options": [Item(T0 + i, [{"ev": "T", "sym": s}]) for i, s in enumerate(symbols)]})
    with ReplayServer(data, port=0, api_key=KEY) as server:
        base = f"http://127.0.0.1:{server.port}"
        client = massive.RESTClient(api_key=KEY, base=base, retries=0)
        spy = list(client.list_options_contracts(underlying_ticker="SPY", expiration_date="2025-11-10", limit=1000))
        assert [c.ticker for c in spy] == [CALL, PUT]
        call = spy[0]
        assert (call.underlying_ticker, call.expiration_date, call.strike_price, call.contract_type,
                call.exercise_style, call.shares_per_contract) == ("SPY", "2025-11-10", 685.0, "call", "american", 100)
        assert spy[1].contract_type == "put"
        vix = list(client.list_options_contracts(underlying_ticker="VIX"))
        assert [(c.ticker, c.exercise_style) for c in vix] == [
            ("O:VIX251119P00018000", "european"), ("O:VIXW251110C00020000", "european")]
        ranged = client.list_options_contracts(underlying_ticker="SPY", strike_price_gte=685, contract_type="call")
        assert [c.ticker for c in ranged] == [CALL, "O:SPY251111C00690000"]

        query = f"underlying_ticker=SPY&expiration_date=2025-11-11&apiKey={KEY}"
        body = json.loads(urllib.request.urlopen(f"{base}/v3/reference/options/contracts?{query}").read())
        assert body == {"status": "OK", "request_id": "replay", "results": [
            {"ticker": "O:SPY251111C00690000", "underlying_ticker": "SPY", "expiration_date": "2025-11-11",
             "strike_price": 690.0, "contract_type": "call", "exercise_style": "american", "shares_per_contract": 100}]}
        for path, status in [(f"/v2/aggs?apiKey={KEY}", 404), ("/v3/reference/options/contracts", 401),
                             (f"/v3/reference/options/contracts?expiration_date=soon&apiKey={KEY}", 400),
                             (f"/v3/reference/options/contracts?strike=1&apiKey={KEY}", 400)]:
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(base + path)
            assert err.value.code == status
            assert json.loads(err.value.read())["status"] in ("NOT_FOUND", "ERROR")
        wrong_key = massive.RESTClient(api_key="wrong", base=base, retries=0)
        with pytest.raises(massive.exceptions.BadResponse):
            list(wrong_key.list_options_contracts(underlying_ticker="SPY"))


# --- real sample data


def test_real_vix_sample_partition_round_trips(lake: Lake):
    from m17_platform.sources.samples import load_sample_table

    ref = PartitionRef(dt.date(2016, 6, 1), "VIX")
    sample = load_sample_table("option_trades", ref)
    lake.write(schemas.table("option_trades"), ref, sample.frame, source=sample.source)
    data = ReplayData.from_lake(lake, ref)
    assert data.events == {"stocks": 0, "options": sample.frame.height}

    async def main(server):
        ws = await _open(server, "options", ["T.*"])
        events = _flat(await _read_events(ws, data.events["options"], timeout=20))
        await ws.close()
        return events

    with ReplayServer(data, port=0, speed=0) as server:
        events = asyncio.run(main(server))
    decoded = _decoded_rows({"options": events}, Decoder(["VIX"]))
    assert _by_instrument(decoded["option_trades"]) == _by_instrument(_lake_rows(lake, ref)["option_trades"])


# --- `m17 replay serve` on a partition it cannot serve


def test_replay_serve_of_a_partition_that_does_not_exist_exits_2_with_one_line(tmp_path):
    """Before, it served nothing and ran until killed."""
    import subprocess
    import sys

    from m17_platform.settings import PROJECT_ROOT

    lake_root = tmp_path / "lake"
    proc = subprocess.run(
        [sys.executable, "-m", "m17_platform.cli", "replay", "serve", "--partition", "2020-01-02|NOPE",
         "--lake-root", str(lake_root), "--bind", "127.0.0.1:0"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("m17 replay serve: partition 2020-01-02|NOPE does not exist under lake root ")
    assert str(lake_root) in line and "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize(("partition", "says"), [
    ("2020-13-45|SPY", "date '2020-13-45' is not YYYY-MM-DD"),  # a traceback before
    ("SPY", "expected DATE|UNDERLYING"),  # a traceback before
    ("2020-01-02|", "underlying '' is empty"),
    ("2016-06-01|VIX", "2016-06-01|VIX does not exist"),  # the lake has another partition only
])
def test_replay_serve_names_a_malformed_or_missing_partition_and_the_lake_root(spy_lake, partition, says, capsys):
    from m17_platform.capture.commands import run_replay_serve

    status = run_replay_serve(in_dir=None, partition=partition, lake_root=str(spy_lake.root), bind="127.0.0.1:0",
                              speed=0, underlyings=None)
    (line,) = capsys.readouterr().err.splitlines()
    assert status == 2 and says in line and str(spy_lake.root) in line


def test_replay_serve_refuses_a_bad_bind_and_a_folder_that_is_not_a_recording(tmp_path, capsys):
    from m17_platform.capture.commands import run_replay_serve

    assert run_replay_serve(in_dir=None, partition="2020-01-02|SPY", lake_root=str(tmp_path), bind="127.0.0.1",
                            speed=0, underlyings=None) == 2
    assert run_replay_serve(in_dir=str(tmp_path), partition=None, lake_root=None, bind="127.0.0.1:0",
                            speed=0, underlyings=None) == 2
    first, second = capsys.readouterr().err.splitlines()
    assert "--bind '127.0.0.1' is not HOST:PORT" in first and "is not a recording folder" in second
