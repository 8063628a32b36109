"""Real sources that fail or come up empty change nothing in the lake (each case was a
silent data loss: tables the source does not provide wiped, zero rows replacing rows,
a failed run leaving some tables replaced)."""

import datetime as dt
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from m17_platform import schemas
from m17_platform.errors import M17Error
from m17_platform.ingest import EMPTY, KEPT, EmptyReplacementError, ingest_day
from m17_platform.lake import Lake, PartitionRef
from m17_platform.settings import DEFAULT
from m17_platform.sources.databento import DatabentoSource
from m17_platform.sources.samples import SamplesSource

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
ES_DIR = SAMPLES / "databento_glbx_es_real"
ESH4_DAY = PartitionRef(dt.date(2023, 12, 26), "SPY")
ALL_RAW = list(schemas.RAW_TABLES)


def _state(lake: Lake, ref: PartitionRef) -> dict:
    return {name: (m.sha256, m.rows) if (m := lake.manifest(spec, ref)) else None
            for name, spec in schemas.RAW_TABLES.items()}


@pytest.fixture(scope="module")
def es_day(tmp_path_factory) -> Lake:
    """The real ESH4 MBO day ingested from the bundled samples (futures book and trades)."""
    lake = Lake(tmp_path_factory.mktemp("es") / "lake")
    ingest_day(lake, SamplesSource(SAMPLES, DEFAULT), ESH4_DAY, ALL_RAW)
    assert lake.manifest(schemas.FUTURES_MBP10, ESH4_DAY).rows > 40_000
    return lake


@pytest.fixture
def es_lake(es_day, tmp_path) -> Lake:
    shutil.copytree(es_day.root, tmp_path / "lake")
    return Lake(tmp_path / "lake")


def test_a_dbn_file_of_another_day_is_refused_not_written_as_zero_rows(es_lake):
    before = _state(es_lake, ESH4_DAY)
    other_day = DatabentoSource([ES_DIR / "esm4-glbx-mdp3-20240508T000000-000002.mbo.dbn.zst"])
    with pytest.raises(EmptyReplacementError, match=r"raw.futures_trades 2023-12-26\|SPY: source .* gave 0 rows "
                                                    r"where the lake holds 2,973"):
        ingest_day(es_lake, other_day, ESH4_DAY, ALL_RAW)
    assert _state(es_lake, ESH4_DAY) == before


def test_a_truncated_dbn_file_changes_no_table(es_lake, tmp_path):
    before = _state(es_lake, ESH4_DAY)
    data = (ES_DIR / "esh4-glbx-mdp3-20231225.mbo.dbn.zst").read_bytes()
    truncated = tmp_path / "esh4-truncated.mbo.dbn.zst"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(M17Error):
        ingest_day(es_lake, DatabentoSource([truncated]), ESH4_DAY, ALL_RAW)
    assert _state(es_lake, ESH4_DAY) == before


def test_a_failing_polygon_ingest_changes_nothing(es_day, tmp_path, polygon_server):
    from m17_platform.sources.polygon import PolygonRestSource

    # a lake day that holds a futures book, then a Polygon run whose trades fail after its quotes arrived
    lake, ref = Lake(tmp_path / "lake"), PartitionRef(dt.date(2022, 5, 10), "AAPL")
    for spec in schemas.RAW_TABLES.values():
        lake.write(spec, ref, es_day.read(spec, ESH4_DAY), source="earlier")
    before = _state(lake, ref)
    polygon_server.scripted["/v3/trades/AAPL"] = [(503, b'{"status":"ERROR","error":"maintenance"}', {})] * 2
    cfg = replace(DEFAULT, polygon=replace(DEFAULT.polygon, backoff_seconds=0.01, max_retries=1))
    source = PolygonRestSource(cfg, api_key="test-key-3f9c1a7e", base_url=polygon_server.url, sleep=lambda s: None)
    with pytest.raises(M17Error, match="HTTP 503"):
        ingest_day(lake, source, ref, ["stock_quotes", "stock_trades", "futures_mbp10", "rates"])
    assert _state(lake, ref) == before
    assert lake.manifest(schemas.FUTURES_MBP10, ref).rows == 47_023


def test_the_same_source_again_keeps_what_it_does_not_provide(es_lake):
    es_only = DatabentoSource([ES_DIR / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"])
    before = _state(es_lake, ESH4_DAY)
    outcomes = {o.table: o.action for o in ingest_day(es_lake, es_only, ESH4_DAY, ALL_RAW)}
    assert outcomes["stock_quotes"] == KEPT and outcomes["option_contracts"] == KEPT
    # the constant rates are staged again from the settings: the same bytes
    assert outcomes["rates"] == EMPTY
    assert _state(es_lake, ESH4_DAY) == before
    assert es_lake.manifest(schemas.FUTURES_MBP10, ESH4_DAY).rows == 47_023
