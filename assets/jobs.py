"""Jobs over the asset graph."""

from dagster import AssetSelection, define_asset_job

MAIN_JOB_NAME = "main"

# partitioned by trading day x underlying, inferred from the selected assets
main_job = define_asset_job(
    MAIN_JOB_NAME,
    selection=AssetSelection.all(),
    description="every asset and asset check for one trading day x underlying: raw -> enriched -> gold",
)
