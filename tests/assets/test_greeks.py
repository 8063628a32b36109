"""The greeks tables of the materialized sample partitions: statuses, repricing, vendor agreement."""

import datetime as dt

import polars as pl

from m17_platform import schemas
from m17_platform.lake import PartitionRef


def _checks(results, key, asset):
    return {e.check_name: e for e in results[key].get_asset_check_evaluations() if e.asset_key.path == ["enriched", asset]}


def test_option_quote_greeks_agree_with_cboe_vix(materialized):
    lake, _, results = materialized
    frame = lake.read(schemas.OPTION_QUOTE_GREEKS, PartitionRef(dt.date(2021, 4, 26), "VIX"), verify=True)
    assert frame.height == 15_064
    assert set(frame["model"]) == {"black76"} and set(frame["underlying_price_source"]) == {"vendor_forward"}
    checks = _checks(results, "2021-04-26|VIX", "option_quote_greeks")
    assert checks["reprice"].passed and checks["iv_status"].passed
    assert checks["vendor_delta"].metadata["median_abs_diff"].value <= 0.001


def test_option_trade_greeks_statuses_are_explicit(materialized):
    lake, _, results = materialized
    frame = lake.read(schemas.OPTION_TRADE_GREEKS, PartitionRef(dt.date(2016, 6, 1), "VIX"), verify=True)
    assert frame.height == 2_295
    # every row says why it has or lacks an IV; a null IV is never silent
    assert frame.filter(pl.col("iv_mid").is_null() & (pl.col("iv_mid_status") == "OK")).height == 0
    assert frame.filter(pl.col("delta").is_not_null() & (pl.col("greeks_iv_source") == "none")).height == 0
    ok = frame.filter(pl.col("iv_trade_status") == "OK")
    assert ok.height > 1_500 and ok["iv_trade"].is_between(0.05, 5.0).all()
    assert (frame.filter(pl.col("underlying_price").is_not_null())["underlying_price_source"] == "parity_forward").all()
    assert _checks(results, "2016-06-01|VIX", "option_trade_greeks")["reprice"].passed


def test_rates_come_from_the_best_stated_source(materialized):
    lake, _, _ = materialized
    con = lake.duckdb()
    rows = dict(con.execute("select trade_date::varchar || '|' || underlying, source from rates").fetchall())
    assert rows["2022-05-20|SPY"] == "tda.option_chain.interestRate"
    assert rows["2021-04-26|VIX"].startswith("put_call_parity:")
    assert rows["2012-06-21|AMZN"] == "settings.rates.constant"
