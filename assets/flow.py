"""Gold layer, flow analytics: flow windows (with M17's plain-text window artifact), flow
packets, classifier alerts, dealer gamma exposure, off-exchange prints and events, and
OHLCV / VWAP bars, each partitioned by trading day x underlying, with their checks
beside them.

An asset reads its inputs' partitions, calls its builder in :mod:`m17_platform.flow.gold`
and writes one partition; its checks (:data:`m17_platform.flow.checks.CHECKS`) re-read the
partition and the tables it was built from (:data:`m17_platform.flow.checks.INPUTS`).
"""

from dagster import AssetExecutionContext, DataVersion, MaterializeResult, asset

from assets.checks import build_partition_checks, check_inputs, table_key
from assets.metadata import column_schema, manifest_metadata
from assets.partitions import DAY_BY_UNDERLYING, partition_ref
from m17_platform.flow import checks as flow_checks
from m17_platform.flow import gold
from m17_platform.schemas import (
    BARS,
    FLOW_ALERTS,
    FLOW_PACKETS,
    FLOW_WINDOWS,
    GAMMA_EXPOSURE,
    GOLD,
    FLOW_TABLES,
    OFF_EXCHANGE_EVENTS,
    OFF_EXCHANGE_PRINTS,
    OPTION_QUOTE_GREEKS,
    OPTION_VENDOR_GREEKS,
    TableSchema,
    table,
)
from m17_platform.settings import DEFAULT
from resources import LakeResource


def _inputs(spec: TableSchema) -> list[TableSchema]:
    return [table(name) for name in gold.INPUTS[spec.name]]


def gold_asset(spec: TableSchema):
    """The ``@asset`` decorator of gold table ``spec``, depending on the tables it is built from."""
    return asset(
        name=spec.name,
        key_prefix=[GOLD],
        group_name=GOLD,
        partitions_def=DAY_BY_UNDERLYING,
        deps=[table_key(s) for s in _inputs(spec)],
        description=spec.description,
        metadata={"dagster/column_schema": column_schema(spec), "sort_key": ", ".join(spec.sort_key)},
        kinds={"parquet", "polars", "numba"},
    )


def _read(context: AssetExecutionContext, lake: LakeResource, spec: TableSchema) -> list:
    """The partitions of ``spec``'s inputs; of the option quote greeks (a row per quote,
    tens of millions on a full day) only the rows at the vendor's open-interest snapshots."""
    ref, store = partition_ref(context.partition_key), lake.lake()
    frames = {s.name: store.read(s, ref) for s in _inputs(spec) if s is not OPTION_QUOTE_GREEKS}
    if OPTION_QUOTE_GREEKS in _inputs(spec):
        batches = store.iter_batches(OPTION_QUOTE_GREEKS, ref, max_rows=DEFAULT.ingest.chunk_rows,
                                     columns=gold.SNAPSHOT_QUOTE_GREEKS_COLUMNS)
        frames[OPTION_QUOTE_GREEKS.name] = gold.snapshot_quote_greeks(batches, frames[OPTION_VENDOR_GREEKS.name])
    return [frames[s.name] for s in _inputs(spec)]


def _write(context: AssetExecutionContext, lake: LakeResource, spec: TableSchema, frame, stats: dict,
           extras: dict | None = None) -> MaterializeResult:
    ref, store = partition_ref(context.partition_key), lake.lake()
    source = "gold from " + ", ".join(f"{s.layer}.{s.name}" for s in _inputs(spec))
    manifest = store.write(spec, ref, frame, source=source, stats=stats, extras=extras,
                           inputs=store.input_shas(_inputs(spec), ref))
    return MaterializeResult(metadata=manifest_metadata(manifest, str(store.partition_dir(spec, ref))),
                             data_version=DataVersion(manifest.sha256))


@gold_asset(FLOW_WINDOWS)
def flow_windows(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    frame, stats, text = gold.build_flow_windows(*_read(context, lake, FLOW_WINDOWS))
    return _write(context, lake, FLOW_WINDOWS, frame, stats, {DEFAULT.flow.artifact_name: text})


@gold_asset(FLOW_PACKETS)
def flow_packets(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    frame, stats = gold.build_flow_packets(*_read(context, lake, FLOW_PACKETS))
    return _write(context, lake, FLOW_PACKETS, frame, stats)


@gold_asset(FLOW_ALERTS)
def flow_alerts(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref = partition_ref(context.partition_key)
    frame, stats = gold.build_flow_alerts(*_read(context, lake, FLOW_ALERTS), ref.trade_date)
    return _write(context, lake, FLOW_ALERTS, frame, stats)


@gold_asset(GAMMA_EXPOSURE)
def gamma_exposure(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    ref = partition_ref(context.partition_key)
    frame, stats = gold.build_gamma_exposure(*_read(context, lake, GAMMA_EXPOSURE), ref.trade_date, ref.underlying)
    return _write(context, lake, GAMMA_EXPOSURE, frame, stats)


@gold_asset(OFF_EXCHANGE_PRINTS)
def off_exchange_prints(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    frame, stats = gold.build_off_exchange_prints(*_read(context, lake, OFF_EXCHANGE_PRINTS))
    return _write(context, lake, OFF_EXCHANGE_PRINTS, frame, stats)


@gold_asset(OFF_EXCHANGE_EVENTS)
def off_exchange_events(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    frame, stats = gold.build_off_exchange_events(*_read(context, lake, OFF_EXCHANGE_EVENTS))
    return _write(context, lake, OFF_EXCHANGE_EVENTS, frame, stats)


@gold_asset(BARS)
def bars(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
    frame, stats = gold.build_bars(*_read(context, lake, BARS))
    return _write(context, lake, BARS, frame, stats)


def gold_checks(spec: TableSchema):
    """The checks of gold table ``spec`` (:data:`m17_platform.flow.checks.CHECKS`), which
    recompute from the tables it was built from (:data:`m17_platform.flow.checks.INPUTS`)."""
    return build_partition_checks(
        spec,
        flow_checks.CHECKS[spec.name],
        lambda frame, ref, inputs, name=spec.name: flow_checks.check_table(name, frame, inputs),
        name=f"{spec.name}_checks",
        inputs=check_inputs(spec),
    )


FLOW_ASSETS = [flow_windows, flow_packets, flow_alerts, gamma_exposure, off_exchange_prints, off_exchange_events, bars]
FLOW_CHECKS = [gold_checks(spec) for spec in FLOW_TABLES.values()]
