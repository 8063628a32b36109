"""Hand-built enriched frames for the flow tests: option prints (``option_trades_enriched``)
and their greeks (``option_trade_greeks``), stock and futures prints, with defaults for
every column a test does not care about."""

import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from m17_platform import schemas
from m17_platform.symbols import occ_symbol

ET = ZoneInfo("America/New_York")
DAY = dt.date(2025, 11, 10)  # a Monday session
NS = 1_000_000_000
MS = 1_000_000


def at(hour: int, minute: int, second: float = 0.0, day: dt.date = DAY) -> int:
    """ns since epoch of an ET wall-clock time on ``day``."""
    base = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=ET)
    return int(base.timestamp()) * NS + int(round(second * NS))


def _conform(rows: list[dict], spec) -> pl.DataFrame:
    frame = pl.DataFrame(rows, infer_schema_length=None)
    return pl.from_arrow(schemas.conform(frame.select(spec.columns), spec))


def option_rows(prints: list[dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(option_trades_enriched, option_trade_greeks) of ``prints``.

    Each print is a dict with any of: ts_ns, sequence, strike, right, expiration, price,
    size, side ('buy'/'sell'/'unknown'), exchange, trade_id (None for none), canceled,
    placement, nbbo_flag, quote_age_ns, side_confidence, conditions, multiplier, and
    greeks delta, gamma, S (underlying price), iv, t_years, model, rate, dividend_yield.
    Rows come back in the lake's order (option_symbol, ts_ns, sequence).
    """
    enriched, greeks = [], []
    for i, p in enumerate(prints):
        expiration = p.get("expiration", DAY)
        strike, right = p.get("strike", 680.0), p.get("right", "C")
        symbol = occ_symbol("SPY", expiration, right, strike)
        price, size, mult = p.get("price", 1.0), p.get("size", 1), p.get("multiplier", 100)
        ts, seq = p.get("ts_ns", at(10, 0) + i * MS), p.get("sequence", i)
        s = p.get("S", 680.0)
        ident = dict(ts_ns=ts, sequence=seq, option_symbol=symbol, underlying="SPY", root="SPY",
                     expiration=expiration, strike=strike, right=right)
        enriched.append(dict(
            ident, price=price, size=size, exchange=p.get("exchange", "C"),
            conditions=p.get("conditions", ["regular"]), trade_id=p.get("trade_id", f"t{i}"),
            canceled=p.get("canceled", False), source="test.option_trades",
            bid=price - 0.05, ask=price + 0.05, bid_size=10, ask_size=10, quote_ts_ns=ts - p.get("quote_age_ns", 1000),
            quote_age_ns=p.get("quote_age_ns", 1000), nbbo_flag=p.get("nbbo_flag", "ok"), side=p.get("side", "buy"),
            side_rule="test.rule", side_confidence=p.get("side_confidence", 1.0), placement=p.get("placement", "A"),
            underlying_bid=s - 0.01, underlying_ask=s + 0.01, underlying_mid=s, underlying_quote_age_ns=0,
            underlying_last=s, underlying_last_ts_ns=ts, multiplier=mult, premium=price * size * mult,
        ))
        greeks.append(dict(
            ident, price=price, mid=price, underlying_price=s, underlying_price_source="mid",
            model=p.get("model", "bsm"), t_years=p.get("t_years", 0.01), rate=p.get("rate", 0.0),
            dividend_yield=p.get("dividend_yield", 0.0), iv_trade=p.get("iv", 0.2), iv_trade_status="OK",
            iv_mid=p.get("iv", 0.2), iv_mid_status="OK", greeks_iv_source="mid" if p.get("iv", 0.2) is not None else "none",
            delta=p.get("delta", 0.5), gamma=p.get("gamma", 0.05), theta=-0.1, vega=0.1, rho=0.01,
            source="test.option_trades",
        ))
    e = _conform(enriched, schemas.OPTION_TRADES_ENRICHED).sort(["option_symbol", "ts_ns", "sequence"], maintain_order=True)
    g = _conform(greeks, schemas.OPTION_TRADE_GREEKS).sort(["option_symbol", "ts_ns", "sequence"], maintain_order=True)
    return e, g


def stock_rows(prints: list[dict], *, symbol: str = "SPY", source: str = "polygon.rest.v3_trades") -> pl.DataFrame:
    """``stock_trades_enriched`` rows: ts_ns, price, size, exchange, side, bid, ask, quote_age_ns,
    trade_id, canceled, sequence per print (defaults: a 100-share buy on exchange '10')."""
    rows = []
    for i, p in enumerate(prints):
        ts = p.get("ts_ns", at(10, 0) + i * MS)
        price = p.get("price", 100.0)
        rows.append(dict(
            ts_ns=ts, sequence=p.get("sequence", i), symbol=p.get("symbol", symbol), underlying="SPY",
            price=price, size=p.get("size", 100), exchange=p.get("exchange", "10"), conditions=None,
            trade_id=p.get("trade_id", f"s{i}"), canceled=p.get("canceled", False), aggressor_side=None,
            source=p.get("source", source), bid=p.get("bid", price - 0.01), ask=p.get("ask", price + 0.01),
            bid_size=100, ask_size=100, quote_ts_ns=ts - p.get("quote_age_ns", 1000),
            quote_age_ns=p.get("quote_age_ns", 1000), nbbo_flag="ok", side=p.get("side", "buy"), side_rule="test.rule",
            side_confidence=1.0, placement=p.get("placement", "A"),
        ))
    return _conform(rows, schemas.STOCK_TRADES_ENRICHED).sort(["symbol", "ts_ns", "sequence"], maintain_order=True)


def futures_rows(prints: list[dict], *, symbol: str = "ESZ5") -> pl.DataFrame:
    """``futures_trades_enriched`` rows (ts_ns, price, size, canceled per print)."""
    rows = []
    for i, p in enumerate(prints):
        ts = p.get("ts_ns", at(10, 0) + i * MS)
        rows.append(dict(
            ts_ns=ts, sequence=i, ts_recv_ns=ts, symbol=symbol, instrument_id=1, underlying="SPY",
            price=p["price"], size=p.get("size", 1), exchange="GLBX", conditions=None, trade_id=None,
            canceled=p.get("canceled", False), aggressor_side="B", source="databento.glbx-mdp3.mbo",
            bid=None, ask=None, bid_size=None, ask_size=None, quote_ts_ns=None, quote_age_ns=None,
            nbbo_flag="no_quote", side="buy", side_rule="test.rule", side_confidence=1.0, placement=None,
        ))
    return _conform(rows, schemas.FUTURES_TRADES_ENRICHED)


@pytest.fixture
def options():
    return option_rows


@pytest.fixture
def stocks():
    return stock_rows


@pytest.fixture
def futures():
    return futures_rows


@pytest.fixture(name="at")
def at_fixture():
    """``at(hour, minute, second=0.0, day=DAY)``: ns since epoch of an ET wall-clock time."""
    return at
