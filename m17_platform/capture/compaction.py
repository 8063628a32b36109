"""Landing captured micro-batches into raw partitions, each batch exactly once.

:class:`LandingSource` is the :class:`~m17_platform.sources.base.Source` of the raw
assets when ``market_data.kind`` is ``capture``. For one raw table of one partition it
yields the rows the lake already holds from earlier landings, then every acknowledged
batch of that table and partition whose id is not in the partition's ledger
(``landed_batches.txt``, written beside the Parquet in the same atomic swap), each
checked against its manifest sha256. The lake sorts the result by the table's sort
key (ties keep arrival order), so every landing leaves the sorted partition the
enrichment expects: a rerun, or a second request for the same batches, finds them in
the ledger and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from m17_platform import schemas
from m17_platform.capture.landing import BatchEntry, read_gaps, read_manifest, verify_batch
from m17_platform.lake import Lake, PartitionRef
from m17_platform.settings import DEFAULT
from m17_platform.sources.base import TableChunk
from m17_platform.sources.polygon_ws import TABLE_OF_EVENT

LEDGER = "landed_batches.txt"
CAPTURE_SOURCE = "capture"
CAPTURED_TABLES = tuple(TABLE_OF_EVENT.values())


def read_ledger(lake: Lake, table: str, ref: PartitionRef) -> dict[str, tuple[str, int]]:
    """Batch id -> (sha256, rows) of the batches partition ``ref`` of ``table`` holds
    (empty if it was not landed from a capture)."""
    spec = schemas.table(table)
    manifest = lake.manifest(spec, ref)
    path = lake.partition_dir(spec, ref) / LEDGER
    if manifest is None or manifest.source != CAPTURE_SOURCE or not path.exists():
        return {}
    ledger = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            bid, sha, rows = line.split()
            ledger[bid] = (sha, int(rows))
    return ledger


def pending_batches(landing_root: str | Path, lake: Lake, ref: PartitionRef,
                    tables: tuple[str, ...] = CAPTURED_TABLES) -> list[BatchEntry]:
    """Acknowledged batches of partition ``ref`` not yet in its tables' ledgers."""
    entries = read_manifest(landing_root)
    out = []
    for table in tables:
        done = read_ledger(lake, table, ref)
        out += [e for e in entries if e.table == table and e.ref == ref and e.batch_id not in done]
    return sorted(out, key=lambda e: e.seq)


class LandingSource:
    """Raw partitions from a capture's landing zone (see the module doc).

    Parameters
    ----------
    landing_root : path of the landing zone
    lake : the lake the partitions are written to (its current partition and ledger
        are read back)
    chunk_rows : rows per chunk when re-reading the partition already landed

    Attributes
    ----------
    name : ``capture`` (the partitions' manifest source)
    """

    name = CAPTURE_SOURCE

    def __init__(self, landing_root: str | Path, lake: Lake, *, chunk_rows: int = 2_000_000) -> None:
        self.landing_root = Path(landing_root)
        self.lake = lake
        self.chunk_rows = chunk_rows
        self._ledgers: dict[tuple[str, PartitionRef], dict[str, tuple[str, int]]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.landing_root)!r})"

    def tables(self) -> tuple[str, ...]:
        """The raw tables a capture fills (stock and option trades and quotes)."""
        return CAPTURED_TABLES

    def chunks(self, table: str, ref: PartitionRef) -> Iterator[TableChunk]:
        """The partition's rows: what was landed before, then the new batches in sequence order.

        Stats per chunk: ``rows_kept`` (rows of earlier landings), ``batches_landed`` and
        ``batch_rows`` (new batches), ``batches_skipped`` (already in the ledger),
        ``batches_total``, ``gaps`` (recorded feed gaps of the partition's day).

        Raises
        ------
        LandingError
            If a batch file is missing or its sha256 differs from the manifest.
        """
        spec = schemas.table(table)
        ledger = read_ledger(self.lake, table, ref)
        if ledger:
            for frame in self.lake.iter_batches(spec, ref, max_rows=self.chunk_rows):
                yield TableChunk(table, frame, {"rows_kept": frame.height})
        entries = [e for e in read_manifest(self.landing_root) if e.table == table and e.ref == ref]
        day = ref.trade_date.isoformat()
        # a gap counts for the days its event-time span touches (wall clock where an edge is unknown)
        gaps = [g for g in read_gaps(self.landing_root)
                if _trade_day(g.last_event_ts_ns or g.start_ns) <= day
                <= _trade_day(g.first_event_ts_ns or g.end_ns or g.start_ns)]
        yield TableChunk(table, schemas.empty_frame(spec), {"batches_total": len(entries), "gaps": len(gaps)})
        skipped = sum(entry.batch_id in ledger for entry in entries)
        if skipped:
            yield TableChunk(table, schemas.empty_frame(spec), {"batches_skipped": skipped})
        for entry in entries:
            if entry.batch_id in ledger:
                continue
            frame = pl.read_parquet(verify_batch(self.landing_root, entry))
            ledger[entry.batch_id] = (entry.sha256, entry.rows)
            yield TableChunk(table, frame, {"batches_landed": 1, "batch_rows": frame.height})
        self._ledgers[(table, ref)] = ledger

    def extras(self, table: str, ref: PartitionRef) -> Mapping[str, str]:
        """The ledger file written beside the partition (read after :meth:`chunks` is consumed)."""
        ledger = self._ledgers.get((table, ref), {})
        lines = ["# batch_id sha256 rows: the capture batches this partition holds, each once"]
        lines += [f"{bid} {sha} {rows}" for bid, (sha, rows) in sorted(ledger.items())]
        return {LEDGER: "\n".join(lines) + "\n"}


def _trade_day(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=ZoneInfo(DEFAULT.sessions.timezone)).date().isoformat()
