"""The state of every partition of a lake, for ``m17 lake`` and ``m17 lake verify``.

A partition is ``ok``, ``stale`` (computed from an input partition that was replaced
since: rebuild it), or ``broken`` (manifest missing, truncated or not matching its
files). Nothing here raises for a bad partition: each problem is a line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from m17_platform.errors import LakeError
from m17_platform.lake.manifest import MANIFEST_NAME, PartitionRef, file_sha256, verify_file
from m17_platform.lake.store import Lake
from m17_platform.schemas import ALL_TABLES, TableSchema

OK, STALE, BROKEN = "ok", "stale", "broken"


def verify_partition(lake: Lake, spec: TableSchema, ref: PartitionRef) -> list[str]:
    """Every problem of one partition folder, one line each (empty: it is sound):
    manifest missing, truncated or not a manifest, a file missing, a checksum that
    does not match, a changed extra file, a Parquet file the manifest does not name."""
    pdir = lake.partition_dir(spec, ref)
    where = f"{spec.layer}.{spec.name} {ref}"
    try:
        manifest = lake.manifest(spec, ref)
    except LakeError as exc:
        return [f"{where}: {exc}"]
    if manifest is None:
        return [f"{where}: {pdir} has no {MANIFEST_NAME} (an interrupted or foreign write); its files are not data"]
    problems = []
    for entry in manifest.files:
        try:
            verify_file(pdir / entry.name, entry)
        except LakeError as exc:
            problems.append(f"{where}: {exc}")
    for name, sha in manifest.extras.items():
        path = pdir / name
        if not path.exists() or file_sha256(path) != sha:
            problems.append(f"{where}: {path}: missing or changed since it was committed")
    named = {e.name for e in manifest.files}
    for path in sorted(pdir.glob("*.parquet")):
        if path.name not in named:
            problems.append(f"{where}: {path} is not named by the manifest (not data)")
    return problems

def stale_inputs(lake: Lake, spec: TableSchema, ref: PartitionRef) -> list[str]:
    """The inputs of a computed partition that changed since it was written (one
    line each: the input, and replaced or gone); empty when it is current or has no
    recorded inputs (raw tables)."""
    manifest = lake.manifest(spec, ref)
    out = []
    for key, sha in sorted((manifest.inputs if manifest else {}).items()):
        layer, _, name = key.partition(".")
        try:
            current = lake.manifest(ALL_TABLES[name], ref)
        except (KeyError, LakeError):
            current = None
        if current is None:
            out.append(f"{key} is gone")
        elif current.sha256 != sha:
            out.append(f"{key} was replaced")
    return out


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
    problems = tuple(verify_partition(lake, spec, ref)) if verify or manifest is None else ()
    if manifest is None or problems:
        return PartitionStatus(spec, ref, manifest.rows if manifest else None,
                               manifest.source if manifest else None, BROKEN, problems)
    stale = tuple(f"{spec.layer}.{spec.name} {ref}: built from {line}; rebuild it" for line in stale_inputs(lake, spec, ref))
    return PartitionStatus(spec, ref, manifest.rows, manifest.source, STALE if stale else OK, stale)


def lake_status(lake: Lake, *, verify: bool, only: PartitionRef | None = None) -> Iterator[PartitionStatus]:
    """:func:`partition_status` of every partition folder of every table (or of the
    partitions ``only``), in table then (date, underlying) order."""
    for spec in ALL_TABLES.values():
        for ref in lake.partition_folders(spec):
            if only is None or ref == only:
                yield partition_status(lake, spec, ref, verify=verify)
