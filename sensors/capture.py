"""Land a streaming capture's micro-batches into the lake soon after they are acknowledged.

The ``capture_batches`` sensor reads the landing zone's manifest (``CaptureResource``)
past its cursor, groups the new batches of the raw tables by partition (trade date x
underlying) and requests one ``capture_landing`` run per partition with
``market_data`` kind=capture. The run lands every batch of the partition that is not in
its ledger yet (:class:`m17_platform.capture.compaction.LandingSource`), so a repeated or
overlapping request changes nothing; its run key names the partition and its newest
batch, so the same request is never launched twice.

Cursor: ``{"seq": N}``, every batch up to N was requested, or passed over with a reason
(``ws_aggregates`` are not a raw table; a trade date that is not a trading-day
partition is logged and skipped). A partition whose previous run is still queued or
running is deferred to a later tick (the cursor stays before its first new batch), so
two runs never rewrite the same partition at once.
"""

import json
from collections import defaultdict

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.jobs import capture_landing_job
from assets.partitions import TRADING_DAYS, UNDERLYINGS, partition_key
from m17_platform.capture.compaction import CAPTURED_TABLES
from m17_platform.capture.landing import BatchEntry
from m17_platform.lake import PartitionRef
from resources import CaptureResource

CURSOR_SEQ = "seq"
TRIGGER = "capture"
PARTITION_TAG = "dagster/partition"
IN_FLIGHT = [
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def cursor_seq(cursor: str | None) -> int:
    """The last batch sequence number a cursor covers (0 for no cursor)."""
    return int(json.loads(cursor)[CURSOR_SEQ]) if cursor else 0


def capture_run_config(landing_root: str) -> dict:
    """Run config of a landing run: the raw assets read the capture's landing zone."""
    return {"resources": {"market_data": {"config": {"kind": "capture", "landing_root": landing_root}}}}


def _in_flight(context: SensorEvaluationContext, key: str) -> bool:
    """A run of partition ``key`` (any job) is queued, starting, running or being canceled."""
    return bool(context.instance.get_run_records(RunsFilter(tags={PARTITION_TAG: key}, statuses=IN_FLIGHT), limit=1))


@sensor(
    name="capture_batches",
    job=capture_landing_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="lands the micro-batches `m17 capture` acknowledged into their day's raw partitions "
    "(one capture_landing run per trade date x underlying with new batches); skips while there is no landing zone",
)
def capture_batches(context: SensorEvaluationContext, capture: CaptureResource):
    after = cursor_seq(context.cursor)
    root = capture.root()
    if not root.is_dir():
        return SkipReason(f"no landing zone at {root}")
    entries = capture.entries(after)
    if not entries:
        return SkipReason(f"no new batches in {root} after batch {after}")

    by_ref: dict[PartitionRef, list[BatchEntry]] = defaultdict(list)
    for entry in entries:
        if entry.table in CAPTURED_TABLES:  # ws_aggregates stay in the landing zone
            by_ref[entry.ref].append(entry)

    registered = set(context.instance.get_dynamic_partitions(UNDERLYINGS.name))
    new_underlyings: set[str] = set()
    requests: list[RunRequest] = []
    passed: list[str] = []  # partitions not requested this tick, and why
    held: int | None = None  # first new batch of a partition deferred to a later tick
    for ref, batches in sorted(by_ref.items(), key=lambda item: (item[0].trade_date, item[0].underlying)):
        first, last = batches[0].seq, batches[-1].seq
        day = ref.trade_date.isoformat()
        if not TRADING_DAYS.has_partition_key(day):
            passed.append(f"{ref}: not a trading day")
            context.log.warning(
                f"batches {first}-{last} of {ref} not landed: {day} is not a trading-day partition "
                f"(a weekend, an exchange holiday, or before {TRADING_DAYS.start:%Y-%m-%d} or after today)"
            )
            continue
        key = partition_key(ref)
        if _in_flight(context, str(key)):
            passed.append(f"{ref}: a run is in flight")
            context.log.info(f"batches {first}-{last} of {ref} wait: a run for the partition is queued or running")
            held = first if held is None else min(held, first)
            continue
        if ref.underlying not in registered:
            new_underlyings.add(ref.underlying)
        requests.append(
            RunRequest(
                run_key=f"capture:{day}|{ref.underlying}:{last}",
                partition_key=key,
                run_config=capture_run_config(str(root)),
                tags={"m17/trigger": TRIGGER, "m17/batches": f"{first}-{last}"},
            )
        )

    cursor = json.dumps({CURSOR_SEQ: entries[-1].seq if held is None else held - 1})
    if not requests:
        why = "; ".join(passed) or "only ws_aggregates"
        return SensorResult(skip_reason=f"batches {entries[0].seq}-{entries[-1].seq}: nothing to land ({why})",
                            cursor=cursor)
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[UNDERLYINGS.build_add_request(sorted(new_underlyings))] if new_underlyings else [],
        cursor=cursor,
    )
