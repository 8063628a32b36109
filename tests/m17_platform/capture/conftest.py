"""Fixtures for capture tests: the real 2016-06-01 VIX sample in a lake, a replay server
of it on 127.0.0.1, and a capture running in a thread of its own."""

import asyncio
import dataclasses
import datetime as dt
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from m17_platform import ingest, schemas
from m17_platform.capture.landing import LandingZone, read_manifest
from m17_platform.capture.metrics import CaptureMetrics
from m17_platform.capture.replay import ReplayData, ReplayServer
from m17_platform.capture.runner import Capture, RestContracts
from m17_platform.lake import Lake, PartitionRef
from m17_platform.settings import DEFAULT
from m17_platform.sources.polygon_ws import TABLE_OF_EVENT, Decoder
from m17_platform.sources.samples import DEFAULT_SAMPLES_DIR, SamplesSource

KEY = "replay-key-0c41"
VIX_DAY = PartitionRef(dt.date(2016, 6, 1), "VIX")
CAPTURED = tuple(TABLE_OF_EVENT.values())
# fast batches and reconnects for tests; every other number stays the platform's
FAST = dataclasses.replace(DEFAULT.capture, batch_seconds=0.2, backoff_initial_seconds=0.05,
                           backoff_max_seconds=0.2, auth_timeout_seconds=5.0, metrics_port=0)


@pytest.fixture(scope="session")
def vix_lake(tmp_path_factory) -> Lake:
    """The bundled 2016-06-01 VIX sample's captured tables, ingested once per session."""
    lake = Lake(tmp_path_factory.mktemp("vix") / "lake")
    source = SamplesSource(DEFAULT_SAMPLES_DIR)
    for table in CAPTURED:
        ingest.ingest_table(lake, source, table, VIX_DAY)
    return lake


def partition(lake: Lake, table: str, ref: PartitionRef = VIX_DAY) -> pl.DataFrame:
    return lake.read(schemas.table(table), ref)


class ReplayFixture:
    def __init__(self, lake: Lake, ref: PartitionRef, speed: float) -> None:
        self.server = ReplayServer(ReplayData.from_lake(lake, ref, Decoder([ref.underlying])),
                                   host="127.0.0.1", port=0, speed=speed)
        self.port = self.server.start_in_thread()
        self.urls = {feed: f"ws://127.0.0.1:{self.port}/{feed}" for feed in ("stocks", "options")}
        self.rest = f"http://127.0.0.1:{self.port}"


@pytest.fixture
def replay_of():
    servers = []

    def start(lake: Lake, ref: PartitionRef = VIX_DAY, speed: float = 0.0) -> ReplayFixture:
        fixture = ReplayFixture(lake, ref, speed)
        servers.append(fixture.server)
        return fixture

    yield start
    for server in servers:
        server.stop()


class CaptureThread:
    """A :class:`Capture` on its own event loop in a thread (as ``m17 capture`` runs it)."""

    def __init__(self, replay: ReplayFixture, root: Path, *, underlyings=("VIX",), all_contracts=True,
                 settings=FAST) -> None:
        self.zone = LandingZone(root)
        self.metrics = CaptureMetrics()
        self.capture = Capture(list(underlyings), urls=replay.urls, api_key=KEY, zone=self.zone,
                               contracts=RestContracts(KEY, replay.rest), all_contracts=all_contracts,
                               settings=settings, metrics=self.metrics)
        self.summary: dict | None = None
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def go():
            self._stop = asyncio.Event()
            self._ready.set()
            return await self.capture.run(self._stop)

        try:
            self.summary = self._loop.run_until_complete(go())
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()
            self.error = exc

    def stop(self) -> dict:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self.zone.close()
        if self.error is not None:
            raise self.error
        return self.summary


def landed_rows(root: Path) -> int:
    return sum(e.rows for e in read_manifest(root) if e.table in CAPTURED)


def missed_outside_gaps(want: pl.DataFrame, got: pl.DataFrame, gaps, feed: str = "options",
                        key: tuple[str, ...] = ("option_symbol", "ts_ns", "sequence")) -> pl.DataFrame:
    """Rows of ``want`` missing from ``got`` that no recorded gap of ``feed`` covers (a gap
    covers the event times from its last event before to its first after; an unknown edge
    is open): a capture's losses must all lie inside its recorded gaps."""
    missing = want.join(got, on=list(key), how="anti")
    in_a_gap = pl.lit(False)
    for gap in gaps:
        if gap.feed == feed:
            lo = gap.last_event_ts_ns if gap.last_event_ts_ns is not None else 0
            hi = gap.first_event_ts_ns if gap.first_event_ts_ns is not None else 2**62
            in_a_gap = in_a_gap | pl.col("ts_ns").is_between(lo, hi)
    return missing.filter(~in_a_gap)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)


class Kit:
    """The helpers above, handed to tests as a fixture (test modules cannot import a conftest)."""

    VIX_DAY = VIX_DAY
    CAPTURED = CAPTURED
    KEY = KEY
    FAST = FAST
    CaptureThread = CaptureThread
    partition = staticmethod(partition)
    landed_rows = staticmethod(landed_rows)
    missed_outside_gaps = staticmethod(missed_outside_gaps)
    wait_for = staticmethod(wait_for)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit
