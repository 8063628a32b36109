"""Jobs over the asset graph."""

from dagster import AssetSelection, define_asset_job

from m17_platform.schemas import RAW

MAIN_JOB_NAME = "main"
INGEST_JOB_NAME = "ingest"

# partitioned by trading day x underlying, inferred from the selected assets
main_job = define_asset_job(
    MAIN_JOB_NAME,
    selection=AssetSelection.all(),
    description="every asset and asset check for one trading day x underlying: raw -> enriched -> gold",
)

ingest_job = define_asset_job(
    INGEST_JOB_NAME,
    selection=AssetSelection.groups(RAW),
    description="the raw layer and its quality checks for one trading day x underlying, from the run's source "
    "(resource market_data: samples, synthetic, polygon, flatfiles, databento)",
)
