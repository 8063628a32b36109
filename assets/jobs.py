"""Jobs over the asset graph."""

from dagster import AssetKey, AssetSelection, define_asset_job

from m17_platform.capture.compaction import CAPTURED_TABLES
from m17_platform.schemas import RAW

MAIN_JOB_NAME = "main"
INGEST_JOB_NAME = "ingest"
CAPTURE_LANDING_JOB_NAME = "capture_landing"

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

# the raw tables a capture fills, partitioned by trading day x underlying (inferred from the
# assets); selecting the assets selects their checks too, so every landing is validated
# (the capture_batches sensor sets market_data kind=capture)
capture_landing_job = define_asset_job(
    CAPTURE_LANDING_JOB_NAME,
    selection=AssetSelection.assets(*(AssetKey([RAW, table]) for table in CAPTURED_TABLES)),
    description="land captured micro-batches into the day's raw partitions, then run the raw checks",
)
