"""One builder for the asset checks of a lake table: a multi-asset check that reads the
partition the run is for (checksums verified) and turns the domain's CheckOutcomes into
Dagster check results, one per named check, with their statistics as metadata.

The outcomes are also kept beside the partition (:meth:`Lake.write_check_record`), so the
daily report shows what the checks found without running them again, as long as the
partition, its inputs and the settings are the ones they were taken on."""

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

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
from m17_platform import enrichment, quality, schemas
from m17_platform.flow import checks as flow_checks
from m17_platform.levels import checks as level_checks
from m17_platform.lake import Lake, PartitionRef
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
        outcomes = list(evaluate(*args))
        record_outcomes(store, spec, ref, outcomes, inputs)
        for outcome in outcomes:
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


@functools.cache
def checks_code_fingerprint() -> str:
    """Hex sha256 of the source of the modules that compute check outcomes (quality,
    enrichment, flow checks, schemas, the level chain): outcomes recorded by other code are stale."""
    h = hashlib.sha256()
    for module in (quality, enrichment, flow_checks, schemas):
        h.update(Path(module.__file__).read_bytes())
    for path in sorted(Path(level_checks.__file__).parent.glob("*.py")):  # the level chain the checks rerun
        h.update(path.read_bytes())
    return h.hexdigest()


def check_inputs(spec: TableSchema) -> list[TableSchema]:
    """The tables the checks of ``spec`` recompute from besides ``spec`` itself: a gold
    table's :data:`m17_platform.flow.checks.INPUTS`; none for raw and enriched tables."""
    names = {**flow_checks.INPUTS, "level_signals": level_checks.INPUTS}.get(spec.name, ()) if spec.layer == schemas.GOLD else ()
    return [schemas.table(name) for name in names]


def _input_shas(store: Lake, ref: PartitionRef, inputs: Sequence[TableSchema]) -> dict[str, str | None]:
    shas = {}
    for spec in inputs:
        manifest = store.manifest(spec, ref)
        shas[spec.name] = None if manifest is None else manifest.sha256
    return shas


def record_outcomes(store: Lake, spec: TableSchema, ref: PartitionRef, outcomes: Sequence[CheckOutcome],
                    inputs: Sequence[TableSchema] = ()) -> None:
    """Keep ``outcomes`` beside the partition, with the settings and code fingerprints
    and the sha256 of each input partition they were computed from. What the checks found
    only: their timings (:data:`m17_platform.quality.TIMING_KEYS`) stay in the Dagster
    metadata of the evaluation, so a rerun on the same data records the same bytes."""
    store.write_check_record(spec, ref, {
        "settings": DEFAULT.fingerprint(),
        "code": checks_code_fingerprint(),
        "inputs": _input_shas(store, ref, inputs),
        "outcomes": [asdict(quality.without_timings(o)) for o in outcomes],
    })


def recorded_outcomes(store: Lake, spec: TableSchema, ref: PartitionRef) -> list[CheckOutcome] | None:
    """The outcomes the table's checks recorded for this partition, or ``None`` when
    there are none or they are stale (the partition or one of its :func:`check_inputs`
    rewritten with other content, other settings, or other check code): the caller runs
    the checks itself then."""
    record = store.read_check_record(spec, ref)
    if (record is None or record.get("settings") != DEFAULT.fingerprint()
            or record.get("code") != checks_code_fingerprint()
            or record.get("inputs") != _input_shas(store, ref, check_inputs(spec))):
        return None
    try:
        return [CheckOutcome(**o) for o in record["outcomes"]]
    except (KeyError, TypeError):
        return None
