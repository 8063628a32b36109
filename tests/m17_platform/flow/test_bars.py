"""OHLCV and VWAP bars against hand-computed values, canceled prints left out, and ES bars
on SPY's scale."""

import polars as pl
import pytest

from m17_platform.flow import check_table
from m17_platform.flow.bars import bars, futures_root
from m17_platform.schemas import (
    BARS,
    FUTURES_TRADES_ENRICHED,
    OPTION_TRADES_ENRICHED,
    STOCK_TRADES_ENRICHED,
    conform,
    empty_frame,
)
from m17_platform.settings import BarSettings, Settings

NS = 1_000_000_000


def test_stock_bars_by_hand(stocks, at):
    rows = [
        dict(ts_ns=at(10, 0, 1), price=100.00, size=100),
        dict(ts_ns=at(10, 0, 20), price=100.50, size=300),
        dict(ts_ns=at(10, 0, 30), price=99.00, size=50, canceled=True),  # left out
        dict(ts_ns=at(10, 0, 40), price=99.80, size=200),
        dict(ts_ns=at(10, 0, 59.999), price=100.10, size=400),
        dict(ts_ns=at(10, 1, 0), price=100.20, size=10),  # next bar
    ]
    enriched = stocks(rows)
    out = bars(enriched, _no_futures(), _no_options(), Settings())
    conform(out, BARS)
    first, second = out.sort("bar_start_ns").iter_rows(named=True)
    assert (first["open"], first["high"], first["low"], first["close"]) == (100.00, 100.50, 99.80, 100.10)
    assert first["volume"] == 1_000 and first["trades"] == 4
    assert first["vwap"] == pytest.approx((100.00 * 100 + 100.50 * 300 + 99.80 * 200 + 100.10 * 400) / 1_000)
    assert (first["bar_start_ns"], first["bar_end_ns"]) == (at(10, 0), at(10, 1))
    assert (second["open"], second["close"], second["volume"]) == (100.20, 100.20, 10)
    assert first["kind"] == "stock" and first["symbol"] == "SPY" and first["price_ratio"] == 1.0


def _no_options():
    return empty_frame(OPTION_TRADES_ENRICHED)


def _no_stocks():
    return empty_frame(STOCK_TRADES_ENRICHED)


def test_futures_bars_also_on_the_underlyings_scale(futures, at):
    fut = futures([dict(ts_ns=at(10, 0, 1), price=6_800.00, size=3), dict(ts_ns=at(10, 0, 2), price=6_801.25, size=1)])
    out = bars(_no_stocks(), fut, _no_options(), Settings())
    raw = out.filter(pl.col("kind") == "futures").row(0, named=True)
    spy = out.filter(pl.col("kind") == "futures_underlying_scale").row(0, named=True)
    assert (raw["open"], raw["high"], raw["close"]) == (6_800.00, 6_801.25, 6_801.25)
    assert (spy["open"], spy["high"], spy["close"]) == pytest.approx((680.0, 680.125, 680.125))
    assert spy["vwap"] == pytest.approx((6_800.00 * 3 + 6_801.25) / 4 / 10)
    assert spy["volume"] == raw["volume"] == 4 and spy["price_ratio"] == 10.0 and spy["symbol"] == "ESZ5"


def test_option_bars_and_bar_length(options, at):
    enriched, _ = options([dict(ts_ns=at(10, 0, s), price=p, size=n) for s, p, n in ((1, 2.0, 5), (30, 2.2, 5), (70, 2.1, 1))])
    out = bars(_no_stocks(), _no_futures(), enriched, Settings())
    assert out["kind"].unique().to_list() == ["option"] and out.height == 2
    assert out.sort("bar_start_ns")["vwap"][0] == pytest.approx(2.1)
    five = bars(_no_stocks(), _no_futures(), enriched, Settings(bars=BarSettings(bar_seconds=300)))
    assert five.height == 1 and five["volume"][0] == 11
    with pytest.raises(ValueError, match="bar_seconds"):
        bars(_no_stocks(), _no_futures(), enriched, Settings(bars=BarSettings(bar_seconds=0)))
    checks = check_table("bars", out, {"stock_trades_enriched": _no_stocks(),
                                       "futures_trades_enriched": _no_futures(), "option_trades_enriched": enriched})
    assert all(o.passed for o in checks)


def _no_futures():
    return empty_frame(FUTURES_TRADES_ENRICHED)


def test_futures_root():
    assert futures_root("ESH4") == "ES" and futures_root("ESZ25") == "ES" and futures_root("MESM5") == "MES"
    assert futures_root("SPY") is None
