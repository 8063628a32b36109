"""The state of every partition of a lake, for ``m17 lake`` and ``m17 lake verify``.

A partition is ``ok``, ``stale`` (computed from an input partition that was replaced
since: rebuild it), or ``broken`` (manifest missing, truncated or not matching its
files). Nothing here raises for a bad partition: each problem is a line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from m17_platform.errors import LakeError
from m17_platform.lake.manifest import PartitionRef
from m17_platform.lake.store import Lake
from m17_platform.schemas import ALL_TABLES, TableSchema

OK, STALE, BROKEN = "ok", "stale", "broken"


@dataclass(frozen=True)
class PartitionStatus:
    """One partition folder: its table, key, rows and source (None when the manifest
    cannot be read), status, and the problems behind a status other than ``ok``."""

    spec: TableSchema
    ref: PartitionRef
    rows: int | None
    source: str | None
    status: str
    problems: tuple[str, ...]


def partition_status(lake: Lake, spec: TableSchema, ref: PartitionRef, *, verify: bool) -> PartitionStatus:
    """The status of one partition folder; ``verify`` also checks every file's sha256
    (otherwise only the manifest is read)."""
    try:
        manifest = lake.manifest(spec, ref)
    except LakeError as exc:
        return PartitionStatus(spec, ref, None, None, BROKEN, (str(exc),))
    problems = tuple(lake.verify_partition(spec, ref)) if verify or manifest is None else ()
    if manifest is None or problems:
        return PartitionStatus(spec, ref, manifest.rows if manifest else None,
                               manifest.source if manifest else None, BROKEN, problems)
    stale = tuple(f"{spec.layer}.{spec.name} {ref}: built from {line}; rebuild it" for line in lake.stale_inputs(spec, ref))
    return PartitionStatus(spec, ref, manifest.rows, manifest.source, STALE if stale else OK, stale)


def lake_status(lake: Lake, *, verify: bool, only: PartitionRef | None = None) -> Iterator[PartitionStatus]:
    """:func:`partition_status` of every partition folder of every table (or of the
    partitions ``only``), in table then (date, underlying) order."""
    for spec in ALL_TABLES.values():
        for ref in lake.partition_folders(spec):
            if only is None or ref == only:
                yield partition_status(lake, spec, ref, verify=verify)
