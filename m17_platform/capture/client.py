"""One websocket feed (``stocks`` or ``options``) of the capture: connect, authenticate,
subscribe, receive; on a lost connection reconnect with exponential backoff and
jitter, resubscribe, and record the gap.

Polygon's handshake (Massive docs, "WebSocket Quickstart"): the server greets with
``[{"ev":"status","status":"connected"}]``; the client sends
``{"action":"auth","params":KEY}`` and waits for ``auth_success`` (``auth_failed`` is
fatal: retrying a bad key only gets the account throttled); then
``{"action":"subscribe","params":"T.SPY,Q.SPY"}`` / ``unsubscribe``. The key is sent
to the server and nowhere else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from m17_platform.capture.landing import Gap, LandingZone
from m17_platform.capture.metrics import CaptureMetrics
from m17_platform.errors import M17Error
from m17_platform.settings import DEFAULT, CaptureSettings
from m17_platform.sources.polygon_ws import WireFormatError, parse_frame

log = logging.getLogger("m17.capture")

# the frame handler returns the event time (ns) of the first and last data event of a frame
FrameHandler = Callable[[str, str, int], tuple[int | None, int | None]]
# event time (ns) -> first accepted event time (ns) of its trade date, None if it has none
WindowStart = Callable[[int], int | None]


class AuthFailed(M17Error, RuntimeError):
    """The server refused the API key (names the feed and URL, never the key)."""


def backoff_delay(attempt: int, settings: CaptureSettings, rng: random.Random) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0-based): ``backoff_initial_seconds``
    doubled per attempt, capped at ``backoff_max_seconds``, times a uniform jitter factor in
    [1 - ``backoff_jitter``, 1 + ``backoff_jitter``] ("exponential backoff and jitter", AWS
    Architecture Blog, 2015)."""
    base = min(settings.backoff_max_seconds, settings.backoff_initial_seconds * 2**attempt)
    return base * rng.uniform(1 - settings.backoff_jitter, 1 + settings.backoff_jitter)


class FeedLink:
    """The connection of one feed, kept up until stopped.

    Parameters
    ----------
    feed : ``stocks`` or ``options``
    url : websocket URL
    api_key : the key sent in the ``auth`` action
    on_frame : called with (feed, frame text, received ns) for every frame after auth
    zone : where gaps are recorded
    metrics : CaptureMetrics
    settings : CaptureSettings
        Backoff (s), jitter (fraction) and the handshake timeout (s).
    rng : random.Random, optional
        Jitter source (tests pass a seeded one).
    window_start : callable, optional
        Event time (ns) -> the first accepted event time (ns) of its trade date: where a gap
        that no received event precedes starts in event time (without it, that edge stays
        unknown, ``None``).
    """

    def __init__(self, feed: str, url: str, api_key: str, on_frame: FrameHandler, zone: LandingZone,
                 metrics: CaptureMetrics, settings: CaptureSettings = DEFAULT.capture,
                 rng: random.Random | None = None, window_start: WindowStart | None = None) -> None:
        self.feed = feed
        self.url = url
        self._key = api_key
        self._on_frame = on_frame
        self._zone = zone
        self._metrics = metrics
        self._settings = settings
        self._rng = rng or random.Random()
        self._window_start = window_start
        self._ws: ClientConnection | None = None
        self._subscribed: set[str] = set()
        self.channels: set[str] = set()
        self.last_event_ts_ns: int | None = None
        self._gap: dict | None = None
        self.connections = 0

    # --- subscriptions ------------------------------------------------------------------

    def set_channels(self, channels: set[str]) -> None:
        """Make ``channels`` the feed's subscriptions; sends the difference now when
        connected (kept for every later connection either way)."""
        self.channels = set(channels)
        if self._ws is not None:
            asyncio.get_running_loop().create_task(self._sync_subscriptions(self._ws))

    async def _sync_subscriptions(self, ws: ClientConnection) -> None:
        add, remove = self.channels - self._subscribed, self._subscribed - self.channels
        try:
            if remove:
                await ws.send(json.dumps({"action": "unsubscribe", "params": ",".join(sorted(remove))}))
            if add:
                await ws.send(json.dumps({"action": "subscribe", "params": ",".join(sorted(add))}))
        except ConnectionClosed:
            return  # the reconnect resubscribes from self.channels
        self._subscribed = (self._subscribed | add) - remove

    # --- gaps ---------------------------------------------------------------------------

    def open_gap(self, start_ns: int, last_event_ts_ns: int | None, reason: str) -> None:
        """Start a gap (unless one is open): the feed was not receiving from ``start_ns`` (wall, ns).

        ``last_event_ts_ns`` is the event time (ns) of the last event received before it;
        ``None`` when none was (the capture's start): the gap then starts, in event time, at
        the first accepted time of the trade date of the first event after it.
        """
        if self._gap is None:
            self._gap = {"start_ns": start_ns, "end_ns": None, "last_event_ts_ns": last_event_ts_ns, "reason": reason}

    def subscription_acknowledged(self, received_ns: int) -> None:
        """The server acknowledged a subscription (wall clock ``received_ns``): an open gap's
        wall-clock end, the subscription restored (the first acknowledgement counts)."""
        if self._gap is not None and self._gap["end_ns"] is None:
            self._gap["end_ns"] = received_ns

    def _close_gap(self, first_event_ts_ns: int | None) -> None:
        gap, self._gap = self._gap, None
        if first_event_ts_ns is not None:
            if gap["end_ns"] is None:  # data came without an acknowledgement seen
                gap["end_ns"] = time.time_ns()
            if gap["last_event_ts_ns"] is None and self._window_start is not None:
                gap["last_event_ts_ns"] = self._window_start(first_event_ts_ns)
        self._zone.record_gap(Gap(self.feed, gap["start_ns"], gap["end_ns"], gap["last_event_ts_ns"],
                                  first_event_ts_ns, gap["reason"]))
        self._metrics.gaps.labels(feed=self.feed).inc()
        log.warning("%s feed: gap recorded (%s), events between %s and %s ns were not received",
                    self.feed, gap["reason"], gap["last_event_ts_ns"], first_event_ts_ns)

    def finish(self) -> None:
        """Record a gap still open at shutdown (its end unknown when never resubscribed)."""
        if self._gap is not None:
            self._close_gap(None)

    # --- the connection -----------------------------------------------------------------

    async def _handshake(self, ws: ClientConnection) -> None:
        async with asyncio.timeout(self._settings.auth_timeout_seconds):
            await ws.send(json.dumps({"action": "auth", "params": self._key}))
            while True:
                for ev in parse_frame(await ws.recv()):
                    if not isinstance(ev, dict) or ev.get("ev") != "status":
                        continue
                    if ev.get("status") == "auth_success":
                        return
                    if ev.get("status") == "auth_failed":
                        raise AuthFailed(f"{self.feed} feed {self.url}: authentication failed ({ev.get('message')!s})")

    async def run(self, stop: asyncio.Event) -> None:
        """Keep the feed connected until ``stop`` is set.

        Raises
        ------
        AuthFailed
            When the server refuses the key.
        InvalidURI
            For a URL that is not a websocket URL.
        """
        attempt = 0
        while not stop.is_set():
            reason = "closed by the server"
            try:
                async with connect(self.url, max_size=None, open_timeout=self._settings.auth_timeout_seconds) as ws:
                    await self._handshake(ws)
                    self.connections += 1
                    self._ws, self._subscribed = ws, set()
                    await self._sync_subscriptions(ws)
                    self._metrics.connected.labels(feed=self.feed).set(1)
                    if self._gap is not None:  # restored when the server acknowledges a subscription
                        self._gap["end_ns"] = None
                    attempt = 0
                    log.info("%s feed: connected to %s, %d channels", self.feed, self.url, len(self.channels))
                    async for message in ws:
                        text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                        first, last = self._on_frame(self.feed, text, time.time_ns())
                        if first is not None:
                            if self._gap is not None:
                                self._close_gap(first)
                            self.last_event_ts_ns = last
            except (AuthFailed, InvalidURI):
                raise
            except ConnectionClosed as exc:
                reason = f"connection closed ({exc.rcvd.code if exc.rcvd else 'no close frame'})"
            except (OSError, TimeoutError, InvalidHandshake, WireFormatError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
                self._metrics.connected.labels(feed=self.feed).set(0)
            if stop.is_set():
                break
            self.open_gap(time.time_ns(), self.last_event_ts_ns, reason)
            self._metrics.reconnects.labels(feed=self.feed).inc()
            delay = backoff_delay(attempt, self._settings, self._rng)
            attempt += 1
            log.warning("%s feed: %s; reconnecting in %.2f s", self.feed, reason, delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Close the current connection (``run`` returns once ``stop`` is set)."""
        if self._ws is not None:
            await self._ws.close()
