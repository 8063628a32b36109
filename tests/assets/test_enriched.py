"""The enriched trade tables of the materialized sample partitions, against the samples' truth."""

import datetime as dt

import polars as pl
import pytest

from m17_platform import schemas
from m17_platform.lake import PartitionRef


def _rows(lake, table, day, underlying):
    return lake.read(schemas.table(table), PartitionRef(day, underlying), verify=True)


def _checks(results, key, asset):
    return {e.check_name: e for e in results[key].get_asset_check_evaluations() if e.asset_key.path == ["enriched", asset]}


def test_stock_trades_side_matches_lobster_truth(materialized):
    lake, _, results = materialized
    frame = _rows(lake, "stock_trades_enriched", dt.date(2012, 6, 21), "AMZN")
    assert frame.height == 11_419
    truth = frame.filter(pl.col("aggressor_side").is_in(["B", "S"]))
    acc = (truth["side"] == truth["aggressor_side"].replace_strict({"B": "buy", "S": "sell"})).mean()
    assert acc == pytest.approx(0.972, abs=0.005)  # CLNV, the default rule
    checks = _checks(results, "2012-06-21|AMZN", "stock_trades_enriched")
    assert checks["aggressor_vs_vendor"].passed and checks["nbbo_coverage"].passed
    assert checks["aggressor_vs_vendor"].metadata["accuracy"].value == pytest.approx(acc)
    # every visible execution printed at the resting side's best price: placement A or B
    visible = frame.filter(pl.col("conditions").list.contains("visible_execution"))
    assert set(visible["placement"].unique()) <= {"A", "B"}


def test_futures_trades_side_matches_cme(materialized):
    lake, _, results = materialized
    frame = _rows(lake, "futures_trades_enriched", dt.date(2023, 12, 26), "SPY")
    assert frame.height == 2_973
    checks = _checks(results, "2023-12-26|SPY", "futures_trades_enriched")
    assert checks["aggressor_vs_vendor"].metadata["accuracy"].value == 1.0
    assert checks["aggressor_vs_vendor"].metadata["n"].value == 2_972


def test_option_trades_reproduce_cboe_nbbo_and_premium(materialized):
    lake, _, results = materialized
    frame = _rows(lake, "option_trades_enriched", dt.date(2016, 6, 1), "VIX")
    assert frame.height == 2_295
    # the prevailing quote is Cboe's NBBO at the trade: placement counts of the provenance
    counts = dict(frame["placement"].value_counts().iter_rows())
    assert counts.get("AA", 0) + counts.get("A", 0) == 442 and counts.get("B", 0) + counts.get("BB", 0) == 409
    assert counts["MID"] == 1_443
    assert frame["premium"].sum() == pytest.approx((frame["price"] * frame["size"] * 100).sum())
    assert frame["underlying_mid"].null_count() <= 2  # two prints before the VIX index had a value
    checks = _checks(results, "2016-06-01|VIX", "option_trades_enriched")
    assert checks["premium"].passed and checks["nbbo_coverage"].passed
