"""The lake: hive-partitioned Parquet under one root, committed atomically, verified on read.

Layout::

    <root>/<layer>/<table>/trade_date=YYYY-MM-DD/underlying=XYZ/part-00000.parquet
    <root>/<layer>/<table>/trade_date=YYYY-MM-DD/underlying=XYZ/_manifest.json
    <root>/.staging/        partitions being written, commit journals, replaced partitions
    <root>/_commits.jsonl   the commit log: when each partition was written, with its sha256

Writing is two steps: :meth:`Lake.stage` builds a partition in ``.staging`` (files cut
at fixed row counts, fsynced, with its manifest), :meth:`Lake.commit` puts any number of
staged partitions in place together, or none of them (:mod:`m17_platform.lake.commit`).
A rerun of a partition therefore replaces it (idempotent) and readers never see half a
partition or half a day; a killed writer's leftovers are finished or removed by the next
writer or by :meth:`Lake.recover`. Every read checks each file's sha256 against the
manifest (cached per file identity within a process), so a changed byte is an error,
never data. Every table is also a DuckDB view (``Lake.duckdb()``), hive keys
``trade_date`` (DATE) and ``underlying`` (VARCHAR) included.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from m17_platform.errors import LakeError
from m17_platform.lake import commit as commit_log
from m17_platform.lake.commit import COMMIT_LOG, Recovery, Stage, fsync_dir, fsync_file, new_stage, remove_path
from m17_platform.lake.manifest import (
    CHECKS_NAME,
    MANIFEST_NAME,
    FileEntry,
    Manifest,
    PartitionRef,
    file_sha256,
    read_manifest,
    verify_file,
)
from m17_platform.lake.parts import PartWriter, key_order, sort_spilled, write_empty
from m17_platform.schemas import ALL_TABLES, TableSchema, conform
from m17_platform.settings import DEFAULT as _DEFAULT_SETTINGS
from m17_platform.settings import IngestSettings

DEFAULT_INGEST = _DEFAULT_SETTINGS.ingest


@dataclass
class StagedPartition:
    """A partition built in ``.staging`` and not yet committed: its manifest, the stage
    folder (held by this process), and optional ground truth staged beside it."""

    spec: TableSchema
    ref: PartitionRef
    manifest: Manifest
    stage: Stage
    truth: Stage | None = None

    def discard(self) -> None:
        """Drop the staged files; the lake does not change."""
        self.stage.discard()
        if self.truth is not None:
            self.truth.discard()


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
        inputs: Mapping[str, str] | None = None,
    ) -> Manifest:
        """Write ``frame`` as the whole partition ``ref`` of ``spec``, replacing any previous one.

        The one-frame case of :meth:`write_chunks` (rows cast to the table's schema by
        :func:`m17_platform.schemas.conform`, sorted by ``spec.sort_key``, stable).

        Raises
        ------
        SchemaError
            If the rows do not fit the schema (nothing is written).
        LakeError
            If the partition cannot be put in place.
        """
        return self.write_chunks(spec, ref, [frame], source=source, stats=stats, extras=extras, inputs=inputs)

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
        inputs: Mapping[str, str] | None = None,
    ) -> Manifest:
        """Stream ``chunks`` into the whole partition ``ref`` of ``spec``, replacing any
        previous one: :meth:`stage` then :meth:`commit` of that one partition.

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
        staged = self.stage(spec, ref, chunks, source=source, stats=stats, settings=settings, extras=extras,
                            inputs=inputs)
        return self.commit([staged])[0]

    def stage(
        self,
        spec: TableSchema,
        ref: PartitionRef,
        chunks: Iterable[pl.DataFrame],
        *,
        source: str,
        stats: Mapping[str, int | float | str] | None = None,
        settings: IngestSettings = DEFAULT_INGEST,
        extras: Mapping[str, str] | None = None,
        inputs: Mapping[str, str] | None = None,
    ) -> StagedPartition:
        """Build partition ``ref`` of ``spec`` in ``.staging`` from ``chunks``, without
        touching the lake; memory stays near one chunk plus the sort's limit.

        Each chunk is conformed to the schema and sorted by ``spec.sort_key`` (stable).
        While the chunks arrive in sort-key order (each chunk's first key at or after
        the previous chunk's last, as a per-instrument source yields them) they stream
        straight into the part files; from the first chunk out of order on, the rest is
        spilled and DuckDB sorts everything out of core (nulls last, ties in arrival
        order) under ``settings.sort_memory_limit``. Part files hold
        ``settings.target_file_rows`` rows in row groups of ``settings.row_group_rows``
        (:class:`~m17_platform.lake.parts.PartWriter`), so the same rows give the same
        files however they were chunked.

        Parameters
        ----------
        chunks : iterable of polars.DataFrame
            The partition's rows in any number of chunks (zero chunks: an empty partition).
        source : where the rows came from (recorded in the manifest).
        stats : mapping, optional
            Producer's counts, read **after** the chunks are consumed (a streaming
            producer may fill it while yielding). Must not hold timings: the manifest
            describes the data only.
        extras : mapping of file name to text, optional
            Text files for operators beside the Parquet (e.g. a plain-text summary to
            tail), read after the chunks; names must not end in ``.parquet``.
        inputs : mapping ``layer.table`` -> sha256, optional
            The partitions this one was computed from (:func:`~m17_platform.lake.health.stale_inputs`).

        Returns
        -------
        StagedPartition
            To :meth:`commit` (with others, all or none) or :meth:`StagedPartition.discard`.

        Raises
        ------
        SchemaError
            If a chunk does not fit the schema; names the chunk (the stage is removed).
        LakeError
            For an extra file name that is not allowed.
        """
        self.recover()
        stage = new_stage(self.root, spec.name, self.partition_dir(spec, ref))
        try:
            manifest = self._build(spec, ref, chunks, stage.path, source=source, stats=stats, settings=settings,
                                   extras=extras, inputs=inputs)
        except BaseException:
            stage.discard()
            raise
        return StagedPartition(spec, ref, manifest, stage)

    def stage_truth(self, staged: StagedPartition, truth: pl.DataFrame) -> None:
        """Stage ground truth (a synthetic source's) to be committed with ``staged``,
        at :meth:`truth_path`; the manifest's ``stats["truth_rows"]`` records its rows."""
        staged.truth = new_stage(self.root, f"truth-{staged.spec.name}", self.truth_path(staged.spec, staged.ref),
                                 folder=False)
        truth.write_parquet(staged.truth.path, compression="zstd")
        fsync_file(staged.truth.path)
        staged.manifest.stats["truth_rows"] = truth.height
        (staged.stage.path / MANIFEST_NAME).write_text(staged.manifest.to_json())
        fsync_file(staged.stage.path / MANIFEST_NAME)

    def _build(self, spec: TableSchema, ref: PartitionRef, chunks: Iterable[pl.DataFrame], stage: Path, *,
               source: str, stats, settings: IngestSettings, extras, inputs) -> Manifest:
        keys = list(spec.sort_key)
        writer = PartWriter(stage / "_direct", spec.schema, file_rows=settings.target_file_rows,
                            group_rows=settings.row_group_rows)
        spill: list[Path] = []
        last_key: tuple | None = None
        ts_range: list[int] = []
        rows = 0
        for index, frame in enumerate(chunks):
            if frame.height:
                frame = frame.sort(keys, maintain_order=True, nulls_last=True)
            table = conform(frame, spec, origin=f"{spec.name} partition {ref}, chunk {index}")
            if table.num_rows == 0:
                continue
            first = tuple(table.column(k)[0].as_py() for k in keys)
            if not spill and last_key is not None and key_order(last_key, first) > 0:
                spill = writer.close() or []  # what streamed so far is the first of the sort's inputs
            last_key = tuple(table.column(k)[-1].as_py() for k in keys)
            if "ts_ns" in spec.columns:
                lo, hi = pc.min_max(table.column("ts_ns")).values()
                ts_range = [min(ts_range[0], lo.as_py()), max(ts_range[1], hi.as_py())] if ts_range else [lo.as_py(), hi.as_py()]
            if spill:
                spill.append(stage / "_spill" / f"chunk-{index:07d}.parquet")
                spill[-1].parent.mkdir(exist_ok=True)
                pq.write_table(table, spill[-1], compression="zstd")
            else:
                writer.write(table)
            rows += table.num_rows
        if spill:
            final = PartWriter(stage, spec.schema, file_rows=settings.target_file_rows, group_rows=settings.row_group_rows)
            sort_spilled(spec, spill, final, stage / "_duckdb_tmp", settings)
            parts = final.close()
        else:
            parts = [stage / p.name for p in writer.close()]
            for part in parts:
                os.rename(stage / "_direct" / part.name, part)
        for scratch in ("_direct", "_spill", "_duckdb_tmp"):
            remove_path(stage / scratch)
        if not parts:
            parts = [write_empty(stage, spec)]
        entries = []
        for part in parts:
            fsync_file(part)
            entries.append(FileEntry(part.name, pq.ParquetFile(part).metadata.num_rows, part.stat().st_size, file_sha256(part)))
        extra_shas = {}
        for name, text in sorted((extras or {}).items()):
            if "/" in name or name.endswith(".parquet") or name.startswith("_") or name.startswith("."):
                raise LakeError(f"{spec.name} partition {ref}: extra file name {name!r} is not allowed")
            (stage / name).write_text(text)
            fsync_file(stage / name)
            extra_shas[name] = file_sha256(stage / name)
        manifest = Manifest(
            table=spec.name, layer=spec.layer, trade_date=ref.trade_date.isoformat(), underlying=ref.underlying,
            rows=rows, files=entries, source=source, sort_key=keys, columns={f.name: str(f.type) for f in spec.schema},
            ts_min_ns=ts_range[0] if ts_range else None, ts_max_ns=ts_range[1] if ts_range else None,
            stats=dict(stats or {}), inputs=dict(inputs or {}), extras=extra_shas,
        )
        (stage / MANIFEST_NAME).write_text(manifest.to_json())
        fsync_file(stage / MANIFEST_NAME)
        fsync_dir(stage)
        return manifest

    def commit(self, staged: Sequence[StagedPartition]) -> list[Manifest]:
        """Put every staged partition in place together, or none of them; the old
        partitions they replace are deleted, their check records with them.

        Returns
        -------
        list of Manifest
            The committed manifests, in the order given.

        Raises
        ------
        LakeError
            If the commit cannot be written (nothing changed), or stopped after its
            commit point (the next write or :meth:`recover` finishes it).
        """
        if not staged:
            return []
        stages = [s.stage for s in staged] + [s.truth for s in staged if s.truth is not None]
        log = [{"table": f"{s.spec.layer}.{s.spec.name}", "partition": str(s.ref), "rows": s.manifest.rows,
                "sha256": s.manifest.sha256, "source": s.manifest.source} for s in staged]
        commit_log.commit(self.root, stages, log)
        return [s.manifest for s in staged]

    def recover(self) -> Recovery:
        """Finish what killed writers left: commits past their commit point are rolled
        forward, stages of writers that died before it are deleted, the partitions they
        would have replaced stay. Writers that are still running are left alone (their
        stages are locked). Returns what was done."""
        return commit_log.recover(self.root)

    def commits(self) -> list[dict]:
        """The commit log, oldest first: one dict per commit (``committed_at`` UTC
        ISO-8601, ``partitions``: table, partition, rows, sha256, source)."""
        path = self.root / COMMIT_LOG
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line torn by a crash while appending
        return out

    # --- reading -----------------------------------------------------------------------

    def manifest(self, spec: TableSchema, ref: PartitionRef) -> Manifest | None:
        """The partition's manifest, or ``None`` if the partition was never written.

        Raises
        ------
        LakeError
            If the manifest is there but truncated or not a manifest (names the file).
        """
        return read_manifest(self.partition_dir(spec, ref) / MANIFEST_NAME)

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
        path = self.partition_dir(spec, ref) / CHECKS_NAME
        try:
            manifest = self.manifest(spec, ref)
        except LakeError:
            return None
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

    def _committed(self, spec: TableSchema, ref: PartitionRef) -> Manifest:
        manifest = self.manifest(spec, ref)
        if manifest is None:
            raise LakeError(f"{spec.layer}.{spec.name} partition {ref} does not exist under {self.root}")
        return manifest

    def _file(self, spec: TableSchema, ref: PartitionRef, entry: FileEntry, verify: bool) -> Path:
        path = self.partition_dir(spec, ref) / entry.name
        if verify:
            verify_file(path, entry)
        return path

    def read(
        self, spec: TableSchema, ref: PartitionRef, *, verify: bool = True, columns: list[str] | None = None
    ) -> pl.DataFrame:
        """Read a committed partition as a polars DataFrame with the table's schema.

        Parameters
        ----------
        verify : bool
            Check each file's sha256 against the manifest first (default; the hash is
            cached per file identity, :func:`~m17_platform.lake.manifest.verified_sha256`).
        columns : list of str, optional
            Read only these columns (in this order); all by default.

        Raises
        ------
        LakeError
            If the partition does not exist, its manifest is broken, or a file is missing
            or does not match its checksum.
        """
        manifest = self._committed(spec, ref)
        frames = []
        for entry in manifest.files:
            path = self._file(spec, ref, entry, verify)
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
        verify: bool = True,
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
        reads only those columns (they must include the ones ``group`` uses). Each
        file is verified against the manifest before it is read (``verify``, default).

        Raises
        ------
        LakeError
            If the partition does not exist or a file does not match its checksum.
        """
        manifest = self._committed(spec, ref)
        if (spec.instrument is None and group is None) or manifest.rows <= max_rows:
            frame = self.read(spec, ref, verify=verify)
            yield frame if columns is None else frame.select(columns)
            return
        schema = spec.schema if columns is None else pa.schema([spec.schema.field(c) for c in columns])
        key = pl.col(spec.instrument) if group is None else group
        pending: list[pl.DataFrame] = []
        held = 0
        for entry in manifest.files:
            pfile = pq.ParquetFile(self._file(spec, ref, entry, verify))
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

    # --- lake health --------------------------------------------------------------------

    def input_shas(self, specs: Sequence[TableSchema], ref: PartitionRef) -> dict[str, str]:
        """``layer.table`` -> sha256 of partition ``ref`` of each of ``specs`` (those that
        exist): the ``inputs`` a computed partition records."""
        out = {}
        for spec in specs:
            manifest = self.manifest(spec, ref)
            if manifest is not None:
                out[f"{spec.layer}.{spec.name}"] = manifest.sha256
        return out

    def partition_folders(self, spec: TableSchema) -> list[PartitionRef]:
        """Every partition folder of a table on disk, with or without a manifest (what
        :func:`~m17_platform.lake.health.verify_partition` inspects), sorted by (trade_date, underlying)."""
        out = []
        for pdir in self.table_dir(spec).glob("trade_date=*/underlying=*"):
            try:
                out.append(PartitionRef.parse(f"{pdir.parent.name.split('=', 1)[1]}|{pdir.name.split('=', 1)[1]}"))
            except ValueError:
                continue
        return sorted(out, key=lambda r: (r.trade_date, r.underlying))

    # --- ground truth beside the data -------------------------------------------------------

    def truth_path(self, spec: TableSchema, ref: PartitionRef) -> Path:
        """Where a synthetic source's ground truth for partition ``ref`` of ``spec`` lives:
        ``<root>/_truth/<layer>/<table>/<hive path>/truth.parquet``."""
        return self.root / "_truth" / spec.layer / spec.name / ref.hive_path / "truth.parquet"

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
        """Every committed partition of a table (a manifest in its folder), sorted by
        (trade_date, underlying)."""
        return [ref for ref in self.partition_folders(spec)
                if (self.partition_dir(spec, ref) / MANIFEST_NAME).exists()]

    # --- DuckDB ------------------------------------------------------------------------

    def duckdb(self, database: str = ":memory:", *, verify: bool = True):
        """A DuckDB connection with one view per table that has data.

        Views are named after the tables (``option_trades``, ...), and also exist as
        ``<layer>_<table>``; hive keys ``trade_date`` and ``underlying`` are columns.
        A view reads only the files the partitions' manifests name, each verified
        against its sha256 first (``verify``). Query with parameters, e.g.
        ``con.execute("select count(*) from stock_trades where underlying = ?", ["AMZN"])``.

        Raises
        ------
        LakeError
            If a partition's manifest is broken or a file does not match it.
        """
        import duckdb

        con = duckdb.connect(database)
        for spec in ALL_TABLES.values():
            files = []
            for ref in self.partitions(spec):
                for entry in self._committed(spec, ref).files:
                    files.append(str(self._file(spec, ref, entry, verify)))
            if not files:
                continue
            rel = con.read_parquet(files, hive_partitioning=True)
            rel.create_view(spec.name, replace=True)
            rel.create_view(f"{spec.layer}_{spec.name}", replace=True)
        return con
