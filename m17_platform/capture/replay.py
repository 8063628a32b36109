"""The replay server (recording: :mod:`m17_platform.capture.recording`): recorded feeds or lake partitions served over Polygon's websocket
protocol, so the capture (or any Polygon client) can run against them offline,
deterministically, at real time x ``speed`` or as fast as it reads.

Protocol (Massive docs, "WebSocket Quickstart"), one websocket per feed at
``ws://HOST:PORT/stocks`` and ``ws://HOST:PORT/options`` (any other path is refused
with HTTP 404). Every server message is a JSON array of events:

* on connect the server greets with
  ``[{"ev":"status","status":"connected","message":"Connected Successfully"}]``;
* ``{"action":"auth","params":KEY}`` is answered by ``auth_success`` ("authenticated"),
  or by ``auth_failed`` ("authentication failed") after which the server closes the
  connection (code 1008). Without a configured key any non-empty key is accepted;
* ``{"action":"subscribe","params":"T.SPY,Q.*"}`` / ``unsubscribe`` add / remove
  channels of that connection; each channel is answered by its own ``success`` status
  ("subscribed to: T.SPY" / "unsubscribed to: T.SPY"). ``EV.*`` is every symbol of event
  ``EV``;
* mistakes are answered by ``{"ev":"status","status":"error","message":...}``:
  "not authorized" (subscribe before auth), "invalid message" (not a JSON object with
  a string ``action``, or ``params`` not a string), "unknown action: X",
  "invalid channel: X" (not ``EV.SYMBOL``);
* data frames are arrays of at most ``max_frame_events`` events; a connection gets the
  events whose channel ``EV.SYM`` or ``EV.*`` it subscribed, in the data's order.
  Events served from the lake carry the ``"m17"`` extension of
  :mod:`m17_platform.sources.polygon_ws` so they decode back to the exact rows.
  A raw frame (a recorded frame that is not a valid array of events) is sent verbatim
  to every authenticated connection of the feed with at least one subscription.

The same port answers plain HTTP GETs (no websocket upgrade) with a REST shim of
``GET /v3/reference/options/contracts`` built from the data's option symbols (see
:meth:`ReplayServer.contracts`); other paths get 404 ``{"status":"NOT_FOUND"}``.

Timing model. The server has one timeline, started by the first ``subscribe`` received
on any connection. With ``speed`` X > 0 an item of time t (ns) is due at wall time
``start + (t - t_first) / X`` where ``t_first`` is the earliest item time over both
feeds; the timeline runs on with wall time whether or not anyone is connected, like a
live feed: a client that is away misses what is sent meanwhile. Each feed's pump sends,
when an item is due, every item due by then (batched into frames of at most
``max_frame_events`` events). With ``speed`` 0 a feed's pump starts when that feed gets
its first subscriber and sends frames of ``max_frame_events`` events as fast as its
connections accept them (each send awaited), still in order. Either way the frames and
their order depend only on the data and the subscriptions, never on timing, except
which items a frame bundles at speed > 0. A client that does not read holds back its
feed's pump (sends are awaited).

Recording folder (written by :func:`record`, read by :meth:`ReplayData.from_recording`)::

    recording.json      metadata: feeds, urls, subscriptions, started / ended (UTC ISO), frames per feed
    stocks.jsonl        one line per frame received: {"recv_ns": <ns since epoch>, "frame": "<text as received>"}
    options.jsonl       the same for the options feed

On replay, status events inside recorded frames are dropped (the server makes its own),
a frame of data events is replayed at its ``recv_ns``, and a frame that is not a JSON
array of events (with string ``ev`` and, for data events, ``sym``) is replayed raw.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import http
import json
import logging
import math
import operator
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from m17_platform import schemas
from m17_platform.errors import SourceFormatError
from m17_platform.lake import Lake, PartitionRef
from m17_platform.settings import DEFAULT, PolygonSettings, UniverseSettings
from m17_platform.sources.polygon_ws import (
    FEEDS,
    TABLE_OF_EVENT,
    Decoder,
    WireFormatError,
    channel,
    encode_rows,
    parse_frame,
)
from m17_platform.symbols import parse_occ_symbol

log = logging.getLogger("m17.replay")

RECORDING_META = "recording.json"
CONTRACTS_PATH = "/v3/reference/options/contracts"
# raw tables per feed, in the order their events are merged on equal times
FEED_TABLES = {feed: tuple(t for (f, _), t in TABLE_OF_EVENT.items() if f == feed) for feed in FEEDS}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _status(status: str, message: str) -> str:
    return _dumps([{"ev": "status", "status": status, "message": message}])


def _check_feed(feed: str) -> str:
    if feed not in FEEDS:
        raise ValueError(f"unknown feed {feed!r}; the feeds are {FEEDS}")
    return feed


def recording_file(folder: Path, feed: str) -> Path:
    """The frames file of ``feed`` in a recording folder (``<folder>/<feed>.jsonl``)."""
    return folder / f"{_check_feed(feed)}.jsonl"


def is_recording(path: str | Path) -> bool:
    """Whether ``path`` is a recording folder (it holds ``recording.json``)."""
    return (Path(path) / RECORDING_META).is_file()


# --- what is served ------------------------------------------------------------------


class Item(NamedTuple):
    """One entry of a feed's timeline.

    time_ns : when it happened (ns since epoch, UTC): a lake row's ``ts_ns``, a recorded
        frame's receive time.
    payload : the data events to send (dicts with string ``ev`` and ``sym``), or the text
        of a raw frame, sent verbatim.
    """

    time_ns: int
    payload: list[dict[str, Any]] | str


def _events_in(item: Item) -> int:
    """Events an item counts for when bundling frames (a raw frame counts as one)."""
    return 1 if isinstance(item.payload, str) else len(item.payload)


class ReplayData:
    """What a replay serves: per feed, the items in sending order.

    Parameters
    ----------
    items : mapping of feed -> sequence of Item
        ``stocks`` and / or ``options`` (a feed left out has no items). Times should not
        decrease; an item earlier than its predecessor is sent right after it.
    origin : str
        What the data is, for logs.

    Attributes
    ----------
    items : dict of feed -> list of Item
        Both feeds.
    first_time_ns : int | None
        The earliest item time over both feeds (ns), ``None`` without items.
    events : dict of feed -> int
        Data events per feed (raw frames not counted).

    Raises
    ------
    ValueError
        For a feed other than ``stocks`` / ``options``, or an event without string
        ``ev`` and ``sym``.
    """

    def __init__(self, items: Mapping[str, Sequence[Item]], origin: str = "items") -> None:
        for feed in items:
            _check_feed(feed)
        self.items: dict[str, list[Item]] = {feed: list(items.get(feed, ())) for feed in FEEDS}
        self.origin = origin
        self._symbols: dict[str, frozenset[str]] = {}
        self.events: dict[str, int] = {}
        for feed, feed_items in self.items.items():
            symbols: set[str] = set()
            count = 0
            for item in feed_items:
                if isinstance(item.payload, str):
                    continue
                for ev in item.payload:
                    if not (isinstance(ev.get("ev"), str) and isinstance(ev.get("sym"), str)):
                        raise ValueError(f"{feed} item at {item.time_ns} ns: event without string 'ev' and 'sym': {ev}")
                    symbols.add(ev["sym"])
                count += len(item.payload)
            self._symbols[feed] = frozenset(symbols)
            self.events[feed] = count
        self.first_time_ns = min((item.time_ns for its in self.items.values() for item in its), default=None)

    def symbols(self, feed: str) -> frozenset[str]:
        """The symbols (``sym``) of the feed's data events: tickers on ``stocks``, OCC
        option symbols on ``options``."""
        return self._symbols[_check_feed(feed)]

    @classmethod
    def from_lake(cls, lake: Lake, ref: PartitionRef, decoder: Decoder | None = None) -> ReplayData:
        """Partition ``ref`` of the raw tables as websocket events.

        ``option_trades`` and ``option_quotes`` feed ``options``, ``stock_trades`` and
        ``stock_quotes`` feed ``stocks``; a partition that was never written has no
        events. Every row becomes one item at its exact ``ts_ns`` (ns), encoded by
        :func:`~m17_platform.sources.polygon_ws.encode_rows`. A feed's tables are merged
        by ``ts_ns`` with a stable order: equal times keep the table order (trades before
        quotes), then the lake's row order, so each instrument's rows keep their lake
        order.

        Parameters
        ----------
        lake : Lake
        ref : PartitionRef
        decoder : Decoder, optional
            The decoder the receiving side uses (default: one for ``ref.underlying``
            with the default settings); the encoding is exact through it.

        Raises
        ------
        LakeError
            If a partition's files do not match its manifest.
        """
        decoder = decoder or Decoder([ref.underlying])
        items: dict[str, list[Item]] = {}
        for feed in FEEDS:
            times: list[np.ndarray] = []
            events: list[dict[str, Any]] = []
            for table in FEED_TABLES[feed]:
                spec = schemas.table(table)
                if lake.exists(spec, ref):
                    frame = lake.read(spec, ref)
                    times.append(frame.get_column("ts_ns").to_numpy())
                    events.extend(encode_rows(table, frame, decoder))
            ts = np.concatenate(times) if times else np.empty(0, dtype=np.int64)
            items[feed] = [Item(int(ts[k]), [events[k]]) for k in np.argsort(ts, kind="stable")]
        return cls(items, origin=f"lake partition {ref} under {lake.root}")

    @classmethod
    def from_recording(cls, folder: str | Path) -> ReplayData:
        """A recording folder written by :func:`record` (layout in the module docstring).

        Raises
        ------
        FileNotFoundError
            If the folder has no ``recording.json``.
        SourceFormatError
            For a line that is not ``{"recv_ns": int, "frame": str}`` (naming file and line).
        """
        folder = Path(folder)
        if not is_recording(folder):
            raise FileNotFoundError(f"{folder} is not a recording folder: it has no {RECORDING_META}")
        items = {}
        for feed in FEEDS:
            path = recording_file(folder, feed)
            if path.exists():
                items[feed] = list(_read_recorded(path))
        return cls(items, origin=f"recording {folder}")


def _read_recorded(path: Path) -> Iterator[Item]:
    with path.open(encoding="utf-8") as lines:
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SourceFormatError(str(path), lineno, None, f"not JSON: {exc}") from None
            if not isinstance(entry, dict):
                raise SourceFormatError(str(path), lineno, None, "not a JSON object")
            recv_ns, frame = entry.get("recv_ns"), entry.get("frame")
            if isinstance(recv_ns, bool) or not isinstance(recv_ns, int):
                raise SourceFormatError(str(path), lineno, "recv_ns", f"not an integer (ns): {recv_ns!r}")
            if not isinstance(frame, str):
                raise SourceFormatError(str(path), lineno, "frame", f"not a string: {frame!r}")
            item = _recorded_item(recv_ns, frame)
            if item is not None:
                yield item


def _recorded_item(recv_ns: int, frame: str) -> Item | None:
    """A recorded frame as an item: its data events, raw text if it is not a valid array
    of events, ``None`` if it only holds status events."""
    try:
        events = parse_frame(frame)
    except WireFormatError:
        return Item(recv_ns, frame)
    if not all(isinstance(ev, dict) and isinstance(ev.get("ev"), str) for ev in events):
        return Item(recv_ns, frame)
    data = [ev for ev in events if ev["ev"] != "status"]
    if not all(isinstance(ev.get("sym"), str) for ev in data):
        return Item(recv_ns, frame)
    return Item(recv_ns, data) if data else None


# --- the server ----------------------------------------------------------------------


@dataclass(eq=False)
class _Client:
    ws: ServerConnection
    feed: str
    authenticated: bool = False
    subscriptions: set[str] = field(default_factory=set)


def _feed_of(path: str) -> str | None:
    feed = urlsplit(path).path.strip("/")
    return feed if feed in FEEDS else None


def _json_response(status: int, body: dict[str, Any]) -> Response:
    payload = _dumps(body).encode()
    headers = Headers([("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                       ("Connection", "close")])
    return Response(status, http.HTTPStatus(status).phrase, headers, payload)


# contract filters of the REST shim: parameter -> how its value is read; suffixes compare
_CONTRACT_RANGES: dict[str, Callable[[str], Any]] = {
    "expiration_date": lambda v: dt.date.fromisoformat(v).isoformat(),
    "strike_price": float,
}
_COMPARE = {"": operator.eq, "gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
# accepted without effect: every contract in the data was listed on its day, and one page holds all matches
_CONTRACT_NOOPS = ("as_of", "limit", "apiKey")


class ReplayServer:
    """Serves :class:`ReplayData` over Polygon's websocket protocol (module docstring).

    Parameters
    ----------
    data : ReplayData
    host : str
        Bind address.
    port : int
        Bind port; 0 picks a free one (read :attr:`port` once started).
    speed : float
        Event time advances this many times faster than wall time; 0 serves as fast
        as the clients read (dimensionless, >= 0).
    api_key : str, optional
        The only key accepted (websocket ``auth``; REST bearer header or ``apiKey``
        parameter). ``None`` accepts any non-empty websocket key and any REST request.
    max_frame_events : int
        Most events in one data frame (events, >= 1).
    polygon : PolygonSettings
        ``option_roots``: which underlying an option root belongs to (REST shim).
    universe : UniverseSettings
        ``european_roots`` (exercise style) and ``default_multiplier`` (shares per
        contract) of the REST shim.

    Attributes
    ----------
    port : int
        The bound port while serving (the requested one before).
    serving : threading.Event
        Set while the server is bound and accepting connections.
    finished : threading.Event
        Set once every feed has sent its last item.

    Raises
    ------
    ValueError
        For a negative or non-finite speed, ``max_frame_events`` < 1, or an empty
        ``api_key``.
    """

    def __init__(self, data: ReplayData, *, host: str = "127.0.0.1", port: int = 9000,
                 speed: float = DEFAULT.capture.replay_speed, api_key: str | None = None,
                 max_frame_events: int = DEFAULT.capture.max_frame_events,
                 polygon: PolygonSettings = DEFAULT.polygon, universe: UniverseSettings = DEFAULT.universe) -> None:
        if not (math.isfinite(speed) and speed >= 0):
            raise ValueError(f"speed must be a finite number >= 0 (0 = as fast as possible), got {speed!r}")
        if max_frame_events < 1:
            raise ValueError(f"max_frame_events must be >= 1, got {max_frame_events!r}")
        if api_key == "":
            raise ValueError("api_key must be None (accept any key) or a non-empty key")
        self.data = data
        self.host = host
        self.port = port
        self.speed = float(speed)
        self.api_key = api_key
        self.max_frame_events = max_frame_events
        self._contracts = self._build_contracts(polygon, universe)
        self.serving = threading.Event()
        self.finished = threading.Event()
        self._clients: dict[str, set[_Client]] = {feed: set() for feed in FEEDS}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_stop: asyncio.Event | None = None
        self._thread_error: BaseException | None = None
        self._reset()

    @staticmethod
    def _new_stats() -> dict[str, Any]:
        return {"connections": dict.fromkeys(FEEDS, 0), "frames_sent": dict.fromkeys(FEEDS, 0),
                "events_sent": dict.fromkeys(FEEDS, 0), "auth_failures": 0}

    @property
    def stats(self) -> dict[str, Any]:
        """Counters of the current (or last) run, a copy: ``connections`` (websocket
        connections accepted), ``frames_sent`` (data, raw and injected frames, over all
        connections) and ``events_sent`` (data events) per feed; ``auth_failures``."""
        return {k: dict(v) if isinstance(v, dict) else v for k, v in self._stats.items()}

    # --- running ----------------------------------------------------------------------

    async def serve(self) -> None:
        """Serve until cancelled (binds ``host:port``; the CLI's form)."""
        await self._run(asyncio.Event())

    def start_in_thread(self) -> int:
        """Serve from a daemon thread with its own event loop until :meth:`stop`.

        Returns
        -------
        int
            The bound port.

        Raises
        ------
        RuntimeError
            If the server already runs in a thread.
        OSError
            If the address cannot be bound.
        """
        if self._thread is not None:
            raise RuntimeError("the replay server already runs in a thread")
        bound: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._thread_main, args=(bound,), name="m17-replay", daemon=True)
        self._thread.start()
        try:
            return bound.result()
        except BaseException:
            self._thread.join()
            self._thread = None
            raise

    def stop(self) -> None:
        """Stop the threaded server (closing every connection) and wait for its thread.

        Raises
        ------
        Exception
            What made the server fail while it ran, if anything did.
        """
        if self._thread is None:
            return
        loop, stop = self._loop, self._thread_stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        self._thread.join()
        self._thread = None
        error, self._thread_error = self._thread_error, None
        if error is not None:
            raise error

    def __enter__(self) -> ReplayServer:
        self.start_in_thread()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _thread_main(self, bound: concurrent.futures.Future[int]) -> None:
        async def main() -> None:
            self._thread_stop = asyncio.Event()
            await self._run(self._thread_stop, bound)

        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to start_in_thread() or stop()
            if bound.done():
                log.error("replay server failed", exc_info=exc)
                self._thread_error = exc
            else:
                bound.set_exception(exc)

    async def _run(self, stop: asyncio.Event, bound: concurrent.futures.Future[int] | None = None) -> None:
        if self._loop is not None:
            raise RuntimeError("the replay server is already running")
        self._reset()
        self._loop = asyncio.get_running_loop()
        try:
            async with serve(self._handler, self.host, self.port, process_request=self._process_request) as server:
                self.port = server.sockets[0].getsockname()[1]
                log.info("replaying %s (%s) on ws://%s:%d/stocks and /options at speed %s", self.data.origin,
                         ", ".join(f"{n} {feed} events" for feed, n in self.data.events.items()),
                         self.host, self.port, self.speed or "max")
                self.serving.set()
                if bound is not None:
                    bound.set_result(self.port)
                async with asyncio.TaskGroup() as group:
                    pumps = [group.create_task(self._pump(feed)) for feed in FEEDS]
                    await stop.wait()
                    for pump in pumps:
                        pump.cancel()
        finally:
            self.serving.clear()
            self._loop = None

    def _reset(self) -> None:
        """A fresh timeline and counters (each run starts from the first item)."""
        self.finished.clear()
        self._stats: dict[str, Any] = self._new_stats()
        self._t0: float | None = None  # loop time of the first subscribe (s)
        self._timeline_started = asyncio.Event()
        self._feed_subscribed = {feed: asyncio.Event() for feed in FEEDS}
        self._done: set[str] = set()

    # --- controls (any thread) --------------------------------------------------------

    def _submit(self, coro: Coroutine[Any, Any, int]) -> concurrent.futures.Future[int]:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("the replay server is not running")
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def drop_connections(self, feed: str | None = None) -> concurrent.futures.Future[int]:
        """Abruptly close (no close frame, like a network failure) the current
        connections of ``feed`` (every feed if ``None``); the timeline keeps running.

        Safe from any thread. Returns a future of the number of connections dropped
        (``.result()`` from another thread, ``await asyncio.wrap_future(...)`` on the
        server's loop).

        Raises
        ------
        ValueError
            For an unknown feed.
        RuntimeError
            If the server is not running.
        """
        feeds = FEEDS if feed is None else (_check_feed(feed),)
        return self._submit(self._drop(feeds))

    async def _drop(self, feeds: Sequence[str]) -> int:
        clients = [client for feed in feeds for client in self._clients[feed]]
        for client in clients:
            client.ws.transport.abort()
        return len(clients)

    def inject(self, feed: str, text: str) -> concurrent.futures.Future[int]:
        """Send the text frame ``text`` verbatim to every authenticated connection of
        ``feed`` (between two data frames). Safe from any thread; returns a future of
        the number of connections it was sent to.

        Raises
        ------
        ValueError
            For an unknown feed.
        RuntimeError
            If the server is not running.
        """
        _check_feed(feed)
        return self._submit(self._inject(feed, text))

    async def _inject(self, feed: str, text: str) -> int:
        sent = 0
        for client in [c for c in self._clients[feed] if c.authenticated]:
            sent += await self._send(client, text, 0)
        return sent

    # --- connections ------------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        feed = _feed_of(ws.request.path)
        assert feed is not None  # _process_request refused other paths
        client = _Client(ws, feed)
        self._clients[feed].add(client)
        self._stats["connections"][feed] += 1
        try:
            await ws.send(_status("connected", "Connected Successfully"))
            async for message in ws:
                await self._on_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            self._clients[feed].discard(client)

    async def _on_message(self, client: _Client, message: str | bytes) -> None:
        try:
            msg = json.loads(message)
        except ValueError:
            msg = None
        action = msg.get("action") if isinstance(msg, dict) else None
        params = msg.get("params") if isinstance(msg, dict) else None
        if action == "auth":
            await self._authenticate(client, params)
        elif action in ("subscribe", "unsubscribe"):
            if isinstance(params, str):
                await self._subscribe(client, action, params)
            else:
                await client.ws.send(_status("error", "invalid message"))
        elif isinstance(action, str):
            await client.ws.send(_status("error", f"unknown action: {action}"))
        else:
            await client.ws.send(_status("error", "invalid message"))

    async def _authenticate(self, client: _Client, key: Any) -> None:
        if isinstance(key, str) and key and (self.api_key is None or key == self.api_key):
            client.authenticated = True
            await client.ws.send(_status("auth_success", "authenticated"))
            return
        client.authenticated = False
        self._stats["auth_failures"] += 1
        await client.ws.send(_status("auth_failed", "authentication failed"))
        await client.ws.close(CloseCode.POLICY_VIOLATION, "authentication failed")

    async def _subscribe(self, client: _Client, action: str, params: str) -> None:
        if not client.authenticated:
            await client.ws.send(_status("error", "not authorized"))
            return
        replies = []
        for name in (c.strip() for c in params.split(",")):
            if not name:
                continue
            event, dot, symbol = name.partition(".")
            if not (event and dot and symbol):
                replies.append(_status("error", f"invalid channel: {name}"))
            elif action == "subscribe":
                client.subscriptions.add(name)
                replies.append(_status("success", f"subscribed to: {name}"))
            else:
                client.subscriptions.discard(name)
                replies.append(_status("success", f"unsubscribed to: {name}"))
        for reply in replies:
            await client.ws.send(reply)
        if action == "subscribe" and client.subscriptions:
            if self._t0 is None:
                self._t0 = asyncio.get_running_loop().time()
                self._timeline_started.set()
            self._feed_subscribed[client.feed].set()

    # --- the pumps --------------------------------------------------------------------

    async def _pump(self, feed: str) -> None:
        items = self.data.items[feed]
        if items:
            await (self._timeline_started if self.speed > 0 else self._feed_subscribed[feed]).wait()
            i = 0
            while i < len(items):
                end = await self._batch_end(items, i)
                await self._send_items(feed, items[i:end])
                i = end
        self._done.add(feed)
        if self._done == set(FEEDS):
            self.finished.set()

    async def _batch_end(self, items: list[Item], i: int) -> int:
        """Waits until item ``i`` is due; returns the end (exclusive) of the batch it starts."""
        end = i + 1
        if self.speed == 0:
            events = _events_in(items[i])
            while end < len(items) and events < self.max_frame_events:
                events += _events_in(items[end])
                end += 1
            return end
        loop = asyncio.get_running_loop()
        assert self._t0 is not None and self.data.first_time_ns is not None
        t_first, ns_per_s = self.data.first_time_ns, self.speed * 1e9
        delay = self._t0 + (items[i].time_ns - t_first) / ns_per_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        reached = (loop.time() - self._t0) * ns_per_s  # event time elapsed since t_first (ns)
        while end < len(items) and items[end].time_ns - t_first <= reached:
            end += 1
        return end

    async def _send_items(self, feed: str, items: Sequence[Item]) -> None:
        frame: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item.payload, str):
                if frame:
                    await self._send_events(feed, frame)
                    frame = []
                await self._send_raw(feed, item.payload)
                continue
            for ev in item.payload:
                frame.append(ev)
                if len(frame) == self.max_frame_events:
                    await self._send_events(feed, frame)
                    frame = []
        if frame:
            await self._send_events(feed, frame)

    async def _send_events(self, feed: str, events: list[dict[str, Any]]) -> None:
        clients = [c for c in self._clients[feed] if c.authenticated and c.subscriptions]
        if clients:
            keys = [(channel(ev["ev"], ev["sym"]), channel(ev["ev"], "*")) for ev in events]
            texts = [_dumps(ev) for ev in events]
            for client in clients:
                subs = client.subscriptions
                parts = [text for (one, every), text in zip(keys, texts) if one in subs or every in subs]
                if parts:
                    await self._send(client, "[" + ",".join(parts) + "]", len(parts))
        await asyncio.sleep(0)  # let connections and controls run between frames

    async def _send_raw(self, feed: str, text: str) -> None:
        for client in [c for c in self._clients[feed] if c.authenticated and c.subscriptions]:
            await self._send(client, text, 0)
        await asyncio.sleep(0)

    async def _send(self, client: _Client, text: str, events: int) -> bool:
        try:
            await client.ws.send(text)
        except ConnectionClosed:
            return False
        self._stats["frames_sent"][client.feed] += 1
        self._stats["events_sent"][client.feed] += events
        return True

    # --- REST shim --------------------------------------------------------------------

    def _build_contracts(self, polygon: PolygonSettings, universe: UniverseSettings) -> list[dict[str, Any]]:
        underlying_of = {root: u for u, roots in polygon.option_roots.items() for root in roots}
        out = []
        for symbol in sorted(self.data.symbols("options")):
            try:
                oid = parse_occ_symbol(symbol)
            except ValueError:
                continue
            out.append({
                "ticker": symbol, "underlying_ticker": underlying_of.get(oid.root, oid.root),
                "expiration_date": oid.expiration.isoformat(), "strike_price": oid.strike,
                "contract_type": "call" if oid.right == "C" else "put",
                "exercise_style": "european" if oid.root in universe.european_roots else "american",
                "shares_per_contract": universe.default_multiplier,
            })
        return out

    def contracts(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """The REST shim's ``/v3/reference/options/contracts`` results for ``query``.

        Contracts are the OCC symbols of the options feed, in Polygon's shape
        (``ticker``, ``underlying_ticker`` (the root, or the underlying that
        ``polygon.option_roots`` maps it to), ``expiration_date``, ``strike_price`` ($),
        ``contract_type``, ``exercise_style``, ``shares_per_contract``), sorted by
        ticker. Filters: ``underlying_ticker``, ``contract_type``, ``expiration_date``
        and ``strike_price`` (also with ``.gt``, ``.gte``, ``.lt``, ``.lte``);
        ``sort=ticker`` with ``order=asc|desc``. ``as_of``, ``limit`` and ``apiKey`` are
        accepted without effect: one page holds every match (no ``next_url``).

        Raises
        ------
        ValueError
            For an unsupported parameter or a value that cannot be read.
        """
        tests: list[Callable[[dict[str, Any]], bool]] = []
        for key, value in query.items():
            name, _, suffix = key.partition(".")
            if key in _CONTRACT_NOOPS or key in ("sort", "order"):
                continue
            if key in ("underlying_ticker", "contract_type"):
                tests.append(lambda c, k=key, v=value: c[k] == v)
            elif name in _CONTRACT_RANGES and suffix in _COMPARE:
                try:
                    bound = _CONTRACT_RANGES[name](value)
                except ValueError:
                    raise ValueError(f"{key}={value!r} is not a valid {name}") from None
                tests.append(lambda c, k=name, cmp=_COMPARE[suffix], b=bound: cmp(c[k], b))
            else:
                raise ValueError(f"unsupported parameter {key!r}")
        if query.get("sort", "ticker") != "ticker" or query.get("order", "asc") not in ("asc", "desc"):
            raise ValueError("only sort=ticker with order=asc|desc is supported")
        out = [c for c in self._contracts if all(test(c) for test in tests)]
        return out[::-1] if query.get("order") == "desc" else out

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            return self._rest(request)
        if _feed_of(request.path) is None:
            return _json_response(404, {"status": "NOT_FOUND", "request_id": "replay",
                                        "message": "websocket feeds are /stocks and /options"})
        return None

    def _rest(self, request: Request) -> Response:
        parts = urlsplit(request.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if self.api_key is not None and self.api_key not in (
            request.headers.get("Authorization", "").removeprefix("Bearer "), query.get("apiKey")
        ):
            return _json_response(401, {"status": "ERROR", "request_id": "replay", "error": "Unknown API Key"})
        if parts.path.rstrip("/") != CONTRACTS_PATH:
            return _json_response(404, {"status": "NOT_FOUND", "request_id": "replay",
                                        "message": f"the replay serves only {CONTRACTS_PATH}"})
        try:
            results = self.contracts(query)
        except ValueError as exc:
            return _json_response(400, {"status": "ERROR", "request_id": "replay", "error": str(exc)})
        return _json_response(200, {"status": "OK", "request_id": "replay", "results": results})
