"""One builder for the asset checks of a lake table: a multi-asset check that reads the
partition the run is for (checksums verified) and turns the domain's CheckOutcomes into
Dagster check results, one per named check, with their statistics as metadata."""

from collections.abc import Callable, Sequence

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    Failure,
    multi_asset_check,
)

from assets.partitions import partition_ref
from m17_platform.lake import PartitionRef
from m17_platform.quality import CheckOutcome
from m17_platform.schemas import TableSchema
from m17_platform.settings import DEFAULT
from resources import LakeResource


def table_key(spec: TableSchema) -> AssetKey:
    """The asset key of a lake table: ``<layer>/<table>``."""
    return AssetKey([spec.layer, spec.name])


def build_partition_checks(
    spec: TableSchema,
    checks: Sequence[tuple[str, str]],
    evaluate: Callable[[object, PartitionRef], list[CheckOutcome]],
    *,
    name: str,
    batched: bool = False,
    inputs: Sequence[TableSchema] = (),
):
    """A ``multi_asset_check`` over one partition of ``spec``.

    checks : (check name, description) pairs, declared before any data exists.
    evaluate : called with (the partition's polars DataFrame, its PartitionRef); returns
        one CheckOutcome per declared name (others are ignored). With ``batched`` it gets
        an iterator of batches that never split an instrument
        (:meth:`m17_platform.lake.Lake.iter_batches`, ``QualitySettings.batch_rows``)
        instead of the whole frame, so a day larger than memory is checked in bounded memory.
    inputs : tables the checks recompute from (a gold table's inputs): their partitions
        are read (checksums verified) and passed as a third argument, a dict by table name;
        the checks declare them as additional dependencies.
    """
    key = table_key(spec)
    deps = [table_key(s) for s in inputs]
    specs = [AssetCheckSpec(check, asset=key, description=text, additional_deps=deps or None) for check, text in checks]

    @multi_asset_check(name=name, specs=specs, can_subset=True)
    def _checks(context: AssetCheckExecutionContext, lake: LakeResource):
        if not context.has_partition_key:
            raise Failure(
                f"the {spec.name} checks validate one partition: launch them with a partition "
                "(materialize the asset, or run the job for a date|underlying key)"
            )
        ref = partition_ref(context.partition_key)
        store = lake.lake()
        if batched:
            data = store.iter_batches(spec, ref, max_rows=DEFAULT.quality.batch_rows, verify=True)
        else:
            data = store.read(spec, ref, verify=True)
        selected = {k.name for k in context.selected_asset_check_keys}
        args = (data, ref, {s.name: store.read(s, ref, verify=True) for s in inputs}) if inputs else (data, ref)
        for outcome in evaluate(*args):
            if outcome.name not in selected:
                continue
            yield AssetCheckResult(
                asset_key=key,
                check_name=outcome.name,
                passed=outcome.passed,
                severity=AssetCheckSeverity(outcome.severity),
                description=outcome.description,
                metadata=outcome.metadata,
            )

    return _checks
