"""``m17 replay record``: what a live connection receives, written to a recording folder
that ``m17 replay serve --in-dir`` plays back (layout in :mod:`m17_platform.capture.replay`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TextIO

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from m17_platform.capture.replay import RECORDING_META, _check_feed, recording_file
from m17_platform.errors import M17Error
from m17_platform.settings import DEFAULT
from m17_platform.sources.polygon_ws import FEEDS, WireFormatError, parse_frame

log = logging.getLogger("m17.replay")


class RecordError(M17Error, RuntimeError):
    """A feed refused the key or did not complete the handshake (names the feed and
    URL, never the key)."""


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


async def _log_in(ws: ClientConnection, feed: str, url: str, api_key: str, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            await ws.send(json.dumps({"action": "auth", "params": api_key}))
            while True:
                for ev in parse_frame(await ws.recv()):
                    status = ev.get("status") if isinstance(ev, dict) and ev.get("ev") == "status" else None
                    if status == "auth_success":
                        return
                    if status == "auth_failed":
                        raise RecordError(f"{feed} feed {url}: the server refused the API key (auth_failed)")
    except TimeoutError:
        raise RecordError(f"{feed} feed {url}: no auth_success within {timeout_s} s") from None
    except ConnectionClosed as exc:
        raise RecordError(f"{feed} feed {url}: connection closed during authentication ({exc})") from None
    except WireFormatError as exc:
        raise RecordError(f"{feed} feed {url}: unreadable reply during authentication ({exc.kind})") from None


async def _record_feed(feed: str, ws: ClientConnection, out: TextIO, counts: dict[str, int]) -> None:
    try:
        async for message in ws:
            text = message if isinstance(message, str) else message.decode("utf-8", "replace")
            out.write(json.dumps({"recv_ns": time.time_ns(), "frame": text}) + "\n")
            out.flush()
            counts[feed] += 1
    except ConnectionClosedError as exc:
        log.warning("%s feed: connection lost (%s); its recording ends here", feed, exc)


async def record(urls: Mapping[str, str], api_key: str, subscriptions: Mapping[str, Sequence[str]],
                 out_dir: str | Path, *, duration_s: float | None = None, stop: asyncio.Event | None = None,
                 auth_timeout_s: float = DEFAULT.capture.auth_timeout_seconds) -> dict[str, int]:
    """Record what websocket feeds send into a recording folder (layout in the module docstring).

    Connects to each feed, authenticates, then opens ``<out_dir>/<feed>.jsonl``,
    subscribes ``subscriptions[feed]`` and appends every frame received from then on
    (subscription statuses included) with its receive time (``time.time_ns()``),
    flushed per line. A feed whose connection closes stops recording (no reconnect).
    ``recording.json`` is written at the end, whatever ends the recording.

    Parameters
    ----------
    urls : feed -> websocket URL (``stocks``, ``options``)
    api_key : str
        Sent in the ``auth`` action only; never logged or written.
    subscriptions : feed -> channels (``T.SPY``, ``Q.*``, ...)
    out_dir : str | Path
        The recording folder (created); it must not hold a recording already.
    duration_s : float, optional
        Stop after this long (s).
    stop : asyncio.Event, optional
        Stop when set. Without it or ``duration_s``, the recording lasts until every
        connection closes or the task is cancelled.
    auth_timeout_s : float
        Longest wait for the handshake of each feed (s).

    Returns
    -------
    dict of feed -> int
        Frames recorded per feed.

    Raises
    ------
    RecordError
        If a feed refuses the key or does not complete the handshake (nothing is written).
    FileExistsError
        If ``out_dir`` already holds a recording.
    ValueError
        For an unknown feed or an empty key.
    OSError
        If a feed cannot be reached.
    """
    for feed in urls:
        _check_feed(feed)
    if not api_key:
        raise ValueError("record needs a non-empty API key")
    out = Path(out_dir)
    clash = [p.name for p in (out / RECORDING_META, *(recording_file(out, f) for f in FEEDS)) if p.exists()]
    if clash:
        raise FileExistsError(f"{out} already holds a recording ({', '.join(clash)}); record into a new folder")
    counts = dict.fromkeys(urls, 0)
    async with AsyncExitStack() as stack:
        links: dict[str, ClientConnection] = {}
        for feed, url in urls.items():
            links[feed] = await stack.enter_async_context(connect(url, max_size=None, open_timeout=auth_timeout_s))
            await _log_in(links[feed], feed, url, api_key, auth_timeout_s)
        out.mkdir(parents=True, exist_ok=True)
        started = _utc_now()
        feeds = []
        for feed, ws in links.items():
            lines = stack.enter_context(recording_file(out, feed).open("w", encoding="utf-8"))
            channels = ",".join(subscriptions.get(feed, ()))
            if channels:
                await ws.send(json.dumps({"action": "subscribe", "params": channels}))
            feeds.append(_record_feed(feed, ws, lines, counts))
        recording = asyncio.gather(*feeds)
        stopped = asyncio.ensure_future(stop.wait()) if stop is not None else asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait([recording, stopped], timeout=duration_s, return_when=asyncio.FIRST_COMPLETED)
            if recording.done():
                recording.result()
        finally:
            recording.cancel()
            stopped.cancel()
            await asyncio.gather(recording, stopped, return_exceptions=True)
            meta = {"feeds": list(urls), "urls": dict(urls),
                    "subscriptions": {feed: list(subscriptions.get(feed, ())) for feed in urls},
                    "started": started, "ended": _utc_now(), "frames": counts}
            tmp = out / f".{RECORDING_META}.tmp"
            tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, out / RECORDING_META)
    log.info("recorded %s into %s", ", ".join(f"{n} {feed} frames" for feed, n in counts.items()), out)
    return counts
