"""The lake: hive-partitioned Parquet under one root, written atomically, with manifests.

Layout::

    <root>/<layer>/<table>/trade_date=YYYY-MM-DD/underlying=XYZ/part-00000.parquet
    <root>/<layer>/<table>/trade_date=YYYY-MM-DD/underlying=XYZ/_manifest.json
    <root>/.staging/                  partitions being written, and replaced ones being removed

A partition is written whole or not at all: the new partition is built in
``.staging`` (same filesystem), fsynced, then renamed into place; the partition it
replaces is first renamed aside, then deleted. A rerun of a partition therefore
replaces it (idempotent), and readers never see half a partition. If a process dies
between the two renames, the next write or :meth:`Lake.recover` puts the old
partition back.

Every table is a DuckDB view (``Lake.duckdb()``), hive keys ``trade_date`` (DATE) and
``underlying`` (VARCHAR) included.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from m17_platform.errors import LakeError
from m17_platform.schemas import ALL_TABLES, TableSchema, conform
from m17_platform.settings import DEFAULT as _DEFAULT_SETTINGS
from m17_platform.settings import IngestSettings

DEFAULT_INGEST = _DEFAULT_SETTINGS.ingest

MANIFEST_NAME = "_manifest.json"
CHECKS_NAME = "_checks.json"
PART_NAME = "part-00000.parquet"
STAGING = ".staging"


@dataclass(frozen=True)
class PartitionRef:
    """A lake partition: one trade date of one underlying."""

    trade_date: dt.date
    underlying: str

    def __post_init__(self) -> None:
        if not self.underlying or "/" in self.underlying or "=" in self.underlying:
            raise ValueError(f"invalid underlying {self.underlying!r} for a partition")

    @property
    def hive_path(self) -> str:
        return f"trade_date={self.trade_date.isoformat()}/underlying={self.underlying}"

    def __str__(self) -> str:
        return f"{self.trade_date.isoformat()}|{self.underlying}"


@dataclass(frozen=True)
class FileEntry:
    """One Parquet file of a partition: name, rows, bytes and sha256 (hex) of its bytes."""

    name: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a partition holds and where it came from (``_manifest.json``).

    rows : total rows; files : Parquet files with checksums; source : where the rows
    came from; written_at : UTC ISO-8601 write time; ts_min_ns / ts_max_ns : range of
    ``ts_ns`` (ns since epoch UTC) when the table has it; stats : counts the producer
    reported (malformed rows, flagged rows, ...).
    """

    table: str
    layer: str
    trade_date: str
    underlying: str
    rows: int
    files: list[FileEntry]
    source: str
    written_at: str
    sort_key: list[str]
    columns: dict[str, str]
    ts_min_ns: int | None = None
    ts_max_ns: int | None = None
    stats: dict[str, int | float | str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["files"] = [FileEntry(**f) for f in data["files"]]
        return cls(**data)

    @property
    def sha256(self) -> str:
        """Checksum of the partition: the first file's sha256 when there is one file."""
        if len(self.files) == 1:
            return self.files[0].sha256
        h = hashlib.sha256()
        for f in self.files:
            h.update(f.sha256.encode())
        return h.hexdigest()


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _key_order(a: tuple, b: tuple) -> int:
    """Compare two sort-key tuples as the lake orders them (ascending, nulls last):
    -1, 0 or 1."""
    for x, y in zip(a, b):
        if x == y:
            continue
        if x is None:
            return 1
        if y is None:
            return -1
        return -1 if x < y else 1
    return 0


def fsync_dir(path: Path) -> None:
    """fsync a folder, so a rename into it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Lake:
    """Partitioned Parquet tables under ``root`` (a local directory).

    Parameters
    ----------
    root : str | Path
        Lake root; created on first write.
    """

    def __init__(self, root: str | Path) -> None:
        root_str = str(root)
        if "://" in root_str and not root_str.startswith("file://"):
            raise LakeError(
                f"lake root {root_str!r}: object-store roots are not supported yet; use a local path "
                "(see docs/operations.md)"
            )
        self.root = Path(root_str.removeprefix("file://")).resolve()

    # --- paths -----------------------------------------------------------------------

    def table_dir(self, spec: TableSchema) -> Path:
        return self.root / spec.layer / spec.name

    def partition_dir(self, spec: TableSchema, ref: PartitionRef) -> Path:
        return self.table_dir(spec) / ref.hive_path

    def _staging(self) -> Path:
        path = self.root / STAGING
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- writing -----------------------------------------------------------------------

    def write(
        self,
        spec: TableSchema,
        ref: PartitionRef,
        frame: pl.DataFrame,
        *,
        source: str,
        stats: dict[str, int | float | str] | None = None,
        extras: Mapping[str, str] | None = None,
    ) -> Manifest:
        """Write ``frame`` as the whole partition ``ref`` of ``spec``, replacing any previous one.

        The rows are cast to the table's schema (:func:`m17_platform.schemas.conform`)
        and sorted by ``spec.sort_key`` (stable, so equal keys keep source order). The
        one-frame case of :meth:`write_chunks`.

        Parameters
        ----------
        spec : TableSchema
        ref : PartitionRef
        frame : polars.DataFrame
            The partition's rows, columns exactly ``spec.columns``.
        source : str
            Where the rows came from; recorded in the manifest.
        stats : dict, optional
            Producer's counts (malformed, flagged, ...); recorded in the manifest.
        extras : mapping of file name to text, optional
            Text files for operators written beside the Parquet in the same atomic swap
            (e.g. a plain-text summary to tail); names must not end in ``.parquet``.

        Returns
        -------
        Manifest
            The manifest written beside the data.

        Raises
        ------
        SchemaError
            If the rows do not fit the schema (nothing is written).
        LakeError
            If the partition cannot be put in place.
        """
        return self.write_chunks(spec, ref, [frame], source=source, stats=stats, extras=extras)

    def write_chunks(
        self,
        spec: TableSchema,
        ref: PartitionRef,
        chunks: Iterable[pl.DataFrame],
        *,
        source: str,
        stats: Mapping[str, int | float | str] | None = None,
        settings: IngestSettings = DEFAULT_INGEST,
        extras: Mapping[str, str] | None = None,
    ) -> Manifest:
        """Stream ``chunks`` into the whole partition ``ref`` of ``spec``, replacing any
        previous one; memory stays near one chunk plus the sort's limit.

        Each chunk is conformed to the schema, sorted by ``spec.sort_key`` (stable) and
        spilled to Parquet in the staging folder. When the chunks arrive in sort-key
        order (each chunk's first key at or after the previous chunk's last, as a
        per-instrument source yields them) the spilled files are the partition.
        Otherwise DuckDB sorts the spilled rows out of core (``ORDER BY`` the sort key,
        nulls last, ties in arrival order) under ``settings.sort_memory_limit``, and
        the result is written back in files of ``settings.target_file_rows`` rows with
        the table's exact Arrow schema. Either way the partition appears whole, by one
        rename, or not at all.

        Parameters
        ----------
        chunks : iterable of polars.DataFrame
            The partition's rows in any number of chunks (zero chunks: an empty partition).
        stats : mapping, optional
            Producer's counts, read **after** the chunks are consumed (a streaming
            producer may fill it while yielding).
        settings : IngestSettings
            Sort memory limit and threads, file size.
        extras : mapping of file name to text, optional
            Text files written beside the Parquet, in the same swap (see :meth:`write`).

        Returns
        -------
        Manifest
            With one :class:`FileEntry` per Parquet file (rows, bytes, sha256).

        Raises
        ------
        SchemaError
            If a chunk does not fit the schema; names the chunk (nothing is written).
        LakeError
            If the partition cannot be put in place.
        """
        self.recover(spec)
        keys = list(spec.sort_key)
        stage = self._staging() / f"{spec.name}-{uuid.uuid4().hex}"
        spill = stage / "_spill"
        spill.mkdir(parents=True)
        try:
            spilled: list[Path] = []
            in_order = True
            last_key: tuple | None = None
            ts_min = ts_max = None
            rows = 0
            for index, frame in enumerate(chunks):
                origin = f"{spec.name} partition {ref}, chunk {index}"
                if frame.height:
                    frame = frame.sort(keys, maintain_order=True, nulls_last=True)
                table = conform(frame, spec, origin=origin)
                if table.num_rows == 0:
                    continue
                first = tuple(table.column(k)[0].as_py() for k in keys)
                if last_key is not None and _key_order(last_key, first) > 0:
                    in_order = False
                last_key = tuple(table.column(k)[-1].as_py() for k in keys)
                if "ts_ns" in spec.columns:
                    lo, hi = pc.min_max(table.column("ts_ns")).values()
                    ts_min = lo.as_py() if ts_min is None else min(ts_min, lo.as_py())
                    ts_max = hi.as_py() if ts_max is None else max(ts_max, hi.as_py())
                path = spill / f"chunk-{index:05d}.parquet"
                pq.write_table(table, path, compression="zstd")
                spilled.append(path)
                rows += table.num_rows
            if not spilled:
                empty = stage / PART_NAME
                pq.write_table(spec.schema.empty_table(), empty, compression="zstd")
                parts = [empty]
            elif in_order:
                parts = []
                for i, path in enumerate(spilled):
                    final = stage / f"part-{i:05d}.parquet"
                    os.rename(path, final)
                    parts.append(final)
            else:
                parts = self._sort_spilled(spec, spilled, stage, settings)
            shutil.rmtree(spill)
            entries = []
            for part in parts:
                with open(part, "rb+") as fh:
                    os.fsync(fh.fileno())
                entries.append(FileEntry(part.name, pq.ParquetFile(part).metadata.num_rows, part.stat().st_size, file_sha256(part)))
            manifest = Manifest(
                table=spec.name,
                layer=spec.layer,
                trade_date=ref.trade_date.isoformat(),
                underlying=ref.underlying,
                rows=rows,
                files=entries,
                source=source,
                written_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
                sort_key=keys,
                columns={f.name: str(f.type) for f in spec.schema},
                ts_min_ns=ts_min,
                ts_max_ns=ts_max,
                stats=dict(stats or {}),
            )
            for name, text in (extras or {}).items():
                if "/" in name or name.endswith(".parquet") or name == MANIFEST_NAME:
                    raise LakeError(f"{spec.name} partition {ref}: extra file name {name!r} is not allowed")
                (stage / name).write_text(text)
            mpath = stage / MANIFEST_NAME
            mpath.write_text(manifest.to_json())
            with open(mpath, "rb+") as fh:
                os.fsync(fh.fileno())
            fsync_dir(stage)
            self._swap_into_place(stage, self.partition_dir(spec, ref))
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        return manifest

    def _sort_spilled(
        self, spec: TableSchema, spilled: list[Path], stage: Path, settings: IngestSettings
    ) -> list[Path]:
        """Sort spilled chunk files by the sort key with DuckDB (out of core), ties in
        arrival order (chunk, row), into part files with the table's Arrow schema."""
        import duckdb

        con = duckdb.connect(":memory:")
        try:
            con.execute("SET memory_limit = ?", [settings.sort_memory_limit])
            con.execute("SET threads = ?", [settings.sort_threads])
            con.execute("SET temp_directory = ?", [str(stage / "_duckdb_tmp")])
            con.execute("SET preserve_insertion_order = true")
            order = ", ".join(f'"{k}" ASC NULLS LAST' for k in spec.sort_key)
            columns = ", ".join(f'"{c}"' for c in spec.columns)
            reader = con.execute(
                f"SELECT {columns} FROM read_parquet(?, filename = true, file_row_number = true) "
                f"ORDER BY {order}, filename, file_row_number",
                [[str(p) for p in spilled]],
            ).to_arrow_reader(min(settings.target_file_rows, 1_000_000))
            parts: list[Path] = []
            writer = None
            in_file = 0
            for batch in reader:
                if writer is None or in_file >= settings.target_file_rows:
                    if writer is not None:
                        writer.close()
                    parts.append(stage / f"part-{len(parts):05d}.parquet")
                    writer = pq.ParquetWriter(parts[-1], spec.schema, compression="zstd")
                    in_file = 0
                writer.write_table(conform(pl.from_arrow(batch), spec, origin=f"{spec.name} sorted spill"))
                in_file += batch.num_rows
            if writer is not None:
                writer.close()
            return parts
        finally:
            con.close()

    def _swap_into_place(self, stage: Path, final: Path) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        trash = None
        if final.exists():
            trash = self._staging() / f"replaced-{uuid.uuid4().hex}"
            # remember where it came from, so recover() can put it back
            (self._staging() / f"{trash.name}.origin").write_text(str(final))
            os.rename(final, trash)
        try:
            os.rename(stage, final)
        except OSError as exc:
            if trash is not None:
                os.rename(trash, final)
            raise LakeError(f"could not move partition into place at {final}: {exc}") from exc
        fsync_dir(final.parent)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
            (self._staging() / f"{trash.name}.origin").unlink(missing_ok=True)

    def recover(self, spec: TableSchema | None = None) -> list[Path]:
        """Finish what an interrupted write left: put back a replaced partition whose
        successor never arrived, delete the rest of ``.staging``. Returns restored paths.
        """
        staging = self.root / STAGING
        restored: list[Path] = []
        if not staging.exists():
            return restored
        for origin in staging.glob("replaced-*.origin"):
            trash = staging / origin.name.removesuffix(".origin")
            final = Path(origin.read_text())
            if trash.exists() and not final.exists():
                final.parent.mkdir(parents=True, exist_ok=True)
                os.rename(trash, final)
                restored.append(final)
            elif trash.exists():
                shutil.rmtree(trash, ignore_errors=True)
            origin.unlink(missing_ok=True)
        return restored

    # --- reading -----------------------------------------------------------------------

    def manifest(self, spec: TableSchema, ref: PartitionRef) -> Manifest | None:
        """The partition's manifest, or ``None`` if the partition was never written."""
        path = self.partition_dir(spec, ref) / MANIFEST_NAME
        if not path.exists():
            return None
        return Manifest.from_json(path.read_text())

    def write_check_record(self, spec: TableSchema, ref: PartitionRef, record: Mapping) -> Path | None:
        """Keep what the partition's checks found beside it (``_checks.json``, replaced
        atomically), stamped with the partition's sha256 so a rewrite makes it stale.

        Parameters
        ----------
        record : JSON-serialisable mapping (the outcomes, and whatever decides whether
            they still hold, e.g. a settings fingerprint). Numpy scalars are written as
            Python numbers.

        Returns
        -------
        Path of the record, or ``None`` when the partition does not exist.
        """
        manifest = self.manifest(spec, ref)
        if manifest is None:
            return None
        path = self.partition_dir(spec, ref) / CHECKS_NAME
        tmp = path.with_name(f".{CHECKS_NAME}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(json.dumps({**record, "partition_sha256": manifest.sha256}, sort_keys=True,
                                  default=lambda v: v.item() if hasattr(v, "item") else str(v)))
        os.replace(tmp, path)
        return path

    def read_check_record(self, spec: TableSchema, ref: PartitionRef) -> dict | None:
        """The record :meth:`write_check_record` kept, or ``None`` when there is none,
        it is unreadable, or the partition was rewritten with other content since."""
        manifest = self.manifest(spec, ref)
        path = self.partition_dir(spec, ref) / CHECKS_NAME
        if manifest is None or not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("partition_sha256") != manifest.sha256:
            return None
        return record

    def exists(self, spec: TableSchema, ref: PartitionRef) -> bool:
        return (self.partition_dir(spec, ref) / MANIFEST_NAME).exists()

    def read(
        self, spec: TableSchema, ref: PartitionRef, *, verify: bool = False, columns: list[str] | None = None
    ) -> pl.DataFrame:
        """Read a partition as a polars DataFrame with the table's schema.

        Parameters
        ----------
        verify : bool
            Recompute each file's sha256 and compare it to the manifest.
        columns : list of str, optional
            Read only these columns (in this order); all by default.

        Raises
        ------
        LakeError
            If the partition does not exist or a checksum does not match.
        """
        manifest = self.manifest(spec, ref)
        pdir = self.partition_dir(spec, ref)
        if manifest is None:
            raise LakeError(f"{spec.layer}.{spec.name} partition {ref} does not exist under {self.root}")
        frames = []
        for entry in manifest.files:
            path = pdir / entry.name
            if verify:
                actual = file_sha256(path)
                if actual != entry.sha256:
                    raise LakeError(f"{path}: sha256 {actual} does not match the manifest's {entry.sha256}")
            if columns is None:
                frames.append(pl.from_arrow(pq.read_table(path, schema=spec.schema)))
            else:
                schema = pa.schema([spec.schema.field(c) for c in columns])
                frames.append(pl.from_arrow(pq.read_table(path, columns=columns).cast(schema)))
        if not frames:
            empty = pl.from_arrow(spec.schema.empty_table())
            return empty if columns is None else empty.select(columns)
        return pl.concat(frames) if len(frames) > 1 else frames[0]

    def iter_batches(
        self,
        spec: TableSchema,
        ref: PartitionRef,
        *,
        max_rows: int,
        verify: bool = False,
        group: pl.Expr | None = None,
        columns: list[str] | None = None,
    ) -> Iterator[pl.DataFrame]:
        """Read a partition in stored order, in batches of about ``max_rows`` rows that
        never split a group (by default the instrument, so per-instrument order and
        duplicate checks hold within a batch); a group with more rows than ``max_rows``
        is one batch.

        ``group`` is an expression whose equal values form contiguous runs in stored
        order (e.g. root and expiration for option tables sorted by OCC symbol). Tables
        without an instrument column and no ``group`` come as one batch. ``columns``
        reads only those columns (they must include the ones ``group`` uses).

        Raises
        ------
        LakeError
            If the partition does not exist or (``verify``) a checksum does not match.
        """
        manifest = self.manifest(spec, ref)
        if manifest is None:
            raise LakeError(f"{spec.layer}.{spec.name} partition {ref} does not exist under {self.root}")
        if (spec.instrument is None and group is None) or manifest.rows <= max_rows:
            frame = self.read(spec, ref, verify=verify)
            yield frame if columns is None else frame.select(columns)
            return
        schema = spec.schema if columns is None else pa.schema([spec.schema.field(c) for c in columns])
        key = pl.col(spec.instrument) if group is None else group
        pdir = self.partition_dir(spec, ref)
        pending: list[pl.DataFrame] = []
        held = 0
        for entry in manifest.files:
            path = pdir / entry.name
            if verify and file_sha256(path) != entry.sha256:
                raise LakeError(f"{path}: sha256 does not match the manifest's {entry.sha256}")
            pfile = pq.ParquetFile(path)
            for row_group in range(pfile.num_row_groups):
                row_group_frame = pl.from_arrow(pfile.read_row_group(row_group, columns=columns).cast(schema))
                for part in row_group_frame.iter_slices(max_rows):
                    pending.append(part)
                    held += part.height
                    if held < max_rows:
                        continue
                    frame = pl.concat(pending)
                    groups = frame.select(key.alias("_group")).get_column("_group")
                    # cut before the last group's first row, unless that leaves nothing
                    cut = frame.height - int((groups == groups[-1]).sum())
                    if cut == 0:
                        pending, held = [frame], frame.height
                        continue
                    yield frame.slice(0, cut)
                    rest = frame.slice(cut)
                    pending, held = [rest], rest.height
        if held:
            yield pl.concat(pending)

    # --- ground truth beside the data -------------------------------------------------------

    def truth_path(self, spec: TableSchema, ref: PartitionRef) -> Path:
        """Where a synthetic source's ground truth for partition ``ref`` of ``spec`` lives:
        ``<root>/_truth/<layer>/<table>/<hive path>/truth.parquet``."""
        return self.root / "_truth" / spec.layer / spec.name / ref.hive_path / "truth.parquet"

    def write_truth(self, spec: TableSchema, ref: PartitionRef, frame: pl.DataFrame) -> Path:
        """Write ground truth beside partition ``ref`` of ``spec`` (atomic rename)."""
        path = self.truth_path(spec, ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".truth-{uuid.uuid4().hex}.parquet")
        frame.write_parquet(tmp, compression="zstd")
        os.replace(tmp, path)
        return path

    def read_truth(self, spec: TableSchema, ref: PartitionRef) -> pl.DataFrame:
        """The ground truth stored beside partition ``ref`` of ``spec``.

        Raises
        ------
        LakeError
            If there is none (only synthetic partitions have ground truth).
        """
        path = self.truth_path(spec, ref)
        if not path.exists():
            raise LakeError(f"no ground truth for {spec.layer}.{spec.name} partition {ref} at {path}")
        return pl.read_parquet(path)

    def partitions(self, spec: TableSchema) -> list[PartitionRef]:
        """Every written partition of a table, sorted by (trade_date, underlying)."""
        out = []
        for mpath in self.table_dir(spec).glob(f"trade_date=*/underlying=*/{MANIFEST_NAME}"):
            day = mpath.parent.parent.name.split("=", 1)[1]
            und = mpath.parent.name.split("=", 1)[1]
            out.append(PartitionRef(dt.date.fromisoformat(day), und))
        return sorted(out, key=lambda r: (r.trade_date, r.underlying))

    # --- DuckDB ------------------------------------------------------------------------

    def duckdb(self, database: str = ":memory:"):
        """A DuckDB connection with one view per table that has data.

        Views are named after the tables (``option_trades``, ...), and also exist as
        ``<layer>_<table>``; hive keys ``trade_date`` and ``underlying`` are columns.
        Query with parameters, e.g.
        ``con.execute("select count(*) from stock_trades where underlying = ?", ["AMZN"])``.
        """
        import duckdb

        con = duckdb.connect(database)
        for spec in ALL_TABLES.values():
            tdir = self.table_dir(spec)
            if not any(tdir.glob(f"trade_date=*/underlying=*/{PART_NAME}")):
                continue
            rel = con.read_parquet(str(tdir / "*" / "*" / "*.parquet"), hive_partitioning=True)
            rel.create_view(spec.name, replace=True)
            rel.create_view(f"{spec.layer}_{spec.name}", replace=True)
        return con
