"""Ingest: stream one raw table of one partition from a source into the lake.

The raw assets and ``m17 ingest`` both call :func:`ingest_table`: the source yields
:class:`~m17_platform.sources.base.TableChunk` s, the lake spills and (if needed) sorts
them out of core (:meth:`m17_platform.lake.Lake.write_chunks`), and the chunks' counts
are summed into the partition's manifest. A source that does not fill ``rates`` gets the
configured constant (:func:`m17_platform.sources.rates.constant_rates`). A source that
knows the truth (the synthetic market) has it written beside the partition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import polars as pl

from m17_platform.lake import Lake, Manifest, PartitionRef
from m17_platform.schemas import table
from m17_platform.settings import DEFAULT, Settings
from m17_platform.sources.base import Source, TableChunk


def _chunks(source: Source, table_name: str, ref: PartitionRef, settings: Settings) -> Iterator[TableChunk]:
    if table_name == "rates" and "rates" not in source.tables():
        from m17_platform.sources import rates

        yield TableChunk("rates", rates.constant_rates(ref, settings.rates), {"rate_from_settings": 1})
        return
    if table_name not in source.tables():
        return
    yield from source.chunks(table_name, ref)


class _ExtrasAfterChunks(Mapping[str, str]):
    """A source's text files for the partition (``source.extras(table, ref)``, e.g. the
    capture's ledger of landed batches), asked for only after the lake has consumed
    the chunks; none when the source has no ``extras``."""

    def __init__(self, source: Source, table_name: str, ref: PartitionRef) -> None:
        self._args = (source, table_name, ref)
        self._files: Mapping[str, str] | None = None

    def _get(self) -> Mapping[str, str]:
        if self._files is None:
            source, table_name, ref = self._args
            extras = getattr(source, "extras", None)
            self._files = dict(extras(table_name, ref)) if extras is not None and table_name in source.tables() else {}
        return self._files

    def __getitem__(self, key: str) -> str:
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def ingest_table(
    lake: Lake,
    source: Source,
    table_name: str,
    ref: PartitionRef,
    *,
    settings: Settings = DEFAULT,
    progress: Callable[[int], None] | None = None,
) -> Manifest:
    """Fill partition ``ref`` of raw table ``table_name`` from ``source``, replacing it.

    Parameters
    ----------
    lake : Lake
    source : Source
        Yields the table's rows in chunks; a table it does not fill gives an empty
        partition (``rates``: the configured constant).
    table_name : str
        A raw table (:data:`m17_platform.schemas.RAW_TABLES`).
    ref : PartitionRef
    settings : Settings
        ``settings.ingest`` bounds the out-of-core sort.
    progress : callable, optional
        Called with each chunk's row count as it lands (a progress bar).

    Returns
    -------
    Manifest
        The partition's manifest; ``stats`` holds the chunks' counts summed, plus
        ``chunks`` (count) and ``truth_rows`` when ground truth was stored.

    Raises
    ------
    SchemaError
        A chunk that does not fit the table (the previous partition stays).
    SourceFormatError
        From the source, naming the file, request, row or field.
    """
    spec = table(table_name)
    stats: dict[str, int | float | str] = {}

    def frames() -> Iterator[pl.DataFrame]:
        for chunk in _chunks(source, table_name, ref, settings):
            if chunk.table != table_name:
                raise ValueError(f"source {source.name} yielded a {chunk.table} chunk for {table_name}")
            stats["chunks"] = stats.get("chunks", 0) + 1
            for key, value in chunk.stats.items():
                numeric = isinstance(value, int | float) and not isinstance(value, bool)
                stats[key] = stats.get(key, 0) + value if numeric else value
            if progress is not None:
                progress(chunk.frame.height)
            yield chunk.frame

    extras = _ExtrasAfterChunks(source, table_name, ref)
    manifest = lake.write_chunks(
        spec, ref, frames(), source=source.name, stats=stats, settings=settings.ingest, extras=extras
    )
    truth = getattr(source, "ground_truth", None)
    if truth is not None and table_name in source.tables():
        frame = truth(table_name, ref)
        if frame is not None:
            lake.write_truth(spec, ref, frame)
            manifest.stats["truth_rows"] = frame.height
    return manifest
