"""Dagster resources: thin, configurable wrappers over the m17_platform domain."""

from resources.capture import CaptureResource
from resources.lake import DuckDBResource, LakeResource
from resources.market_data import MarketDataResource

__all__ = ["CaptureResource", "DuckDBResource", "LakeResource", "MarketDataResource"]
