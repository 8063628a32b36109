"""Inputs of the level physics: hand-built ES books, prints, bars, SPY quotes and gamma
rows for cases computed by hand, and two real days (module-cached): the seeded synthetic
SPY day and the real ESH4 MBO sample, with their gold inputs built by the platform's own
builders the way the assets call them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest

from m17_platform import enrichment, expiry_batches, schemas
from m17_platform.flow import gold
from m17_platform.flow.bars import bars as build_bars
from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT

ET = ZoneInfo("America/New_York")
DAY = dt.date(2025, 11, 10)
ES = "ESZ5"
NS = 1_000_000_000
MIN = 60 * NS
SAMPLES = Path(__file__).resolve().parents[3] / "data" / "samples"
ESH4_MBO = SAMPLES / "databento_glbx_es_real" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
SYNTHETIC_SCALE = 0.02


def at(hour: int, minute: int, second: float = 0.0, day: dt.date = DAY) -> int:
    """ns since epoch of an ET wall-clock time."""
    base = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=ET)
    return int(base.timestamp()) * NS + int(round(second * NS))


def _conform(rows: list[dict], spec) -> pl.DataFrame:
    frame = pl.DataFrame(rows, infer_schema_length=None)
    for name in spec.columns:
        if name not in frame.columns:
            frame = frame.with_columns(pl.lit(None).alias(name))
    return pl.from_arrow(schemas.conform(frame.select(spec.columns), spec))


def book(rows: list[dict], symbol: str = ES) -> pl.DataFrame:
    """``futures_mbp10`` rows: each dict has ts_ns, bids / asks as [(price, size), ...] best
    first, optional sequence (default: the row number)."""
    out = []
    for i, r in enumerate(rows):
        row = dict(
            ts_ns=r["ts_ns"],
            sequence=r.get("sequence", i),
            ts_recv_ns=r["ts_ns"],
            symbol=symbol,
            instrument_id=1,
            underlying="SPY",
            action="A",
            side="B",
            event_price=None,
            event_size=0,
            source="test.mbp10",
        )
        for side in ("bid", "ask"):
            levels = r.get(side + "s", [])
            for k in range(schemas.BOOK_DEPTH):
                px, sz = levels[k] if k < len(levels) else (None, None)
                row[f"{side}_px_{k:02d}"], row[f"{side}_sz_{k:02d}"] = px, sz
                row[f"{side}_ct_{k:02d}"] = None if sz is None else 1
        out.append(row)
    return _conform(out, schemas.FUTURES_MBP10)


def ladder(best: float, sizes: list[int], side: str, tick: float = 0.25) -> list[tuple[float, int]]:
    """Levels from ``best`` outward (bids down, asks up), one size per tick."""
    step = -tick if side == "bid" else tick
    return [(best + k * step, s) for k, s in enumerate(sizes)]


def trades(rows: list[dict], symbol: str = ES) -> pl.DataFrame:
    """``futures_trades_enriched`` rows: ts_ns, price, size (1), aggressor B/S (B), sequence."""
    out = []
    for i, r in enumerate(rows):
        agg = r.get("aggressor", "B")
        out.append(
            dict(
                ts_ns=r["ts_ns"],
                sequence=r.get("sequence", i),
                ts_recv_ns=r["ts_ns"],
                symbol=symbol,
                instrument_id=1,
                underlying="SPY",
                price=r["price"],
                size=r.get("size", 1),
                exchange="GLBX",
                conditions=None,
                trade_id=None,
                canceled=r.get("canceled", False),
                aggressor_side=agg,
                source="test.trades",
                bid=None,
                ask=None,
                bid_size=None,
                ask_size=None,
                quote_ts_ns=None,
                quote_age_ns=None,
                nbbo_flag="no_quote",
                side={"B": "buy", "S": "sell"}.get(agg, "unknown"),
                side_rule="test.rule",
                side_confidence=1.0,
                placement=None,
            )
        )
    return _conform(out, schemas.FUTURES_TRADES_ENRICHED).sort(["symbol", "ts_ns", "sequence"])


def bars_of(futures: pl.DataFrame) -> pl.DataFrame:
    """``gold.bars`` of the prints (the platform's own bar builder)."""
    return build_bars(
        schemas.empty_frame(schemas.STOCK_TRADES_ENRICHED), futures, schemas.empty_frame(schemas.OPTION_TRADES_ENRICHED)
    )


def spy_quotes(ts: list[int], mid: float | list[float], half_spread: float = 0.005) -> pl.DataFrame:
    """``stock_quotes`` of SPY at ``ts`` around ``mid`` (one value or one per instant)."""
    mids = mid if isinstance(mid, list) else [mid] * len(ts)
    rows = [
        dict(
            ts_ns=t,
            sequence=i,
            symbol="SPY",
            underlying="SPY",
            bid=m - half_spread,
            bid_size=100,
            ask=m + half_spread,
            ask_size=100,
            bid_exchange="Q",
            ask_exchange="Q",
            source="test.quotes",
        )
        for i, (t, m) in enumerate(zip(ts, mids, strict=True))
    ]
    return _conform(rows, schemas.STOCK_QUOTES)


def gamma(rows: list[dict]) -> pl.DataFrame:
    """``gamma_exposure`` rows: ts_ns, grain (strike/total), strike, net_gex, call_wall,
    put_wall, gamma_flip, source (customer_flow)."""
    out = []
    for r in rows:
        gex = r.get("net_gex", 0.0)
        out.append(
            dict(
                ts_ns=r["ts_ns"],
                underlying="SPY",
                source=r.get("source", "customer_flow"),
                grain=r.get("grain", "strike"),
                strike=r.get("strike"),
                underlying_price=680.0,
                call_gamma=0.0,
                put_gamma=0.0,
                net_gamma=0.0,
                call_gex=0.0,
                put_gex=gex,
                net_gex=gex,
                dealer_position=0,
                call_wall=r.get("call_wall"),
                put_wall=r.get("put_wall"),
                gamma_flip=r.get("gamma_flip"),
            )
        )
    return _conform(out, schemas.GAMMA_EXPOSURE)


def options(rows: list[dict]) -> pl.DataFrame:
    """``option_trades_enriched`` rows: ts_ns, expiration, strike, right (C), size (1), canceled."""
    from m17_platform.symbols import occ_symbol

    out = []
    for i, r in enumerate(rows):
        exp, strike, right = r.get("expiration", DAY), r["strike"], r.get("right", "C")
        out.append(
            dict(
                ts_ns=r["ts_ns"],
                sequence=i,
                option_symbol=occ_symbol("SPY", exp, right, strike),
                underlying="SPY",
                root="SPY",
                expiration=exp,
                strike=strike,
                right=right,
                price=1.0,
                size=r.get("size", 1),
                canceled=r.get("canceled", False),
                source="test.options",
                nbbo_flag="ok",
                side="buy",
                side_rule="test.rule",
                side_confidence=1.0,
                multiplier=100,
                premium=100.0 * r.get("size", 1),
            )
        )
    return _conform(out, schemas.OPTION_TRADES_ENRICHED)


def synthetic_inputs(scale: float = SYNTHETIC_SCALE) -> dict[str, pl.DataFrame]:
    """The seeded synthetic SPY day's level inputs: raw ES book and SPY quotes, enriched ES
    and option prints, gold bars and gamma exposure, each built as the assets build them."""
    from m17_platform.sources.synthetic import SyntheticSource

    ref = PartitionRef(DAY, "SPY")
    source = SyntheticSource(DEFAULT.synthetic.scaled(scale))
    raw = {}
    for name in (
        "futures_trades",
        "futures_mbp10",
        "stock_quotes",
        "stock_trades",
        "option_trades",
        "option_quotes",
        "option_contracts",
        "rates",
    ):
        spec = schemas.table(name)
        raw[name] = pl.concat([c.frame for c in source.chunks(name, ref)]).sort(
            list(spec.sort_key), maintain_order=True
        )
    fut = enrichment.enrich_futures_trades(raw["futures_trades"], raw["futures_mbp10"])
    stk = enrichment.enrich_stock_trades(raw["stock_trades"], raw["stock_quotes"])
    opt = pl.concat(
        list(
            expiry_batches.enrich_option_trades(
                raw["option_trades"],
                [raw["option_quotes"]],
                raw["stock_quotes"],
                raw["stock_trades"],
                raw["option_contracts"],
            )
        )
    )
    opt = opt.sort(list(schemas.OPTION_TRADES_ENRICHED.sort_key), maintain_order=True)
    forwards = expiry_batches.parity_forwards([raw["option_quotes"]], raw["option_contracts"], raw["rates"])
    greeks = enrichment.option_trade_greeks(opt, forwards, raw["option_contracts"], raw["rates"])
    gex, _ = gold.build_gamma_exposure(
        opt,
        greeks,
        schemas.empty_frame(schemas.OPTION_VENDOR_GREEKS),
        pl.DataFrame(),
        raw["option_contracts"],
        DAY,
        "SPY",
    )
    bars, _ = gold.build_bars(stk, fut, opt)
    return dict(
        futures_mbp10=raw["futures_mbp10"],
        futures_trades_enriched=fut,
        stock_quotes=raw["stock_quotes"],
        option_trades_enriched=opt,
        gamma_exposure=gex,
        bars=bars,
    )


def esh4_inputs() -> dict[str, pl.DataFrame]:
    """The real ESH4 MBO sample (2023-12-26|SPY) read through the samples source: its ES
    book and prints, enriched prints and bars; no SPY quotes, no options."""
    from m17_platform.sources.samples import SamplesSource

    ref = PartitionRef(dt.date(2023, 12, 26), "SPY")
    source = SamplesSource(SAMPLES, DEFAULT)
    raw = {
        name: pl.concat([c.frame for c in source.chunks(name, ref)]).sort(
            list(schemas.table(name).sort_key), maintain_order=True
        )
        for name in ("futures_trades", "futures_mbp10")
    }
    fut = enrichment.enrich_futures_trades(raw["futures_trades"], raw["futures_mbp10"])
    return dict(
        futures_mbp10=raw["futures_mbp10"],
        futures_trades_enriched=fut,
        bars=bars_of(fut),
        stock_quotes=schemas.empty_frame(schemas.STOCK_QUOTES),
    )


def esh4_mbo() -> pl.DataFrame:
    """The ESH4 sample's MBO records (ts_ns, order_id, action, side, price, size, flags, symbol)."""
    from m17_platform.sources.databento_io import DbnFile, chars

    parts = []
    for _, rec in DbnFile(ESH4_MBO).record_chunks(100_000):
        px = rec["price"].astype(np.int64)
        parts.append(
            pl.DataFrame(
                {
                    "ts_ns": rec["ts_event"].astype(np.int64),
                    "order_id": rec["order_id"].astype(np.uint64),
                    "action": chars(rec["action"]),
                    "side": chars(rec["side"]),
                    "price": np.where(px == 2**63 - 1, np.nan, px / 1e9),
                    "size": rec["size"].astype(np.int64),
                    "flags": rec["flags"].astype(np.int64),
                }
            )
        )
    return pl.concat(parts).with_columns(pl.col("price").fill_nan(None), pl.lit("ESH4").alias("symbol"))


def perturb_after(inputs: dict[str, pl.DataFrame], t: int) -> dict[str, pl.DataFrame]:
    """Every row after ``t`` changed: prices, sizes, sides, gamma, walls (bars: those ending after t)."""
    out = {}
    for name, f in inputs.items():
        late = pl.col("bar_end_ns") > t if name == "bars" else pl.col("ts_ns") >= t
        change = {
            "futures_mbp10": [pl.col(c) + 0.5 for c in f.columns if "_px_" in c]
            + [pl.col(c) * 3 + 1 for c in f.columns if "_sz_" in c],
            "futures_trades_enriched": [
                pl.col("price") + 0.75,
                pl.col("size") * 2 + 1,
                pl.col("aggressor_side").replace({"B": "S", "S": "B"}),
            ],
            "bars": [pl.col(c) * 1.01 for c in ("open", "high", "low", "close", "vwap")] + [pl.col("volume") * 2],
            "stock_quotes": [pl.col("bid") + 0.3, pl.col("ask") + 0.3],
            "option_trades_enriched": [pl.col("strike") + 1.0],
            "gamma_exposure": [pl.col("net_gex") * -3.0, pl.col("call_wall") + 1.0, pl.col("gamma_flip") - 2.0],
        }[name]
        out[name] = f.with_columns(
            [pl.when(late).then(e).otherwise(pl.col(e.meta.output_name())).alias(e.meta.output_name()) for e in change]
        )
    return out


def features_at_or_before(signals: pl.DataFrame, t: int) -> pl.DataFrame:
    from m17_platform.levels.asof import FEATURE_COLUMNS

    return signals.filter(pl.col("decision_ts_ns") <= t).select(FEATURE_COLUMNS).sort("event_id")


def check_future_changes_nothing(inputs, settings, t, **kw):
    """The full day with every row after ``t`` changed: features decided by ``t`` are equal,
    later ones are not (so the change reached the chain)."""
    from m17_platform.levels.asof import build_signals

    base = build_signals(inputs, settings, **kw).tables["level_signals"]
    moved = build_signals(perturb_after(inputs, t), settings, **kw).tables["level_signals"]
    before = features_at_or_before(base, t)
    assert before.height > 0
    assert before.equals(features_at_or_before(moved, t))
    later = pl.col("decision_ts_ns") > t
    from m17_platform.levels.asof import FEATURE_COLUMNS

    assert not base.filter(later).select(FEATURE_COLUMNS).equals(moved.filter(later).select(FEATURE_COLUMNS))


@pytest.fixture(scope="session")
def synthetic_day() -> dict[str, pl.DataFrame]:
    return synthetic_inputs()


@pytest.fixture(scope="session")
def esh4_day() -> dict[str, pl.DataFrame]:
    return esh4_inputs()


@pytest.fixture(scope="session")
def kit():
    """This module's helpers (``kit.book``, ``kit.trades``, ``kit.at``, ...) for the tests."""
    import sys

    return sys.modules[__name__]
