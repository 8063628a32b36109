"""The platform's partitions: trading day x underlying.

Trading days come from the exchange calendar (weekends and exchange holidays are
excluded, so they are never partitions); underlyings are Dagster dynamic partitions,
registered from settings by the ``register_underlyings`` sensor, by ``m17 demo`` and
``m17 underlyings add``, or from the UI.
"""

import datetime as dt

from dagster import DailyPartitionsDefinition, DynamicPartitionsDefinition, MultiPartitionsDefinition, MultiPartitionKey

from m17_platform import calendar
from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT

DATE_DIMENSION = "date"
UNDERLYING_DIMENSION = "underlying"
WEEKENDS = "0 0 * * 6,0"


def _holiday_exclusions() -> list[dt.datetime]:
    sessions = DEFAULT.sessions
    return [
        dt.datetime.combine(day, dt.time())
        for day in calendar.non_trading_weekdays(sessions.first_day, calendar.last_calendar_day(sessions), sessions)
    ]


TRADING_DAYS = DailyPartitionsDefinition(
    start_date=DEFAULT.sessions.first_day.isoformat(),
    timezone=DEFAULT.sessions.timezone,
    end_offset=1,  # today's partition exists while the day trades (live capture lands in it)
    exclusions=[WEEKENDS, *_holiday_exclusions()],
)
UNDERLYINGS = DynamicPartitionsDefinition(name="underlying")
DAY_BY_UNDERLYING = MultiPartitionsDefinition({DATE_DIMENSION: TRADING_DAYS, UNDERLYING_DIMENSION: UNDERLYINGS})


def partition_key(ref: PartitionRef) -> MultiPartitionKey:
    """The Dagster key of a lake partition (CLI spelling: ``2016-06-01|VIX``)."""
    return MultiPartitionKey({DATE_DIMENSION: ref.trade_date.isoformat(), UNDERLYING_DIMENSION: ref.underlying})


def partition_ref(key) -> PartitionRef:
    """The lake partition of a Dagster multi-partition key (or its ``date|underlying`` string)."""
    if isinstance(key, MultiPartitionKey):
        dims = key.keys_by_dimension
    else:
        dims = DAY_BY_UNDERLYING.get_partition_key_from_str(str(key)).keys_by_dimension
    return PartitionRef(dt.date.fromisoformat(dims[DATE_DIMENSION]), dims[UNDERLYING_DIMENSION])
