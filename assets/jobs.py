"""Jobs over the asset graph."""

from dagster import AssetSelection, define_asset_job

from assets.partitions import DAY_BY_UNDERLYING

MAIN_JOB_NAME = "main"

main_job = define_asset_job(
    MAIN_JOB_NAME,
    selection=AssetSelection.all(),
    partitions_def=DAY_BY_UNDERLYING,
    description="every asset and asset check for one trading day x underlying: raw -> enriched -> gold",
)
