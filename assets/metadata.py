"""Materialization metadata shared by every layer's assets."""

from dagster import MetadataValue, TableColumn, TableSchema as DagsterTableSchema

from m17_platform.lake import Manifest
from m17_platform.schemas import TableSchema


def column_schema(spec: TableSchema) -> DagsterTableSchema:
    """The table's columns for Dagster's UI: name, Arrow type, unit and description."""
    cols = []
    for fld in spec.schema:
        meta = {k.decode(): v.decode() for k, v in (fld.metadata or {}).items()}
        cols.append(TableColumn(fld.name, str(fld.type), description=f"[{meta.get('unit', '')}] {meta.get('description', '')}"))
    return DagsterTableSchema(columns=cols)


def manifest_metadata(manifest: Manifest, path: str) -> dict:
    """Materialization metadata from a partition's manifest."""
    meta = {
        "dagster/row_count": manifest.rows,
        "path": MetadataValue.path(path),
        "sha256": manifest.sha256,
        "source": manifest.source,
    }
    if manifest.ts_min_ns is not None:
        meta["ts_min_ns"] = manifest.ts_min_ns
        meta["ts_max_ns"] = manifest.ts_max_ns
    for key, value in sorted(manifest.stats.items()):
        meta[f"stats/{key}"] = value
    return meta
