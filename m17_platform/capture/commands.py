"""What ``m17 capture`` and ``m17 replay serve|record`` run (the CLI only parses arguments)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from m17_platform.capture import config
from m17_platform.settings import DEFAULT, CaptureSettings

log = logging.getLogger("m17.capture")


def capture_settings(overrides: Mapping[str, str]) -> CaptureSettings:
    """``DEFAULT.capture`` with ``KEY=VALUE`` overrides, each cast to the field's type.

    Raises
    ------
    ValueError
        Naming an unknown key or a value that does not fit the field.
    """
    fields = {f.name: f for f in dataclasses.fields(CaptureSettings)}
    changes = {}
    for key, text in overrides.items():
        if key not in fields:
            raise ValueError(f"unknown capture setting {key!r}; known: {sorted(fields)}")
        current = getattr(DEFAULT.capture, key)
        try:
            changes[key] = type(current)(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"capture setting {key}={text!r}: {exc}") from None
    return dataclasses.replace(DEFAULT.capture, **changes)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


def run_capture(underlyings: list[str], *, all_contracts: bool, landing_root: str | None, duration_s: float | None,
                settings: CaptureSettings) -> int:
    """``m17 capture``: connect to the feeds and land micro-batches until SIGINT / SIGTERM
    (or ``duration_s``); prints a JSON summary on stdout. Returns the exit status.

    The key is ``$POLYGON_API_KEY``; URLs ``$M17_STOCKS_WS_URL`` / ``$M17_OPTIONS_WS_URL``;
    contracts from ``$M17_REST_BASE_URL``; metrics on ``settings.metrics_host:metrics_port``.
    """
    from m17_platform.capture.landing import LandingZone
    from m17_platform.capture.metrics import CaptureMetrics
    from m17_platform.capture.runner import Capture, RestContracts

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    key = config.api_key()
    if not key:
        print(f"m17 capture: set {config.API_KEY_HINT} (the replay server accepts any non-empty key)", file=sys.stderr)
        return 2
    root = config.landing_root(landing_root, settings=settings)
    metrics = CaptureMetrics()
    server, _thread = metrics.serve(settings.metrics_host, settings.metrics_port)
    urls = config.ws_urls(settings=settings)
    print(f"m17 capture: {','.join(underlyings)} from {urls['stocks']} and {urls['options']} into {root}; "
          f"metrics on http://{settings.metrics_host}:{server.server_port}/metrics", file=sys.stderr, flush=True)

    async def main() -> dict:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        with LandingZone(root) as zone:
            if any(zone.recovery.values()):
                log.warning("landing zone recovered: %s", zone.recovery)
            capture = Capture(
                underlyings, urls=urls, api_key=key, zone=zone, all_contracts=all_contracts,
                contracts=RestContracts(key, config.rest_base_url()), settings=settings, metrics=metrics,
            )
            summary = await capture.run(stop, duration_s=duration_s)
            summary["recovery"] = zone.recovery
            summary["next_seq"] = zone.next_seq
            return summary

    try:
        summary = asyncio.run(main())
    finally:
        server.shutdown()
    print(json.dumps(summary, sort_keys=True))
    return 0


def _served_partition(partition: str | None, lake_root: str | None):
    """The lake and partition ``replay serve --partition`` names, if it has a raw table the
    feeds serve; else one line saying what is wrong (naming the partition and the lake root)."""
    from m17_platform import schemas
    from m17_platform.capture.replay import FEED_TABLES
    from m17_platform.errors import LakeError
    from m17_platform.lake import Lake, PartitionRef

    try:
        lake = Lake(lake_root or DEFAULT.lake.root)
    except LakeError as exc:
        return None, None, f"partition {partition!r}: {exc}"
    day, sep, underlying = (partition or "").partition("|")
    try:
        if not sep:
            raise ValueError("expected DATE|UNDERLYING, e.g. 2016-06-01|VIX")
        try:
            trade_date = dt.date.fromisoformat(day.strip())
        except ValueError:
            raise ValueError(f"date {day!r} is not YYYY-MM-DD") from None
        ref = PartitionRef(trade_date, underlying.strip())
    except ValueError as exc:
        return lake, None, f"partition {partition!r} (lake root {lake.root}): {exc}"
    tables = [t for feed_tables in FEED_TABLES.values() for t in feed_tables]
    if not any(lake.exists(schemas.table(t), ref) for t in tables):
        return lake, None, f"partition {ref} does not exist under lake root {lake.root} (none of {', '.join(tables)})"
    return lake, ref, None


def run_replay_serve(*, in_dir: str | None, partition: str | None, lake_root: str | None, bind: str,
                     speed: float, underlyings: list[str] | None) -> int:
    """``m17 replay serve``: serve a recording folder (``--in-dir``) or a lake partition
    (``--partition DATE|UNDERLYING``) on ``bind`` (host:port) until SIGINT / SIGTERM.

    Returns 2, with one line on stderr, for a partition that is malformed or has no raw
    table under the lake root, a folder that is not a readable recording, or a bind
    address that is not HOST:PORT; else 0 when stopped.
    """
    from m17_platform.capture.replay import ReplayData, ReplayServer
    from m17_platform.errors import SourceFormatError
    from m17_platform.sources.polygon_ws import Decoder

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    host, _, port = bind.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        print(f"m17 replay serve: --bind {bind!r} is not HOST:PORT (e.g. 127.0.0.1:9000)", file=sys.stderr)
        return 2
    if in_dir:
        try:
            data = ReplayData.from_recording(Path(in_dir))
        except (FileNotFoundError, SourceFormatError) as exc:
            print(f"m17 replay serve: {exc}", file=sys.stderr)
            return 2
        what = in_dir
    else:
        lake, ref, problem = _served_partition(partition, lake_root)
        if ref is None:
            print(f"m17 replay serve: {problem}", file=sys.stderr)
            return 2
        data = ReplayData.from_lake(lake, ref, Decoder(underlyings or [ref.underlying]))
        what = f"lake partition {ref} of {lake.root}"
    server = ReplayServer(data, host=host or "127.0.0.1", port=int(port), speed=speed)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        task = asyncio.create_task(server.serve())
        await asyncio.to_thread(server.serving.wait, 10)
        print(f"m17 replay: serving {what} on ws://{host}:{port}/stocks and /options at speed {speed or 'max'}",
              file=sys.stderr, flush=True)
        await stop.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    return 0


def run_replay_record(*, out_dir: str, subscriptions: dict[str, list[str]], duration_s: float | None) -> int:
    """``m17 replay record``: write what the live feeds send for ``subscriptions`` into
    ``out_dir`` until SIGINT / SIGTERM (or ``duration_s``)."""
    from m17_platform.capture.recording import record

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    key = config.api_key()
    if not key:
        print(f"m17 replay record: set {config.API_KEY_HINT}", file=sys.stderr)
        return 2

    async def main() -> dict:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        urls = {feed: url for feed, url in config.ws_urls().items() if subscriptions.get(feed)}
        return await record(urls, key, subscriptions, Path(out_dir), duration_s=duration_s, stop=stop)

    print(json.dumps(asyncio.run(main()), sort_keys=True, default=str))
    return 0
