"""Schedules: the end-of-day run of every registered underlying."""

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
from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT


@schedule(
    job=main_job,
    cron_schedule="30 18 * * 1-5",
    execution_timezone=DEFAULT.sessions.timezone,
    default_status=DefaultScheduleStatus.STOPPED,
    name="end_of_day",
    description="18:30 ET on weekdays: materialize the day's partition of every registered underlying",
)
def end_of_day(context: ScheduleEvaluationContext):
    day: dt.date = context.scheduled_execution_time.date()
    if not calendar.is_trading_day(day):
        return SkipReason(f"{day.isoformat()} is not a trading day")
    underlyings = context.instance.get_dynamic_partitions(UNDERLYINGS.name)
    if not underlyings:
        return SkipReason("no underlyings registered")
    return [
        RunRequest(
            run_key=f"end_of_day:{day.isoformat()}|{u}",
            partition_key=partition_key(PartitionRef(day, u)),
            tags={"m17/trigger": "end_of_day"},
        )
        for u in sorted(underlyings)
    ]
