"""Ingest: a day's raw tables from a source into the lake, committed together or not at all.

The raw layer (one Dagster step for the selected raw tables) and ``m17 ingest`` call
:func:`ingest_day`: for each table the source provides, its chunks are staged in the
lake (:meth:`m17_platform.lake.Lake.stage`: spilled, sorted out of core if needed, with
the chunks' counts summed into the manifest and any ground truth beside it); then every
staged partition is committed in one step (:meth:`m17_platform.lake.Lake.commit`). A
failure anywhere (a bad file, a schema error, a refused replacement) discards every
stage: the lake is as it was.

What a run may replace:

- a table the source does not provide is **kept** as the lake holds it; where the lake
  has no partition yet it gets an empty one (``rates``: the configured constant), so the
  enriched layer finds every input;
- a partition with rows is never replaced by zero rows unless ``allow_empty`` is given
  (:class:`EmptyReplacementError` names the table and both counts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import polars as pl

from m17_platform.errors import LakeError
from m17_platform.lake import Lake, Manifest, PartitionRef, StagedPartition
from m17_platform.schemas import table
from m17_platform.settings import DEFAULT, Settings
from m17_platform.sources.base import Source

RATE_FROM_SETTINGS = "rate_from_settings"
KEPT = "kept"
EMPTY = "empty"
REPLACED = "replaced"


class EmptyReplacementError(LakeError):
    """A run would replace a partition holding rows with zero rows (nothing was changed)."""


@dataclass(frozen=True)
class TableOutcome:
    """What an ingest did to one raw table: ``action`` is ``replaced`` (the source's rows
    were committed), ``kept`` (the source does not provide it; the lake's partition
    stays) or ``empty`` (neither had it: an empty partition, or the constant rates)."""

    table: str
    action: str
    manifest: Manifest


Progress = Callable[[str], AbstractContextManager[Callable[[int], None] | None]]


def _no_progress(_table: str) -> AbstractContextManager[None]:
    return nullcontext()


def _frames(source: Source, table_name: str, ref: PartitionRef, stats: dict, progress) -> Iterator[pl.DataFrame]:
    for chunk in source.chunks(table_name, ref):
        if chunk.table != table_name:
            raise ValueError(f"source {source.name} yielded a {chunk.table} chunk for {table_name}")
        stats["chunks"] = stats.get("chunks", 0) + 1
        for key, value in chunk.stats.items():
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            stats[key] = stats.get(key, 0) + value if numeric else value
        if progress is not None:
            progress(chunk.frame.height)
        yield chunk.frame


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
            self._files = dict(extras(table_name, ref)) if extras is not None else {}
        return self._files

    def __getitem__(self, key: str) -> str:
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def stage_table(lake: Lake, source: Source, table_name: str, ref: PartitionRef, *, settings: Settings = DEFAULT,
                progress: Callable[[int], None] | None = None) -> StagedPartition:
    """Stage partition ``ref`` of raw table ``table_name`` from ``source`` (which must
    provide it), with its ground truth when the source knows it; nothing is committed.

    Raises
    ------
    SchemaError
        A chunk that does not fit the table.
    SourceFormatError
        From the source, naming the file, request, row or field.
    """
    spec = table(table_name)
    stats: dict[str, int | float | str] = {}
    staged = lake.stage(spec, ref, _frames(source, table_name, ref, stats, progress), source=source.name, stats=stats,
                        settings=settings.ingest, extras=_ExtrasAfterChunks(source, table_name, ref))
    truth_of = getattr(source, "ground_truth", None)
    try:
        truth = truth_of(table_name, ref) if truth_of is not None else None
        if truth is not None:
            lake.stage_truth(staged, truth)
    except BaseException:
        staged.discard()
        raise
    return staged


def _stage_fallback(lake: Lake, table_name: str, ref: PartitionRef, settings: Settings) -> StagedPartition:
    """The partition of a table no source provides: the constant rates, else empty."""
    spec = table(table_name)
    if table_name == "rates":
        from m17_platform.sources import rates

        return lake.stage(spec, ref, [rates.constant_rates(ref, settings.rates)], source="settings",
                          stats={RATE_FROM_SETTINGS: 1}, settings=settings.ingest)
    return lake.stage(spec, ref, [], source="none", settings=settings.ingest)


def ingest_day(
    lake: Lake,
    source: Source,
    ref: PartitionRef,
    tables: Sequence[str],
    *,
    settings: Settings = DEFAULT,
    allow_empty: bool = False,
    progress: Progress = _no_progress,
) -> list[TableOutcome]:
    """Fill the raw partitions ``ref`` of ``tables`` from ``source``, all committed
    together, or none (see the module doc for what is kept and what is refused).

    Parameters
    ----------
    lake : Lake
    source : Source
    ref : PartitionRef
    tables : raw table names (:data:`m17_platform.schemas.RAW_TABLES`), e.g. the
        selected raw assets of a run.
    settings : Settings
        ``settings.ingest`` bounds the out-of-core sort; ``settings.rates`` is the
        constant rate of a source without rates.
    allow_empty : bool
        Let a table the source provides with zero rows replace a partition with rows.
    progress : callable, optional
        ``progress(table)`` is a context manager giving a callable that takes each
        chunk's row count as it lands (a progress bar), or None.

    Returns
    -------
    list of TableOutcome
        One per table, in the order given.

    Raises
    ------
    EmptyReplacementError
        A provided table came with zero rows where the lake holds rows (nothing changed).
    SchemaError, SourceFormatError, LakeError
        From the source or the lake (nothing changed).
    """
    provided = set(source.tables())
    staged: list[StagedPartition] = []
    outcomes: list[tuple[str, str, StagedPartition | Manifest]] = []
    try:
        for name in tables:
            spec = table(name)
            existing = lake.manifest(spec, ref)
            if name in provided:
                with progress(name) as bar:
                    item = stage_table(lake, source, name, ref, settings=settings, progress=bar)
                staged.append(item)
                if item.manifest.rows == 0 and existing is not None and existing.rows > 0 and not allow_empty:
                    raise EmptyReplacementError(
                        f"{spec.layer}.{name} {ref}: source {source.name} gave 0 rows where the lake holds "
                        f"{existing.rows:,}; nothing was replaced (to replace it with an empty partition, pass "
                        "--allow-empty / market_data config replace_with_empty)")
                outcomes.append((name, REPLACED, item))
            elif existing is None or (name == "rates" and RATE_FROM_SETTINGS in existing.stats):
                item = _stage_fallback(lake, name, ref, settings)
                staged.append(item)
                outcomes.append((name, EMPTY, item))
            else:
                outcomes.append((name, KEPT, existing))
        lake.commit(staged)
    except BaseException:
        for item in staged:
            item.discard()
        raise
    return [TableOutcome(name, action, item.manifest if isinstance(item, StagedPartition) else item)
            for name, action, item in outcomes]


def ingest_table(lake: Lake, source: Source, table_name: str, ref: PartitionRef, *, settings: Settings = DEFAULT,
                 progress: Callable[[int], None] | None = None, allow_empty: bool = False) -> Manifest:
    """:func:`ingest_day` of one table; the partition's manifest.

    Raises
    ------
    As :func:`ingest_day`.
    """
    def one(_table: str) -> AbstractContextManager:
        return nullcontext(progress)

    return ingest_day(lake, source, ref, [table_name], settings=settings, allow_empty=allow_empty,
                      progress=one)[0].manifest
