"""Keep the ``underlying`` dynamic partitions in step with the configured underlyings."""

from dagster import DefaultSensorStatus, SensorEvaluationContext, SensorResult, SkipReason, sensor

from assets.partitions import UNDERLYINGS
from m17_platform.settings import DEFAULT


@sensor(
    name="register_underlyings",
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.RUNNING,
    description="adds the configured underlyings (settings.universe.underlyings) as 'underlying' partitions",
)
def register_underlyings(context: SensorEvaluationContext):
    existing = set(context.instance.get_dynamic_partitions(UNDERLYINGS.name))
    missing = [u for u in DEFAULT.universe.underlyings if u not in existing]
    if not missing:
        return SkipReason(f"all {len(DEFAULT.universe.underlyings)} configured underlyings are registered")
    return SensorResult(
        dynamic_partitions_requests=[UNDERLYINGS.build_add_request(missing)],
        cursor=",".join(sorted(existing | set(missing))),
    )
