"""The capture process (``m17 capture``): two feeds, the strike window, micro-batches,
gaps and metrics, until stopped.

Data flow: each frame of the stocks and options feeds is split into events
(:mod:`m17_platform.sources.polygon_ws`); status events are logged; data events are
decoded into raw rows and held by the :class:`~m17_platform.capture.batcher.MicroBatcher`,
which writes them to the landing zone every ``batch_seconds`` or ``batch_events``;
anything malformed, unknown or out of range (a frame too large or too deep, a field of
the wrong type, an overflowing or non-finite number, a negative price or size, a time
outside its trade date's session) is counted, logged once per kind and kept in
``rejects.jsonl``: one bad frame or event never stops the capture. The options feed
starts with an opening gap: what it sent before its first subscription was acknowledged
was not received, and ``gaps.jsonl`` says so. Underlying prices from the stocks feed move each underlying's
:class:`~m17_platform.capture.strikes.StrikeManager`, whose window changes become
subscribe / unsubscribe actions on the options feed. ``all_contracts`` subscribes every
listed contract of the underlyings instead (any expiration).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import random
import time
from collections.abc import Callable, Iterable

from m17_platform.capture.batcher import MicroBatcher
from m17_platform.capture.client import FeedLink
from m17_platform.capture.landing import LandingZone, read_manifest
from m17_platform.capture.metrics import CaptureMetrics
from m17_platform.capture.strikes import StrikeManager, WindowChange
from m17_platform.settings import DEFAULT, CaptureSettings, PolygonSettings, SessionSettings
from m17_platform.sources.polygon_ws import (
    EVENT_OF_TABLE,
    Decoder,
    WireFormatError,
    channel,
    parse_frame,
)
from m17_platform.sources.polygon_ws_fields import short_repr

log = logging.getLogger("m17.capture")

# (underlying, expiration or None for every expiration) -> OCC symbols listed
ContractLister = Callable[[str, dt.date | None], list[str]]
OPENING_GAP_REASON = "opening: the options feed was not subscribed until its first subscription was acknowledged"


class RestContracts:
    """Listed contracts from ``GET /v3/reference/options/contracts`` with the official
    ``massive`` client (the replay server answers the same endpoint).

    Parameters
    ----------
    api_key : sent as the client's bearer header, nowhere else
    base_url : REST base (``$M17_REST_BASE_URL`` or Polygon's)
    polygon : PolygonSettings
        ``contracts_page_limit`` (rows per page), ``timeout_seconds`` (s).
    """

    def __init__(self, api_key: str, base_url: str, polygon: PolygonSettings = DEFAULT.polygon) -> None:
        from massive import RESTClient

        self._client = RESTClient(api_key=api_key, base=base_url.rstrip("/"), retries=1,
                                  connect_timeout=polygon.timeout_seconds, read_timeout=polygon.timeout_seconds)
        self._limit = polygon.contracts_page_limit

    def __call__(self, underlying: str, expiration: dt.date | None) -> list[str]:
        params: dict = {"underlying_ticker": underlying, "limit": self._limit}
        if expiration is not None:
            params["expiration_date"] = expiration.isoformat()
        return sorted({c.ticker for c in self._client.list_options_contracts(**params) if c.ticker})


class Capture:
    """A running capture of one or more underlyings.

    Parameters
    ----------
    underlyings : tickers (their stock trades and quotes, and their options)
    urls : feed -> websocket URL (``stocks``, ``options``)
    api_key : Polygon / Massive key (sent in the ``auth`` action only)
    zone : the landing zone (its lock held for the capture's life)
    contracts : lists an underlying's contracts (:class:`RestContracts` in production)
    all_contracts : subscribe every listed contract instead of the ATM ± N 0DTE window
    settings, polygon, sessions : CaptureSettings (windows, batches, backoff),
        PolygonSettings (option roots, quote size units), SessionSettings (time zone)
    metrics : CaptureMetrics, optional
    rng : random.Random, optional
        Reconnect jitter.
    """

    def __init__(self, underlyings: Iterable[str], *, urls: dict[str, str], api_key: str, zone: LandingZone,
                 contracts: ContractLister, all_contracts: bool = False,
                 settings: CaptureSettings = DEFAULT.capture, polygon: PolygonSettings = DEFAULT.polygon,
                 sessions: SessionSettings = DEFAULT.sessions, metrics: CaptureMetrics | None = None,
                 rng: random.Random | None = None) -> None:
        self.underlyings = tuple(underlyings)
        self.settings = settings
        self.zone = zone
        self.metrics = metrics or CaptureMetrics()
        self.decoder = Decoder(self.underlyings, polygon=polygon, sessions=sessions, capture=settings)
        self.batcher = MicroBatcher(zone, settings, self.metrics)
        self.all_contracts = all_contracts
        self._contracts = contracts
        self.managers = {u: StrikeManager(u, settings) for u in self.underlyings}
        self._listed: dict[str, set[str]] = {u: set() for u in self.underlyings}
        self._window: dict[str, frozenset[str]] = {u: frozenset() for u in self.underlyings}
        self._price_day: dict[str, dt.date] = {}
        self._refresh_now = asyncio.Event()
        self._logged_kinds: set[str] = set()
        self.rejected: dict[str, int] = {}
        rng = rng or random.Random()
        index_underlyings = set(polygon.index_underlyings)
        self.links = {
            feed: FeedLink(feed, urls[feed], api_key, self._on_frame, zone, self.metrics, settings, rng,
                           window_start=self._window_start)
            for feed in ("stocks", "options")
        }
        # an index (SPX, VIX) has no stock trades on Polygon's stocks feed: its channels stay
        # quiet there, and its strike window has no price to centre on (use all_contracts)
        self.links["stocks"].set_channels({channel(ev, u) for u in self.underlyings for ev in ("T", "Q")})
        if not all_contracts:
            for u in self.underlyings:
                if u in index_underlyings:
                    log.warning("%s is an index: the strike window needs its stock feed; use all_contracts", u)
        self._open_restart_gaps()
        # the options feed misses what passes before its first subscription is acknowledged
        # (the strike window needs a price and the contract list first): an opening gap,
        # unless a restart gap already covers it
        self.links["options"].open_gap(time.time_ns(), None, OPENING_GAP_REASON)

    # --- restart --------------------------------------------------------------------------

    def _open_restart_gaps(self) -> None:
        """A previous session acknowledged batches here: what it received after its last
        batch was lost with it, so each feed starts with a gap.

        The gap opens at the earliest of the feed's landing marks on its newest trade date
        (each table's and underlying's newest acknowledged event time): a flush writes its
        tables one after another, so a kill between two of them leaves one table's rows of
        that round landed and another's lost, and the lagging table's loss starts at its own
        mark. A quiet table makes the gap wider than the loss, never narrower.
        """
        entries = read_manifest(self.zone.root)
        for feed, link in self.links.items():
            tables = {t for t, (f, _ev) in EVENT_OF_TABLE.items() if f == feed}
            mine = [e for e in entries if e.table in tables]
            if mine:
                last = max(mine, key=lambda e: e.seq)
                written = int(dt.datetime.fromisoformat(last.written_at).timestamp() * 1e9)
                day = max(e.trade_date for e in mine)
                marks: dict[tuple[str, str], int] = {}
                for e in mine:
                    if e.trade_date == day:
                        key = (e.table, e.underlying)
                        marks[key] = max(marks.get(key, 0), e.last_ts_ns or 0)
                link.open_gap(written, min(marks.values()), "capture (re)started after a previous session")

    def _window_start(self, ts_ns: int) -> int | None:
        """First accepted event time (ns) of the trade date of ``ts_ns``: where a gap with no
        event before it (nothing received yet) starts in event time."""
        window = self.decoder.window(self.decoder.trade_date(ts_ns))
        return None if window is None else window[0]

    # --- frames -----------------------------------------------------------------------------

    def _reject(self, feed: str, exc: WireFormatError, text: str) -> None:
        self.metrics.malformed.labels(feed=feed, kind=exc.kind).inc()
        self.rejected[exc.kind] = self.rejected.get(exc.kind, 0) + 1
        self.zone.record_reject(feed, exc.kind, exc.detail, text, keep_chars=self.settings.reject_frame_chars)
        if exc.kind not in self._logged_kinds:
            self._logged_kinds.add(exc.kind)
            log.warning("%s feed: rejected %s (%s); further ones are counted, not logged", feed, exc.kind, exc.detail)

    def _status(self, feed: str, ev: dict, received_ns: int) -> None:
        status, message = ev.get("status"), ev.get("message")
        if status == "success" and isinstance(message, str) and message.startswith("subscribed to"):
            self.links[feed].subscription_acknowledged(received_ns)
        if status in ("success", "connected", "auth_success"):
            log.debug("%s feed status %s: %s", feed, status, message)
        else:
            log.warning("%s feed status %s: %s", feed, short_repr(status), short_repr(message))

    def _on_frame(self, feed: str, text: str, received_ns: int) -> tuple[int | None, int | None]:
        try:
            events = parse_frame(text, max_chars=self.settings.max_frame_chars, max_depth=self.settings.max_frame_depth)
        except WireFormatError as exc:
            self._reject(feed, exc, text)
            return None, None
        first = last = None
        for ev in events:
            if isinstance(ev, dict) and ev.get("ev") == "status":
                self._status(feed, ev, received_ns)
                continue
            try:
                decoded = self.decoder.decode(feed, ev)
            except WireFormatError as exc:
                self._reject(feed, exc, json.dumps(ev))
                continue
            self.batcher.add(decoded, received_ns)
            self.metrics.events.labels(feed=feed, event=ev["ev"]).inc()
            row = decoded.row
            ts = row.get("ts_ns", row.get("start_ns"))
            first = ts if first is None else first
            last = ts
            if feed == "stocks" and decoded.table in ("stock_trades", "stock_quotes"):
                self._on_underlying(decoded.table, row, decoded.trade_date)
        if self.batcher.held >= self.settings.batch_events:
            self.batcher.flush()
        return first, last

    # --- the strike window ----------------------------------------------------------------

    def _on_underlying(self, table: str, row: dict, day: dt.date) -> None:
        if self.all_contracts:
            return
        underlying = row["underlying"]
        if table == "stock_trades":
            price = row["price"]
        else:
            bid, ask = row["bid"], row["ask"]
            if not bid or not ask or bid <= 0 or ask < bid:
                return
            price = (bid + ask) / 2
        if self._price_day.get(underlying) != day:
            self._price_day[underlying] = day
            self._refresh_now.set()
        change = self.managers[underlying].on_price(price, row["ts_ns"])
        if change is not None:
            self._apply(underlying, change)

    def _apply(self, underlying: str, change: WindowChange) -> None:
        self._window[underlying] = change.window
        log.info("%s window %s around %.2f (ATM %.2f): +%d -%d contracts", underlying, change.reason,
                 change.center, change.atm_strike, len(change.add), len(change.remove))
        self._set_option_channels()

    def _set_option_channels(self) -> None:
        symbols: set[str] = set()
        for u in self.underlyings:
            symbols |= self._listed[u] if self.all_contracts else set(self._window[u])
        self.links["options"].set_channels({channel(ev, s) for s in symbols for ev in ("T", "Q")})
        self.metrics.subscribed_contracts.set(len(symbols))

    async def _refresh_contracts(self, stop: asyncio.Event) -> None:
        """Reload the listed contracts every ``contract_refresh_seconds`` (and at once when an
        underlying's trade date changes); a failure keeps the last list and is counted."""
        while not stop.is_set():
            for u in self.underlyings:
                day = None if self.all_contracts else self._price_day.get(u)
                if not self.all_contracts and day is None:
                    continue
                try:
                    listed = await asyncio.to_thread(self._contracts, u, day)
                except Exception as exc:  # noqa: BLE001 - any failure keeps the last list; the gauge shows its age
                    self.metrics.refresh_failures.inc()
                    log.warning("%s contract list not refreshed: %s", u, type(exc).__name__)
                    continue
                self.metrics.contracts_refreshed()
                self._listed[u] = set(listed)
                if self.all_contracts:
                    self._set_option_channels()
                else:
                    change = self.managers[u].set_contracts(listed, day)
                    if change is not None:
                        self._apply(u, change)
            self._refresh_now.clear()
            waiting = asyncio.ensure_future(self._refresh_now.wait())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiting, stopping}, timeout=self.settings.contract_refresh_seconds,
                               return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            stopping.cancel()

    async def _flush_when_due(self, stop: asyncio.Event) -> None:
        tick = self.settings.batch_seconds / 4  # a batch is written at most a quarter period late
        while not stop.is_set():
            if self.batcher.due():
                self.batcher.flush()
            try:
                await asyncio.wait_for(stop.wait(), timeout=tick)
            except TimeoutError:
                pass

    # --- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None, duration_s: float | None = None) -> dict:
        """Capture until ``stop`` is set (or ``duration_s`` seconds have passed), then write
        what is held and record open gaps.

        Returns
        -------
        dict
            ``batches`` written this session, ``events`` received, ``rejected`` per kind,
            ``connections`` per feed.

        Raises
        ------
        AuthFailed
            When a feed refuses the key (after writing what was held).
        """
        stop = stop or asyncio.Event()
        first_seq = self.zone.next_seq
        tasks = [asyncio.create_task(link.run(stop), name=f"feed-{feed}") for feed, link in self.links.items()]
        tasks += [asyncio.create_task(self._refresh_contracts(stop), name="contracts"),
                  asyncio.create_task(self._flush_when_due(stop), name="batches")]
        stopper = asyncio.create_task(asyncio.wait_for(stop.wait(), timeout=duration_s)) if duration_s else None
        try:
            pending = set(tasks) | ({stopper} if stopper else set())
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()
        finally:
            stop.set()
            for link in self.links.values():
                await link.close()
            await asyncio.gather(*tasks, return_exceptions=True)
            if stopper is not None:
                stopper.cancel()
            self.batcher.flush()
            for link in self.links.values():
                link.finish()
        events = sum(s.value for m in self.metrics.events.collect() for s in m.samples if s.name.endswith("_total"))
        return {"batches": self.zone.next_seq - first_seq, "events": int(events), "rejected": dict(self.rejected),
                "connections": {f: link.connections for f, link in self.links.items()}}

