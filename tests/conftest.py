"""Shared fixtures: an isolated lake and Dagster instance per test."""

import datetime as dt
from pathlib import Path

import pytest

from m17_platform.lake import Lake, PartitionRef

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def spy_ref() -> PartitionRef:
    return PartitionRef(dt.date(2022, 5, 20), "SPY")
