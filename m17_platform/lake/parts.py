"""Parquet part files cut at fixed row counts, so the same rows give the same bytes.

However a producer's chunks arrive (one frame, 66 capture batches, a million small
chunks), :class:`PartWriter` writes row groups of exactly ``row_group_rows`` rows and
files of exactly ``target_file_rows`` rows (the last ones shorter): file and row-group
boundaries depend on the rows alone. Chunks that arrive out of sort-key order are
spilled and sorted by DuckDB out of core (:func:`sort_spilled`), ties in arrival order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from m17_platform.schemas import TableSchema, conform
from m17_platform.settings import IngestSettings

COMPRESSION = "zstd"


def key_order(a: tuple, b: tuple) -> int:
    """Compare two sort-key tuples as the lake orders them (ascending, nulls last):
    -1, 0 or 1."""
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        if x is None:
            return 1
        if y is None:
            return -1
        return -1 if x < y else 1
    return 0


class PartWriter:
    """Write Arrow tables of one schema into ``folder/<prefix>-NNNNN.parquet`` files of
    ``file_rows`` rows in row groups of ``group_rows`` rows (see the module doc).

    Parameters
    ----------
    folder : where the files go (created)
    schema : pyarrow.Schema every table is cast to (the table's exact schema)
    file_rows, group_rows : rows per file and per row group (counts, > 0)
    """

    def __init__(self, folder: Path, schema: pa.Schema, *, file_rows: int, group_rows: int, prefix: str = "part") -> None:
        if file_rows <= 0 or group_rows <= 0:
            raise ValueError(f"file_rows ({file_rows}) and group_rows ({group_rows}) must be positive")
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.schema, self.prefix = folder, schema, prefix
        self.file_rows, self.group_rows = file_rows, group_rows
        self.paths: list[Path] = []
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_file = 0

    def write(self, table: pa.Table) -> None:
        """Buffer ``table``'s rows; every complete row group is written at once."""
        if table.num_rows == 0:
            return
        self._buffer.append(table)
        self._buffered += table.num_rows
        while self._buffered >= self._next_group_rows():
            self._write_group(self._next_group_rows())

    def close(self) -> list[Path]:
        """Write what is buffered (a shorter last row group) and close; the files written."""
        if self._buffered:
            self._write_group(self._buffered)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.paths

    def _next_group_rows(self) -> int:
        in_file = self._in_file if self._writer is not None and self._in_file < self.file_rows else 0
        return min(self.group_rows, self.file_rows - in_file)

    def _write_group(self, n: int) -> None:
        data = pa.concat_tables(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        group, rest = data.slice(0, n), data.slice(n)
        if self._writer is None or self._in_file >= self.file_rows:
            if self._writer is not None:
                self._writer.close()
            self.paths.append(self.folder / f"{self.prefix}-{len(self.paths):05d}.parquet")
            self._writer = pq.ParquetWriter(self.paths[-1], self.schema, compression=COMPRESSION)
            self._in_file = 0
        self._writer.write_table(group.cast(self.schema), row_group_size=n)
        self._in_file += n
        self._buffer = [rest] if rest.num_rows else []
        self._buffered = rest.num_rows


def write_empty(folder: Path, spec: TableSchema) -> Path:
    """An empty partition's one file (the schema, no rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part-00000.parquet"
    pq.write_table(spec.schema.empty_table(), path, compression=COMPRESSION)
    return path


def sort_spilled(spec: TableSchema, spilled: list[Path], writer: PartWriter, temp_dir: Path,
                 settings: IngestSettings) -> None:
    """Sort the rows of ``spilled`` (files in arrival order: their names sort in the
    order they arrived) by ``spec.sort_key`` with DuckDB out of core, nulls last, ties in
    arrival order (file, row), into ``writer``."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.execute("SET memory_limit = ?", [settings.sort_memory_limit])
        con.execute("SET threads = ?", [settings.sort_threads])
        con.execute("SET temp_directory = ?", [str(temp_dir)])
        con.execute("SET preserve_insertion_order = true")
        order = ", ".join(f'"{k}" ASC NULLS LAST' for k in spec.sort_key)
        columns = ", ".join(f'"{c}"' for c in spec.columns)
        reader = con.execute(
            f"SELECT {columns} FROM read_parquet(?, filename = true, file_row_number = true) "
            f"ORDER BY {order}, filename, file_row_number",
            [[str(p) for p in spilled]],
        ).to_arrow_reader(min(settings.target_file_rows, 1_000_000))
        for batch in reader:
            writer.write(conform(pl.from_arrow(batch), spec, origin=f"{spec.name} sorted spill"))
    finally:
        con.close()


def parquet_files_in_order(folder: Path) -> Iterator[Path]:
    """The Parquet files of ``folder`` by name (their arrival order)."""
    yield from sorted(folder.glob("*.parquet"))
