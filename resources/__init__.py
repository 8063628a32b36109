"""Dagster resources: thin, configurable wrappers over the m17_platform domain."""

from resources.lake import DuckDBResource, LakeResource
from resources.market_data import MarketDataResource

__all__ = ["DuckDBResource", "LakeResource", "MarketDataResource"]
