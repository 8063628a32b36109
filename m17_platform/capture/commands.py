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
        print(f"m17 capture: set {config.API_KEY_ENV} (the replay server accepts any non-empty key)", file=sys.stderr)
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


def run_replay_serve(*, in_dir: str | None, partition: str | None, lake_root: str | None, bind: str,
                     speed: float, underlyings: list[str] | None) -> int:
    """``m17 replay serve``: serve a recording folder (``--in-dir``) or a lake partition
    (``--partition DATE|UNDERLYING``) on ``bind`` (host:port) until SIGINT / SIGTERM."""
    from m17_platform.capture.replay import ReplayData, ReplayServer
    from m17_platform.lake import Lake, PartitionRef
    from m17_platform.sources.polygon_ws import Decoder

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    host, _, port = bind.rpartition(":")
    if in_dir:
        data = ReplayData.from_recording(Path(in_dir))
        what = in_dir
    else:
        day, _, underlying = (partition or "").partition("|")
        ref = PartitionRef(dt.date.fromisoformat(day), underlying)
        lake = Lake(lake_root or DEFAULT.lake.root)
        data = ReplayData.from_lake(lake, ref, Decoder(underlyings or [underlying]))
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
        print(f"m17 replay record: set {config.API_KEY_ENV}", file=sys.stderr)
        return 2

    async def main() -> dict:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        urls = {feed: url for feed, url in config.ws_urls().items() if subscriptions.get(feed)}
        return await record(urls, key, subscriptions, Path(out_dir), duration_s=duration_s, stop=stop)

    print(json.dumps(asyncio.run(main()), sort_keys=True, default=str))
    return 0
