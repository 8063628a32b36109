"""Micro-batching: decoded events are held per table and partition and written as one
Parquet batch each, every ``batch_seconds`` or as soon as ``batch_events`` are held.

What the batcher holds is what a crash loses; once :meth:`MicroBatcher.flush` returns,
every event it held is in an acknowledged batch of the landing zone.
"""

from __future__ import annotations

import time
from collections import defaultdict

from m17_platform.capture.landing import BatchEntry, LandingZone
from m17_platform.capture.metrics import CaptureMetrics
from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT, CaptureSettings
from m17_platform.sources.polygon_ws import Decoded, frame_of

NS_PER_S = 1_000_000_000


class MicroBatcher:
    """Holds decoded events until they are written.

    Parameters
    ----------
    zone : LandingZone
    settings : CaptureSettings
        ``batch_seconds`` (s) and ``batch_events`` (events).
    metrics : CaptureMetrics, optional
    """

    def __init__(self, zone: LandingZone, settings: CaptureSettings = DEFAULT.capture,
                 metrics: CaptureMetrics | None = None) -> None:
        self.zone = zone
        self.settings = settings
        self.metrics = metrics
        self._rows: dict[tuple[str, PartitionRef], list[dict]] = defaultdict(list)
        self._held = 0
        self._first_recv_ns: int | None = None

    @property
    def held(self) -> int:
        """Events received and not yet written (events)."""
        return self._held

    def add(self, event: Decoded, received_ns: int | None = None) -> None:
        """Hold one decoded event (``received_ns``: wall clock it arrived, ns)."""
        self._rows[(event.table, PartitionRef(event.trade_date, event.row["underlying"]))].append(event.row)
        self._held += 1
        if self._first_recv_ns is None:
            self._first_recv_ns = received_ns if received_ns is not None else time.time_ns()

    def due(self, now_ns: int | None = None) -> bool:
        """Whether a batch should be written now (held events reached ``batch_events``, or
        the oldest held event is ``batch_seconds`` old)."""
        if not self._held:
            return False
        if self._held >= self.settings.batch_events:
            return True
        now = time.time_ns() if now_ns is None else now_ns
        return now - (self._first_recv_ns or now) >= self.settings.batch_seconds * NS_PER_S

    def flush(self) -> list[BatchEntry]:
        """Write every held event: one acknowledged batch per table and partition, in
        arrival order within each; returns the manifest entries."""
        entries = []
        first = self._first_recv_ns
        for (table, ref), rows in sorted(self._rows.items(), key=lambda kv: (kv[0][1].trade_date, kv[0][1].underlying, kv[0][0])):
            entry = self.zone.write_batch(table, ref, frame_of(table, rows))
            entries.append(entry)
            if self.metrics is not None:
                self.metrics.batches.labels(table=table).inc()
                self.metrics.batch_rows.labels(table=table).inc(entry.rows)
        if entries and self.metrics is not None and first is not None:
            self.metrics.batch_latency.observe((time.time_ns() - first) / NS_PER_S)
        self._rows.clear()
        self._held = 0
        self._first_recv_ns = None
        return entries
