"""What every enriched asset shares: its decorator, its partition write, and its checks.

An enriched asset reads its inputs' partitions from the lake, calls the domain, and
writes one partition through :func:`write_partition`; its checks come from
:data:`m17_platform.enrichment.CHECKS` through :func:`enriched_checks`.
"""

from collections.abc import Sequence

import polars as pl
from dagster import AssetExecutionContext, DataVersion, MaterializeResult, asset

from assets.checks import build_partition_checks, table_key
from assets.metadata import column_schema, manifest_metadata
from assets.partitions import DAY_BY_UNDERLYING, partition_ref
from m17_platform import enrichment
from m17_platform.schemas import ENRICHED, TableSchema
from m17_platform.settings import DEFAULT
from resources import LakeResource


def enriched_asset(spec: TableSchema, inputs: Sequence[TableSchema]):
    """The ``@asset`` decorator of enriched table ``spec``, depending on ``inputs``."""
    return asset(
        name=spec.name,
        key_prefix=[ENRICHED],
        group_name=ENRICHED,
        partitions_def=DAY_BY_UNDERLYING,
        deps=[table_key(s) for s in inputs],
        description=spec.description,
        metadata={"dagster/column_schema": column_schema(spec)},
        kinds={"parquet", "numba"},
    )


def write_partition(
    context: AssetExecutionContext,
    lake: LakeResource,
    spec: TableSchema,
    frame,
    inputs: Sequence[TableSchema],
    stats: dict,
) -> MaterializeResult:
    """Write ``frame`` (a polars DataFrame, or an iterator of them streamed through
    :meth:`m17_platform.lake.Lake.write_chunks`; then ``stats`` is read after the last
    chunk) as the run's partition of ``spec``; the manifest names the inputs and their
    sha256, the materialization carries the partition's sha256 as its data version."""
    ref, store = partition_ref(context.partition_key), lake.lake()
    source = "enriched from " + ", ".join(f"{s.layer}.{s.name}" for s in inputs)
    chunks = [frame] if isinstance(frame, pl.DataFrame) else frame
    manifest = store.write_chunks(spec, ref, chunks, source=source, stats=stats, settings=DEFAULT.ingest,
                                  inputs=store.input_shas(inputs, ref))
    return MaterializeResult(metadata=manifest_metadata(manifest, str(store.partition_dir(spec, ref))),
                             data_version=DataVersion(manifest.sha256))


def enriched_checks(specs: Sequence[TableSchema]) -> list:
    """One multi-asset check per enriched table, running its :data:`enrichment.CHECKS`."""
    return [
        build_partition_checks(
            spec,
            enrichment.CHECKS[spec.name],
            lambda batches, ref, name=spec.name: enrichment.check_table_batches(name, batches),
            name=f"{spec.name}_checks",
            batched=True,
        )
        for spec in specs
    ]
