"""The Dagster code location: assets, checks, jobs, resources, sensors and schedules.

A composition root: it only assembles. It reads no environment at import; resources
take their defaults from :mod:`m17_platform.settings` and can be overridden as run config.
"""

from dagster import Definitions

from assets.enriched import ENRICHED_TRADE_ASSETS, ENRICHED_TRADE_CHECKS
from assets.flow import FLOW_ASSETS, FLOW_CHECKS
from assets.greeks import GREEKS_ASSETS, GREEKS_CHECKS
from assets.jobs import capture_landing_job, ingest_job, main_job
from assets.levels import LEVEL_ASSETS, LEVEL_CHECKS
from assets.raw import RAW_ASSETS, RAW_CHECKS
from assets.reports import daily_report
from resources import CaptureResource, DuckDBResource, LakeResource, MarketDataResource
from sensors import SCHEDULES, SENSORS

defs = Definitions(
    assets=[*RAW_ASSETS, *ENRICHED_TRADE_ASSETS, *GREEKS_ASSETS, *FLOW_ASSETS, *LEVEL_ASSETS, daily_report],
    asset_checks=[*RAW_CHECKS, *ENRICHED_TRADE_CHECKS, *GREEKS_CHECKS, *FLOW_CHECKS, *LEVEL_CHECKS],
    jobs=[main_job, ingest_job, capture_landing_job],
    resources={
        "lake": LakeResource(),
        "duckdb": DuckDBResource(),
        "market_data": MarketDataResource(),
        "capture": CaptureResource(),
    },
    sensors=SENSORS,
    schedules=SCHEDULES,
)
