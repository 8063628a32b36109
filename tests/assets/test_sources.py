"""Every source fills the raw partitions through the same raw assets: the ingest job run
in-process with ``market_data.kind`` set, against loopback stand-ins (no network)."""

import datetime as dt
import gzip
from pathlib import Path

import boto3
import dagster as dg
import pytest
from moto.server import ThreadedMotoServer

from assets.jobs import INGEST_JOB_NAME
from assets.partitions import partition_key
from m17_platform.definitions import defs
from m17_platform.lake import Lake, PartitionRef
from m17_platform.schemas import OPTION_QUOTES, OPTION_TRADES, RAW_TABLES, STOCK_QUOTES, STOCK_TRADES
from m17_platform.sources.flatfiles import DATASETS


def ingest(tmp_path, ref: PartitionRef, market_data: dict, *, tables=None):
    """Run the ingest job for ``ref`` (optionally a subset of raw tables) into a fresh lake."""
    selection = None if tables is None else [dg.AssetKey(["raw", t]) for t in tables]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("underlying", [ref.underlying])
        result = defs.resolve_job_def(INGEST_JOB_NAME).execute_in_process(
            partition_key=partition_key(ref),
            instance=instance,
            asset_selection=selection,
            run_config={
                "resources": {
                    "lake": {"config": {"root": str(tmp_path / "lake")}},
                    "market_data": {"config": market_data},
                }
            },
            raise_on_error=False,
        )
    return result, Lake(tmp_path / "lake")


def test_unknown_source_kind_is_refused_by_config_or_environment(tmp_path, monkeypatch):
    ref = PartitionRef(dt.date(2022, 5, 10), "AAPL")
    with pytest.raises(dg.DagsterInvalidConfigError, match="kind"):
        ingest(tmp_path, ref, {"kind": "bloomberg"}, tables=["rates"])
    monkeypatch.setenv("M17_SOURCE", "bloomberg")
    result, _ = ingest(tmp_path, ref, {}, tables=["rates"])
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "unknown source kind 'bloomberg'" in failure.event_specific_data.error.cause.message


def test_source_kind_defaults_to_the_environment(tmp_path, monkeypatch, polygon_server):
    monkeypatch.setenv("M17_SOURCE", "polygon")
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    result, _ = ingest(tmp_path, PartitionRef(dt.date(2022, 5, 10), "AAPL"), {}, tables=["stock_quotes"])
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "POLYGON_API_KEY" in failure.event_specific_data.error.cause.message


def test_polygon_rest_fills_stock_partitions_over_loopback(tmp_path, polygon_server, monkeypatch):
    monkeypatch.setenv("POLYGON_API_KEY", "test-key-3f9c1a7e")
    monkeypatch.setenv("M17_REST_BASE_URL", polygon_server.url)
    polygon_server.routes["/v3/trades/AAPL"] = "v3/trades/AAPL&limit=2.json"
    ref = PartitionRef(dt.date(2022, 5, 10), "AAPL")
    result, lake = ingest(tmp_path, ref, {"kind": "polygon"}, tables=["stock_quotes", "stock_trades", "rates"])
    assert result.success
    quotes = lake.read(STOCK_QUOTES, ref, verify=True)
    manifest = lake.manifest(STOCK_QUOTES, ref)
    assert quotes.height == 20 and manifest.source == "polygon.rest"
    assert manifest.stats["quote_sizes_converted_from_round_lots"] == 20 and manifest.stats["http_requests"] >= 2
    # the key went in the Authorization header only: never into the lake
    assert all(r.authorization == "Bearer test-key-3f9c1a7e" for r in polygon_server.requests)
    for path in (tmp_path / "lake").rglob("*"):
        if path.is_file():
            assert b"test-key-3f9c1a7e" not in path.read_bytes(), path
    checks = {(e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks[("stock_quotes", "schema")] and checks[("stock_quotes", "sorted")]
    assert lake.manifest(STOCK_TRADES, ref).stats["corrected"] == 2


@pytest.fixture
def s3(monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    monkeypatch.setenv("POLYGONIO_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("POLYGONIO_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("M17_FLATFILES_ENDPOINT", endpoint)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="flatfiles")
    try:
        yield client
    finally:
        server.stop()


def test_flat_files_stream_into_the_raw_partitions(tmp_path, s3):
    day = dt.date(2024, 3, 7)
    t0 = 1709821800_000_000_000  # 09:30 ET
    trades = ["ticker,conditions,correction,exchange,participant_timestamp,price,sip_timestamp,size"]
    quotes = ["ticker,ask_exchange,ask_price,ask_size,bid_exchange,bid_price,bid_size,sequence_number,sip_timestamp"]
    # two contracts, quotes every second, a print after each tenth quote; another underlying mixed in
    for i in range(600):
        for ticker in ("O:SPY240307C00510000", "O:SPY240307P00505000", "O:QQQ240307C00440000"):
            ts = t0 + i * 1_000_000_000
            quotes.append(f"{ticker},301,1.{i % 90 + 10:02d},10,302,1.{i % 90 + 5:02d},12,{i},{ts}")
            if i % 10 == 0:
                trades.append(f'{ticker},"209",0,302,{ts + 5_000},1.{i % 90 + 10:02d},{ts + 10_000},{1 + i % 7}')
    for table, lines in (("option_trades", trades), ("option_quotes", quotes)):
        s3.put_object(Bucket="flatfiles", Key=DATASETS[table].key(day), Body=gzip.compress(("\n".join(lines) + "\n").encode()))
    ref = PartitionRef(day, "SPY")
    result, lake = ingest(tmp_path, ref, {"kind": "flatfiles"}, tables=["option_trades", "option_quotes", "rates"])
    assert result.success
    got_q, got_t = lake.read(OPTION_QUOTES, ref, verify=True), lake.read(OPTION_TRADES, ref, verify=True)
    assert got_q.height == 1200 and got_t.height == 120
    assert set(got_q["underlying"]) == {"SPY"}
    assert lake.manifest(OPTION_QUOTES, ref).stats["rows_other_underlyings"] == 600
    # the lake keeps the sort key order: contract, then time
    assert got_q["option_symbol"].to_list() == sorted(got_q["option_symbol"].to_list())
    failed = [(e.asset_key.path[-1], e.check_name) for e in result.get_asset_check_evaluations() if not e.passed]
    assert failed == []
    assert set(RAW_TABLES) >= {"option_trades", "option_quotes"}


def test_databento_files_fill_the_same_partitions_as_the_samples(tmp_path):
    from m17_platform.schemas import FUTURES_MBP10, FUTURES_TRADES

    samples = Path(__file__).resolve().parents[2] / "data" / "samples"
    mbo = samples / "databento_glbx_es_real" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
    ref = PartitionRef(dt.date(2023, 12, 26), "SPY")
    tables = ["futures_trades", "futures_mbp10"]
    result, lake = ingest(tmp_path / "db", ref, {"kind": "databento", "databento_files": [str(mbo)]}, tables=tables)
    assert result.success
    expected, lake_s = ingest(tmp_path / "samples", ref, {"kind": "samples", "samples_dir": str(samples)}, tables=tables)
    assert expected.success
    for spec in (FUTURES_TRADES, FUTURES_MBP10):
        got, want = lake.read(spec, ref, verify=True), lake_s.read(spec, ref, verify=True)
        assert got.height > 1000 and got.equals(want), spec.name
    assert lake.manifest(FUTURES_TRADES, ref).source.startswith("databento")
