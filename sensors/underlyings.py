"""Keep the ``underlying`` dynamic partitions in step with the configured underlyings.

A configured name that is not a ticker (:func:`m17_platform.symbols.validate_underlying`)
is never registered: the tick logs it and registers the others.
"""

from dagster import (
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.partitions import UNDERLYINGS
from m17_platform.settings import DEFAULT
from m17_platform.symbols import validate_underlying


def _configured(context: SensorEvaluationContext) -> list[str]:
    """The configured underlyings in canonical form; bad names are logged and left out."""
    names = []
    for name in DEFAULT.universe.underlyings:
        try:
            names.append(validate_underlying(name))
        except ValueError as exc:
            context.log.warning(f"register_underlyings: not registering settings.universe.underlyings entry: {exc}")
    return list(dict.fromkeys(names))


@sensor(
    name="register_underlyings",
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description="adds the configured underlyings (settings.universe.underlyings) as 'underlying' partitions",
)
def register_underlyings(context: SensorEvaluationContext):
    configured = _configured(context)
    existing = set(context.instance.get_dynamic_partitions(UNDERLYINGS.name))
    missing = [u for u in configured if u not in existing]
    if not missing:
        return SkipReason(f"all {len(configured)} configured underlyings are registered")
    return SensorResult(
        dynamic_partitions_requests=[UNDERLYINGS.build_add_request(missing)],
        cursor=",".join(sorted(existing | set(missing))),
    )
