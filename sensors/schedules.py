"""Schedules: the end-of-day run of every registered underlying.

A partition whose day the streaming capture landed batches for (``CaptureResource``'s
manifest has acknowledged batches of a raw table for that day and underlying) runs with
``market_data`` kind=capture, so every batch lands in the raw partitions (each once)
before the enrichment reads them; the other partitions run with the default source.

A registered name that is not a ticker in canonical form
(:func:`m17_platform.symbols.validate_underlying`, e.g. ``A|B`` registered from the UI
before names were checked) is skipped with a warning in the tick's log: the other
underlyings still run (``m17 underlyings remove NAME`` removes it).
"""

import datetime as dt

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from assets.jobs import main_job
from assets.partitions import UNDERLYINGS, partition_key
from m17_platform import calendar
from m17_platform.capture.compaction import CAPTURED_TABLES
from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT
from m17_platform.symbols import validate_underlying
from resources import CaptureResource
from sensors.capture import capture_run_config


@schedule(
    job=main_job,
    cron_schedule="30 18 * * 1-5",
    execution_timezone=DEFAULT.sessions.timezone,
    default_status=DefaultScheduleStatus.STOPPED,
    name="end_of_day",
    description="18:30 ET on weekdays: materialize the day's partition of every registered underlying "
    "(from the capture's landing zone where it captured the day, else the default source)",
)
def end_of_day(context: ScheduleEvaluationContext, capture: CaptureResource):
    day: dt.date = context.scheduled_execution_time.date()
    if not calendar.is_trading_day(day):
        return SkipReason(f"{day.isoformat()} is not a trading day")
    registered = context.instance.get_dynamic_partitions(UNDERLYINGS.name)
    if not registered:
        return SkipReason("no underlyings registered")
    underlyings, bad = partition_underlyings(registered)
    for name, reason in bad.items():
        context.log.warning(f"end_of_day: skipped registered underlying {name!r}: {reason} "
                            f"(remove it with: m17 underlyings remove {name!r})")
    if not underlyings:
        return SkipReason(f"no registered underlying is a valid ticker; skipped {sorted(bad)}")
    root = capture.root()
    captured: dict[str, list[int]] = {}
    for entry in capture.entries():
        if entry.table in CAPTURED_TABLES and entry.ref.trade_date == day:
            captured.setdefault(entry.underlying, []).append(entry.seq)
    requests = []
    for u in sorted(underlyings):
        seqs = captured.get(u)
        tags = {"m17/trigger": "end_of_day"}
        if seqs:
            tags["m17/batches"] = f"{min(seqs)}-{max(seqs)}"
        requests.append(
            RunRequest(
                run_key=f"end_of_day:{day.isoformat()}|{u}",
                partition_key=partition_key(PartitionRef(day, u)),
                run_config=capture_run_config(str(root)) if seqs else {},
                tags=tags,
            )
        )
    return requests


def partition_underlyings(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """Split registered underlying names into the valid ones (sorted) and the bad ones.

    Returns
    -------
    (list[str], dict[str, str])
        Names equal to their :func:`~m17_platform.symbols.validate_underlying` form, and
        name -> one-line reason for the others (not a ticker, or not upper case).
    """
    good, bad = [], {}
    for name in names:
        try:
            canonical = validate_underlying(name)
        except ValueError as exc:
            bad[name] = str(exc)
            continue
        if canonical != name:
            bad[name] = f"underlying {name!r} is not in canonical form {canonical!r}"
        else:
            good.append(name)
    return sorted(good), bad
