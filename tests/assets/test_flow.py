"""The gold flow assets of the materialized sample partitions: every gold table written for
every partition, every gold check passed, and the numbers tied back to the enriched prints."""

import datetime as dt

import polars as pl
import pytest

from m17_platform import schemas
from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT
from m17_platform.sources.samples import SAMPLE_PARTITIONS

VIX_TRADES = PartitionRef(dt.date(2016, 6, 1), "VIX")
NS = 1_000_000_000


def _read(lake, name, ref):
    return lake.read(schemas.table(name), ref, verify=True)


def test_every_gold_table_and_check_for_every_partition(materialized):
    lake, _, results = materialized
    for part in SAMPLE_PARTITIONS:
        result = results[str(part.ref)]
        assert result.success, str(part.ref)
        for spec in schemas.GOLD_TABLES.values():
            manifest = lake.manifest(spec, part.ref)
            assert manifest is not None, (spec.name, str(part.ref))
            assert manifest.source.startswith("gold from ")
        gold = [e for e in result.get_asset_check_evaluations() if e.asset_key.path[0] == schemas.GOLD]
        assert {e.asset_key.path[1] for e in gold} == set(schemas.FLOW_TABLES) | {"level_signals"}
        failed = [(e.asset_key.path[1], e.check_name, e.metadata) for e in gold if not e.passed]
        # a partition without an ES book has empty level tables and says so in a WARN check
        has_book = lake.manifest(schemas.FUTURES_MBP10, part.ref).rows > 0
        expected = [] if has_book else [("level_signals", "es_book")]
        assert [(t, c) for t, c, _ in failed] == expected, (str(part.ref), failed)


def test_vix_flow_windows_tie_to_the_enriched_prints(materialized):
    lake, _, results = materialized
    enriched = _read(lake, "option_trades_enriched", VIX_TRADES)
    windows = _read(lake, "flow_windows", VIX_TRADES)
    live = enriched.filter(~pl.col("canceled"))
    for (grain, length), part in windows.group_by(["grain", "window_ns"]):
        assert part["volume"].sum() == live["size"].sum(), (grain, length)
        assert part["premium"].sum() == pytest.approx((live["price"] * live["size"] * live["multiplier"]).sum())
        assert part["buy_volume"].sum() == live.filter(pl.col("side") == "buy")["size"].sum()
    ten = windows.filter((pl.col("grain") == "underlying") & (pl.col("window_ns") == 600 * NS)).sort("window_start_ns")
    # M17's artifact beside the Parquet: one line per 10-min window, in order
    text = (lake.partition_dir(schemas.FLOW_WINDOWS, VIX_TRADES) / DEFAULT.flow.artifact_name).read_text()
    lines = text.splitlines()
    assert len(lines) == ten.height > 30
    assert lines[0].startswith("2016-06-01 09:30-09:40 EDT VIX 10m trades=")
    assert f"trades={ten['trades'][0]} volume={ten['volume'][0]} " in lines[0]
    checks = {e.check_name: e for e in results[str(VIX_TRADES)].get_asset_check_evaluations()
              if e.asset_key.path == ["gold", "flow_windows"]}
    assert checks["premium"].passed and checks["flows_sum_to_totals"].passed
    assert checks["flows_sum_to_totals"].metadata["total_trades"].value == live.height


def test_vix_packets_alerts_and_gamma(materialized):
    lake, _, results = materialized
    enriched = _read(lake, "option_trades_enriched", VIX_TRADES)
    packets = _read(lake, "flow_packets", VIX_TRADES)
    alerts = _read(lake, "flow_alerts", VIX_TRADES)
    assert packets["prints"].sum() == enriched.filter(~pl.col("canceled")).height
    assert alerts.height > 0 and (alerts["evidence_count"] >= 1).all()
    # Cboe's trade ids are the prints' sequence numbers: every evidence id is one of them
    ids = set(enriched["trade_id"].to_list())
    assert set(alerts["evidence_trade_ids"].explode().to_list()) <= ids
    blocks = alerts.filter(pl.col("classifier") == "block")
    assert (blocks["size"] >= DEFAULT.classifiers.block_min_size).all()
    assert blocks.height == enriched.filter(~pl.col("canceled") & (pl.col("size") >= 500)).height
    assert set(alerts["presets"].explode().drop_nulls()) <= set(DEFAULT.signals.presets)
    gamma = _read(lake, "gamma_exposure", VIX_TRADES)
    assert set(gamma["source"]) == {"customer_flow"}  # the trades sample has no open interest
    total = gamma.filter(pl.col("grain") == "total").sort("ts_ns")
    assert total["ts_ns"].diff().drop_nulls().unique().to_list() == [DEFAULT.gamma.interval_seconds * NS]


@pytest.mark.parametrize("ref", [PartitionRef(dt.date(2021, 4, 26), "A"), PartitionRef(dt.date(2021, 4, 26), "VIX"),
                                 PartitionRef(dt.date(2022, 5, 20), "SPY")], ids=str)
def test_open_interest_gamma_from_the_vendor_snapshots(materialized, ref):
    lake, _, _ = materialized
    gamma = _read(lake, "gamma_exposure", ref)
    vendor = _read(lake, "option_vendor_greeks", ref)
    assert set(gamma["source"]) == {"open_interest"}
    total = gamma.filter(pl.col("grain") == "total").sort("ts_ns")
    # the latest snapshot's book: calls long, puts short (GammaSettings signs)
    last = vendor.sort("ts_ns").group_by("option_symbol").agg(pl.col("open_interest").last(), pl.col("right").last())
    book = int((last["open_interest"] * pl.Series([1 if r == "C" else -1 for r in last["right"]])).sum())
    assert total["dealer_position"][-1] == book
    strikes = gamma.filter(pl.col("grain") == "strike")
    assert set(total["call_wall"].drop_nulls()) <= set(strikes["strike"])


def test_bars_and_off_exchange_of_the_stock_and_futures_samples(materialized):
    lake, _, _ = materialized
    es = PartitionRef(dt.date(2023, 12, 26), "SPY")
    bars = _read(lake, "bars", es)
    fut = _read(lake, "futures_trades_enriched", es)
    raw = bars.filter(pl.col("kind") == "futures").sort("bar_start_ns")
    spy = bars.filter(pl.col("kind") == "futures_underlying_scale").sort("bar_start_ns")
    assert raw["volume"].sum() == fut.filter(~pl.col("canceled"))["size"].sum()
    assert spy.height == raw.height and (spy["price_ratio"] == 10.0).all()
    assert (spy["close"] * 10 - raw["close"]).abs().max() < 1e-9
    amzn = PartitionRef(dt.date(2012, 6, 21), "AMZN")
    prints = _read(lake, "off_exchange_prints", amzn)
    assert prints.height == 11_419 and not prints["off_exchange"].any()  # LOBSTER: Nasdaq's own book
    assert _read(lake, "off_exchange_events", amzn).height == 0
    stock_bars = _read(lake, "bars", amzn)
    assert stock_bars["kind"].unique().to_list() == ["stock"]
    assert stock_bars["volume"].sum() == _read(lake, "stock_trades_enriched", amzn).filter(~pl.col("canceled"))["size"].sum()


def test_daily_report_counts_the_gold_tables(materialized):
    lake, reports, results = materialized
    html = (reports / "2016-06-01" / "VIX.html").read_text()
    for name in ("flow_windows", "flow_alerts", "gamma_exposure", "bars"):
        assert name in html
