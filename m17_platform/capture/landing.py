"""The landing zone: micro-batches the capture writes, exactly once, and their manifest.

Layout under the landing root::

    manifest.jsonl                  one line per batch, appended and fsynced after the batch is in place
    batches/trade_date=D/underlying=U/table=T/<batch_id>.parquet
    gaps.jsonl                      one line per stretch a feed did not receive (start, end, feed, last/first event time)
    rejects.jsonl                   every malformed, unknown or out-of-range frame / event, with its kind and reason
    capture.lock                    held by the one capture writing here
    .tmp/                           batches being written (never read)

A batch is written under a temporary name, fsynced, renamed into ``batches/`` (and the
folder fsynced), and only then appended to the manifest, whose line is fsynced: a
batch is *acknowledged* once its manifest line is on disk. A crash at any point
leaves either no trace of the batch (its temporary file is discarded on restart), or
a complete file that the restart adopts into the manifest (its sha256 computed from
the bytes), or a torn last manifest line that the restart cuts off before adopting
the file. The sequence continues from the highest batch on disk, so batch ids are
never reused.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from m17_platform.errors import M17Error
from m17_platform.lake import PartitionRef, file_sha256, fsync_dir
from m17_platform.sources.polygon_ws import LANDING_TABLES

MANIFEST = "manifest.jsonl"
GAPS = "gaps.jsonl"
REJECTS = "rejects.jsonl"
LOCK = "capture.lock"
BATCHES = "batches"
TMP = ".tmp"
QUARANTINE = "quarantine"
_BATCH_FILE = re.compile(r"^(?P<seq>\d{12})\.parquet$")


class LandingError(M17Error, RuntimeError):
    """The landing zone is locked by another capture, or a file in it is damaged (named)."""


def _append_line(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def batch_id(seq: int) -> str:
    """The id of batch ``seq`` (its 12-digit zero-padded sequence number)."""
    return f"{seq:012d}"


@dataclass(frozen=True)
class BatchEntry:
    """One manifest line: a Parquet micro-batch of one raw table for one partition.

    seq : sequence number, increasing by one per batch across restarts; batch_id : its
    12-digit spelling (the file name); table : raw table (or ``ws_aggregates``);
    trade_date / underlying : the partition; path : file path relative to the landing
    root; rows : row count; first_ts_ns / last_ts_ns : smallest and largest ``ts_ns``
    (ns since epoch, UTC; ``start_ns`` for aggregates); sha256 : hex digest of the file's
    bytes; bytes : file size; written_at : UTC ISO-8601 time the batch was acknowledged;
    recovered : the batch was complete on disk but unacknowledged at a crash, and was
    adopted on restart.
    """

    seq: int
    batch_id: str
    table: str
    trade_date: str
    underlying: str
    path: str
    rows: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    sha256: str
    bytes: int
    written_at: str
    recovered: bool = False

    @property
    def ref(self) -> PartitionRef:
        return PartitionRef(dt.date.fromisoformat(self.trade_date), self.underlying)


@dataclass(frozen=True)
class Gap:
    """A stretch a feed did not receive: the day's completeness is known from these.

    feed : ``stocks`` or ``options``; start_ns / end_ns : wall clock (ns since epoch,
    UTC) the connection was lost (or the capture started) and the subscription was
    restored, i.e. first acknowledged by the server (``end_ns`` None while it lasts,
    e.g. the capture stopped); last_event_ts_ns / first_event_ts_ns : event time of the
    last event before and the first after the gap (events in between were not
    received); where no event came before (the options feed's opening gap, before its
    first subscription), ``last_event_ts_ns`` is the first accepted time of the trade
    date (its extended session's start); reason : what ended the connection, ``capture
    (re)started ...`` or ``opening: ...``.
    """

    feed: str
    start_ns: int
    end_ns: int | None
    last_event_ts_ns: int | None
    first_event_ts_ns: int | None
    reason: str


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Complete lines of a JSON-lines file; a torn last line (a crash mid-append) is skipped."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                return
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise LandingError(f"{path}, line {number}: not a JSON record ({exc})") from None


def read_manifest(root: str | Path) -> list[BatchEntry]:
    """The acknowledged batches of a landing root, in sequence order (readers need no lock).

    Raises
    ------
    LandingError
        For a damaged line (other than a torn last line), naming the file and line.
    """
    path = Path(root) / MANIFEST
    entries = []
    for number, record in _read_jsonl(path):
        try:
            entries.append(BatchEntry(**record))
        except TypeError as exc:
            raise LandingError(f"{path}, line {number}: not a batch entry ({exc})") from None
    return sorted(entries, key=lambda e: e.seq)


def read_gaps(root: str | Path) -> list[Gap]:
    """The recorded feed gaps of a landing root, in the order they were recorded."""
    return [Gap(**record) for _, record in _read_jsonl(Path(root) / GAPS)]


def read_rejects(root: str | Path) -> list[dict]:
    """The rejected frames / events: ``feed``, ``kind``, ``detail``, ``frame`` (text, cut to
    ``CaptureSettings.reject_frame_chars``), ``frame_chars`` (its full length; absent in
    older files), ``received_ns``."""
    return [record for _, record in _read_jsonl(Path(root) / REJECTS)]


def verify_batch(root: str | Path, entry: BatchEntry) -> Path:
    """The batch's file, after checking its bytes against the manifest's sha256.

    Raises
    ------
    LandingError
        If the file is missing or its checksum differs, naming the file.
    """
    path = Path(root) / entry.path
    if not path.exists():
        raise LandingError(f"batch {entry.batch_id}: {path} is missing")
    digest = file_sha256(path)
    if digest != entry.sha256:
        raise LandingError(f"batch {entry.batch_id}: {path} has sha256 {digest}, the manifest says {entry.sha256}")
    return path


class LandingZone:
    """The writer's side of a landing root (one capture at a time, by an exclusive lock).

    Parameters
    ----------
    root : path
        The landing root (created if missing).

    Raises
    ------
    LandingError
        If another process holds the lock, or a manifest line is damaged.

    Attributes
    ----------
    next_seq : int
        Sequence number of the next batch.
    recovery : dict[str, int]
        What opening repaired: ``manifest_lines_cut`` (a torn last line),
        ``batches_adopted`` (complete files that were not acknowledged),
        ``partial_batches_discarded`` (temporary files of a batch being written),
        ``batches_quarantined`` (unreadable files moved to ``quarantine/``).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        for sub in (self.root, self.root / BATCHES, self.root / TMP):
            sub.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.root / LOCK, "a+")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise LandingError(f"{self.root} is in use by another capture (lock {self.root / LOCK})") from None
        self.recovery = {"manifest_lines_cut": 0, "batches_adopted": 0, "partial_batches_discarded": 0,
                         "batches_quarantined": 0}
        self.next_seq = self._recover()

    def close(self) -> None:
        """Release the lock."""
        if not self._lock.closed:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self) -> LandingZone:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- recovery ---------------------------------------------------------------------

    def _cut_torn_manifest_line(self) -> None:
        path = self.root / MANIFEST
        if not path.exists():
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(path, "rb+") as fh:
                fh.truncate(keep)
                os.fsync(fh.fileno())
            self.recovery["manifest_lines_cut"] += 1

    def _recover(self) -> int:
        self._cut_torn_manifest_line()
        for tmp in (self.root / TMP).iterdir():
            tmp.unlink()
            self.recovery["partial_batches_discarded"] += 1
        entries = read_manifest(self.root)
        known = {e.path for e in entries}
        top = max((e.seq for e in entries), default=0)
        orphans = []
        for path in (self.root / BATCHES).rglob("*.parquet"):
            rel = path.relative_to(self.root).as_posix()
            m = _BATCH_FILE.match(path.name)
            if rel in known or m is None:
                continue
            orphans.append((int(m["seq"]), path))
        for seq, path in sorted(orphans):
            top = max(top, seq)
            try:
                frame = pl.read_parquet(path)
            except Exception:  # noqa: BLE001 - any unreadable file is quarantined, not trusted
                dest = self.root / QUARANTINE / path.relative_to(self.root / BATCHES)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, dest)
                self.recovery["batches_quarantined"] += 1
                continue
            parts = dict(p.split("=", 1) for p in path.parent.relative_to(self.root / BATCHES).parts)
            entry = self._entry(seq, parts["table"], PartitionRef(dt.date.fromisoformat(parts["trade_date"]),
                                parts["underlying"]), path, frame, recovered=True)
            _append_line(self.root / MANIFEST, asdict(entry))
            self.recovery["batches_adopted"] += 1
        return top + 1

    # --- writing ----------------------------------------------------------------------

    def _entry(self, seq: int, table: str, ref: PartitionRef, path: Path, frame: pl.DataFrame,
               *, recovered: bool = False) -> BatchEntry:
        ts = "ts_ns" if "ts_ns" in frame.columns else "start_ns"
        lo = frame.get_column(ts).min() if frame.height else None
        hi = frame.get_column(ts).max() if frame.height else None
        return BatchEntry(
            seq=seq, batch_id=batch_id(seq), table=table, trade_date=ref.trade_date.isoformat(),
            underlying=ref.underlying, path=path.relative_to(self.root).as_posix(), rows=frame.height,
            first_ts_ns=lo, last_ts_ns=hi, sha256=file_sha256(path), bytes=path.stat().st_size,
            written_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), recovered=recovered,
        )

    def batch_path(self, seq: int, table: str, ref: PartitionRef) -> Path:
        """Where batch ``seq`` of ``table`` for partition ``ref`` lives."""
        return (self.root / BATCHES / f"trade_date={ref.trade_date.isoformat()}" / f"underlying={ref.underlying}"
                / f"table={table}" / f"{batch_id(seq)}.parquet")

    def write_batch(self, table: str, ref: PartitionRef, frame: pl.DataFrame) -> BatchEntry:
        """Write one micro-batch and acknowledge it in the manifest.

        Parameters
        ----------
        table : a landing table (:data:`m17_platform.sources.polygon_ws.LANDING_TABLES`)
        ref : the partition the rows belong to
        frame : rows with exactly the table's schema, in arrival order

        Returns
        -------
        BatchEntry
            The acknowledged manifest entry.

        Raises
        ------
        KeyError
            For a table that is not a landing table.
        """
        spec = LANDING_TABLES[table]
        seq = self.next_seq
        final = self.batch_path(seq, table, ref)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / TMP / f"{batch_id(seq)}.{table}.parquet"
        pq.write_table(frame.to_arrow().cast(spec.schema), tmp, compression="zstd")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.rename(tmp, final)
        fsync_dir(final.parent)
        entry = self._entry(seq, table, ref, final, frame)
        _append_line(self.root / MANIFEST, asdict(entry))
        self.next_seq = seq + 1
        return entry

    def record_gap(self, gap: Gap) -> None:
        """Append a feed gap (fsynced)."""
        _append_line(self.root / GAPS, asdict(gap))

    def record_reject(self, feed: str, kind: str, detail: str, frame: str, *, keep_chars: int | None = None) -> None:
        """Append a rejected frame or event with its kind and reason (fsynced): nothing is dropped unseen.

        ``keep_chars`` : keep at most this many characters of the frame's text (its full
        length is kept as ``frame_chars``); all of it when None.
        """
        kept = frame if keep_chars is None else frame[:keep_chars]
        _append_line(self.root / REJECTS, {"feed": feed, "kind": kind, "detail": detail, "frame": kept,
                                           "frame_chars": len(frame), "received_ns": time.time_ns()})
