"""The seeded synthetic session: determinism, schemas, grids, the surface, cross-table
consistency (options against their quotes and the underlying, ES = SPY x 10) and counts,
on a small day; one slow test streams the full default day."""

import dataclasses
import datetime as dt
import resource

import numpy as np
import polars as pl
import pytest

from m17_platform import calendar, greeks, schemas
from m17_platform.errors import CalendarError
from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT, SyntheticSettings
from m17_platform.sources.synthetic import TABLES, TRUTH_SCHEMAS, SyntheticSource, surface_vol

SMALL = SyntheticSettings(
    option_quotes=200_000,
    option_trades=5_000,
    stock_quotes=20_000,
    stock_trades=2_000,
    futures_mbp10=40_000,
    futures_trades=2_000,
)
REF = PartitionRef(dt.date(2025, 11, 10), "SPY")
CHUNK = 30_000
R = DEFAULT.rates.risk_free_rate
Q = DEFAULT.rates.dividend_yield["SPY"]


def _table(source: SyntheticSource, name: str, ref: PartitionRef = REF) -> pl.DataFrame:
    frames = [c.frame for c in source.chunks(name, ref)]
    return pl.concat(frames) if frames else schemas.empty_frame(schemas.table(name))


@pytest.fixture(scope="module")
def source() -> SyntheticSource:
    return SyntheticSource(SMALL, chunk_rows=CHUNK)


@pytest.fixture(scope="module")
def day(source) -> dict[str, pl.DataFrame]:
    return {name: _table(source, name) for name in TABLES}


@pytest.fixture(scope="module")
def truth(source) -> dict[str, pl.DataFrame]:
    out = {name: source.ground_truth(name, REF) for name in TABLES}
    out["option_quotes"] = pl.concat(list(source.ground_truth_chunks("option_quotes", REF)))
    return out


def test_same_seed_same_rows_whatever_the_chunk_size(day) -> None:
    other = SyntheticSource(SMALL, chunk_rows=7_919)
    for name in TABLES:
        chunks = list(other.chunks(name, REF))
        assert all(0 < c.frame.height <= 7_919 for c in chunks), name
        assert sum(c.stats["rows"] for c in chunks) == day[name].height
        again = pl.concat([c.frame for c in chunks])
        assert again.equals(day[name]), name
        assert again.hash_rows().to_list() == day[name].hash_rows().to_list(), name


def test_another_seed_gives_another_day(day) -> None:
    other = SyntheticSource(dataclasses.replace(SMALL, seed=SMALL.seed + 1), chunk_rows=CHUNK)
    quotes = _table(other, "stock_quotes")
    assert quotes.height == day["stock_quotes"].height
    assert not quotes.get_column("ask").equals(day["stock_quotes"].get_column("ask"))
    assert other.name == f"synthetic:seed={SMALL.seed + 1}"


def test_every_table_has_exactly_its_schema_and_lake_order(day) -> None:
    for name in TABLES:
        spec = schemas.table(name)
        frame = day[name]
        assert frame.schema == schemas.empty_frame(spec).schema, name
        schemas.conform(frame, spec, origin="synthetic")  # no nulls in required columns
        assert frame.equals(frame.sort(list(spec.sort_key), maintain_order=True)), name
        if "underlying" in frame.columns:
            assert frame.get_column("underlying").unique().to_list() == ["SPY"], name


def test_counts_equal_the_settings(day, truth) -> None:
    for name, count in (("option_quotes", SMALL.option_quotes), ("option_trades", SMALL.option_trades),
                        ("stock_quotes", SMALL.stock_quotes), ("stock_trades", SMALL.stock_trades),
                        ("futures_mbp10", SMALL.futures_mbp10), ("futures_trades", SMALL.futures_trades)):
        assert day[name].height == count, name
        assert day[name].get_column("sequence").to_list() == sorted(day[name].get_column("sequence").to_list())
    contracts = truth["option_contracts"]
    assert contracts.get_column("quote_count").sum() == SMALL.option_quotes
    assert contracts.get_column("trade_count").sum() == SMALL.option_trades
    per_contract = day["option_quotes"].group_by("option_symbol").len()
    joined = contracts.join(per_contract, on="option_symbol", how="left").fill_null(0)
    assert (joined.get_column("len") == joined.get_column("quote_count")).all()
    for name in ("option_trades", "option_quotes", "stock_trades", "stock_quotes", "futures_trades", "futures_mbp10"):
        assert truth[name].height == day[name].height, name
        assert truth[name].schema == TRUTH_SCHEMAS[name], name


def test_contracts_are_0dte_and_two_weeklies_in_occ_order(day, truth) -> None:
    c = day["option_contracts"]
    assert c.get_column("expiration").unique().sort().to_list() == [
        dt.date(2025, 11, 10), dt.date(2025, 11, 14), dt.date(2025, 11, 21)]
    n_strikes = 2 * SMALL.strikes_each_side + 1
    assert c.height == 3 * 2 * n_strikes
    assert c.get_column("option_symbol").to_list() == sorted(c.get_column("option_symbol").to_list())
    assert c.get_column("option_symbol").n_unique() == c.height
    assert set(c.get_column("multiplier")) == {100} and set(c.get_column("exercise_style")) == {"A"}
    for exp, exp_ns in c.select("expiration", "expiry_ts_ns").unique().iter_rows():
        assert exp_ns == calendar.expiry_instant_ns(exp)
    strikes = np.sort(c.get_column("strike").unique().to_numpy())
    assert np.allclose(np.diff(strikes), SMALL.strike_step)
    open_price = truth["option_contracts"].get_column("open_price")[0]
    assert abs(strikes.mean() - open_price) <= SMALL.strike_step


def _on_option_grid(prices: np.ndarray) -> np.ndarray:
    cents = prices * 100
    on_cents = np.abs(cents - np.rint(cents)) < 1e-6
    nickels = prices * 20
    on_nickels = np.abs(nickels - np.rint(nickels)) < 1e-6
    return np.where(prices < SMALL.option_tick_break, on_cents, on_nickels)


def test_option_quotes_on_the_grid_never_crossed_in_session(day) -> None:
    q = day["option_quotes"]
    bid, ask = q.get_column("bid").to_numpy(), q.get_column("ask").to_numpy()
    assert (bid >= 0).all() and (ask > bid).all()
    assert _on_option_grid(bid).all() and _on_option_grid(ask).all()
    zero = bid == 0
    assert zero.any() and (q.get_column("bid_size").to_numpy()[zero] == 0).all()
    assert (q.get_column("bid_size").to_numpy()[~zero] >= 1).all() and (q.get_column("ask_size") >= 1).all()
    assert set(q.get_column("bid_exchange").unique()) <= set(SMALL.option_exchanges)
    open_ns, close_ns = calendar.session_open_close_ns(REF.trade_date)
    ts = q.get_column("ts_ns")
    assert ts.min() > open_ns and ts.max() < close_ns
    gaps = q.select(pl.col("ts_ns").diff().over("option_symbol").alias("gap")).drop_nulls()
    assert gaps.get_column("gap").min() >= SMALL.option_quote_min_gap_ns


def test_stock_quotes_on_the_cent_grid_never_crossed(day) -> None:
    q = day["stock_quotes"]
    bid, ask = q.get_column("bid").to_numpy(), q.get_column("ask").to_numpy()
    assert np.allclose(bid * 100, np.rint(bid * 100), atol=1e-6) and np.allclose(ask * 100, np.rint(ask * 100), atol=1e-6)
    assert (np.rint((ask - bid) * 100) >= 1).all()
    open_ns, close_ns = calendar.session_open_close_ns(REF.trade_date)
    ts = q.get_column("ts_ns").to_numpy()
    assert ts[0] == open_ns and ts[-1] < close_ns and (np.diff(ts) >= SMALL.stock_quote_min_gap_ns).all()
    assert (q.get_column("bid_size") % SMALL.stock_lot_size == 0).all()


def test_surface_has_the_equity_skew_and_its_atm_level() -> None:
    t = 7 / 365
    spot = 680.0
    forward = spot * np.exp((R - Q) * t)
    atm = surface_vol(forward, t, spot, spot, R, Q, SMALL)
    level = SMALL.atm_vol_long + (SMALL.atm_vol_short - SMALL.atm_vol_long) * np.exp(-t / SMALL.atm_vol_decay_years)
    assert atm == pytest.approx(level, rel=1e-12)
    wings = surface_vol(np.array([650.0, 710.0]), t, spot, spot, R, Q, SMALL)
    assert wings[0] > atm and wings[0] > wings[1]  # puts dearer than calls (rho < 0)
    assert surface_vol(0.99 * forward, t, 0.99 * spot, spot, R, Q, SMALL) > atm  # spot down, ATM vol up


def test_option_model_prices_reprice_to_the_surface_iv(day, truth) -> None:
    q = day["option_quotes"].join(truth["option_quotes"], on=["sequence", "ts_ns", "option_symbol"])
    assert q.height == day["option_quotes"].height
    is_call = (q.get_column("right") == "C").to_numpy()
    S, K, T = (q.get_column(c).to_numpy() for c in ("underlying_price", "strike", "t_years"))
    iv_true, theo = q.get_column("iv").to_numpy(), q.get_column("theo").to_numpy()
    iv, status = greeks.implied_vol(theo, S, K, T, R, Q, is_call)
    ok = status == greeks.IVStatus.OK
    assert ok.mean() > 0.7
    assert np.abs(iv[ok] - iv_true[ok]).max() < 1e-7
    # the quoted mid is the model price on the half-tick grid, at most a quarter tick away:
    # IV being increasing in price, the mid's IV lies between the IVs of theo -/+ tick/4
    bid, ask = q.get_column("bid").to_numpy(), q.get_column("ask").to_numpy()
    mid = (bid + ask) / 2
    tick = np.where(theo >= SMALL.option_tick_break, SMALL.option_tick_large, SMALL.option_tick_small)
    centred = (bid > 0) & ((ask <= SMALL.option_tick_break) | (theo >= SMALL.option_tick_break))
    assert centred.mean() > 0.5
    assert (np.abs(mid - theo)[centred] <= tick[centred] / 4 + 1e-9).all()
    iv_mid, st_mid = greeks.implied_vol(mid, S, K, T, R, Q, is_call)
    iv_lo, st_lo = greeks.implied_vol(theo - tick / 4, S, K, T, R, Q, is_call)
    iv_hi, st_hi = greeks.implied_vol(theo + tick / 4, S, K, T, R, Q, is_call)
    use = centred & (st_mid == greeks.IVStatus.OK) & (st_lo == greeks.IVStatus.OK) & (st_hi == greeks.IVStatus.OK)
    assert use.sum() > 0.5 * q.height
    assert ((iv_lo - 1e-9 <= iv_mid) & (iv_mid <= iv_hi + 1e-9) & (iv_lo <= iv_true) & (iv_true <= iv_hi))[use].all()
    vega = greeks.greeks(S, K, T, R, Q, iv_true, is_call)["vega"] * 100  # dollars per unit vol
    liquid = use & (vega > 1.0)  # a quarter tick is a small fraction of a vol point there
    assert liquid.sum() > 10_000 and np.median(np.abs(iv_mid - iv_true)[liquid]) < 0.002


def test_option_quotes_are_priced_off_the_spy_mid(day, truth) -> None:
    spy = day["stock_quotes"].select("ts_ns", ((pl.col("bid") + pl.col("ask")) / 2).alias("spy_mid"))
    q = truth["option_quotes"].sort("ts_ns").join_asof(spy, on="ts_ns", strategy="backward")
    assert np.array_equal(q.get_column("underlying_price").to_numpy(), q.get_column("spy_mid").to_numpy())  # exactly
    expiry = day["option_contracts"].select("option_symbol", "expiry_ts_ns")
    q = q.join(expiry, on="option_symbol")
    t = calendar.time_to_expiry_years(q.get_column("ts_ns").to_numpy(), q.get_column("expiry_ts_ns").to_numpy())
    assert np.allclose(t, q.get_column("t_years").to_numpy(), rtol=0, atol=1e-15)


def test_put_call_parity_of_mids_within_the_spread(day, truth) -> None:
    q = day["option_quotes"].join(truth["option_quotes"].select("sequence", "underlying_price", "t_years"), on="sequence")
    cols = ["ts_ns", "expiration", "strike", "bid", "ask", "underlying_price", "t_years"]
    calls = q.filter(pl.col("right") == "C", pl.col("bid") > 0).select(cols).sort("ts_ns")
    puts = q.filter(pl.col("right") == "P", pl.col("bid") > 0).select(cols).sort("ts_ns")
    # sorted by ts_ns overall, hence within every (expiration, strike) group
    pairs = calls.join_asof(puts, on="ts_ns", by=["expiration", "strike"], strategy="backward", suffix="_p",
                            check_sortedness=False)
    # pairs priced at the same underlying mid within a second of each other
    pairs = pairs.filter(pl.col("underlying_price") == pl.col("underlying_price_p"),
                         (pl.col("t_years_p") - pl.col("t_years")) * 365 * 86_400 < 1.0)
    assert pairs.height > 500
    S, K, T = (pairs.get_column(c).to_numpy() for c in ("underlying_price", "strike", "t_years"))
    c_mid = ((pairs.get_column("bid") + pairs.get_column("ask")) / 2).to_numpy()
    p_mid = ((pairs.get_column("bid_p") + pairs.get_column("ask_p")) / 2).to_numpy()
    spread = (pairs.get_column("ask") - pairs.get_column("bid") + pairs.get_column("ask_p") - pairs.get_column("bid_p")).to_numpy()
    parity = S * np.exp(-Q * T) - K * np.exp(-R * T)
    assert (np.abs(c_mid - p_mid - parity) <= spread / 2 + 1e-9).all()


def _with_prevailing_quote(trades: pl.DataFrame, quotes: pl.DataFrame, by: str, strict: bool) -> pl.DataFrame:
    q = quotes.select(by, "ts_ns", pl.col("sequence").alias("q_seq"), pl.col("ts_ns").alias("q_ts"), "bid", "ask")
    # both sorted by (instrument, ts_ns): sorted by ts_ns within every instrument group
    return trades.sort(by, "ts_ns").join_asof(q.sort(by, "ts_ns"), on="ts_ns", by=by, strategy="backward",
                                              allow_exact_matches=not strict, check_sortedness=False)


def test_option_trades_trade_against_the_prevailing_quote_on_their_true_side(day, truth) -> None:
    trades = day["option_trades"].join(truth["option_trades"].drop("ts_ns", "option_symbol"), on=["sequence", "trade_id"])
    assert trades.height == SMALL.option_trades
    strict = _with_prevailing_quote(trades, day["option_quotes"], "option_symbol", strict=True)
    inclusive = _with_prevailing_quote(trades, day["option_quotes"], "option_symbol", strict=False)
    assert strict.get_column("q_seq").null_count() == 0
    assert (strict.get_column("q_seq") == strict.get_column("quote_sequence")).all()
    assert strict.get_column("q_seq").equals(inclusive.get_column("q_seq"))  # never on a quote's instant
    assert (strict.get_column("ts_ns") > strict.get_column("q_ts")).all()
    price, bid, ask = (strict.get_column(c).to_numpy() for c in ("price", "bid", "ask"))
    mid = (bid + ask) / 2
    buy = (strict.get_column("side") == "B").to_numpy()
    eps = 1e-9
    assert (price > 0).all() and _on_option_grid(price).all()
    assert ((price >= mid - eps) & (price <= ask + eps))[buy].all()
    assert ((price <= mid + eps) & (price >= bid - eps))[~buy].all()
    at_touch = np.where(buy, np.abs(price - ask) < eps, np.abs(price - bid) < eps)
    assert 0.6 < at_touch.mean() < 0.95  # mostly at the touch, some inside
    assert 0.4 < buy.mean() < 0.6
    assert strict.get_column("trade_id").n_unique() == strict.height
    assert set(strict.get_column("exchange").unique()) <= set(SMALL.option_exchanges)


def test_option_trade_kinds_sweeps_and_blocks(day, truth) -> None:
    t = day["option_trades"].join(truth["option_trades"].drop("ts_ns", "option_symbol"), on=["sequence", "trade_id"])
    kinds = dict(t.group_by("kind").len().iter_rows())
    assert set(kinds) == {"single", "sweep", "block"}
    assert (t.get_column("conditions").list.first() == t.get_column("kind").replace_strict(
        {"single": SMALL.option_condition_regular, "sweep": SMALL.option_condition_sweep,
         "block": SMALL.option_condition_block})).all()
    sweeps = t.filter(pl.col("kind") == "sweep").group_by("order_id").agg(
        pl.len().alias("legs"), pl.col("exchange").n_unique().alias("venues"), pl.col("side").n_unique().alias("sides"),
        pl.col("option_symbol").n_unique().alias("contracts"), (pl.col("ts_ns").max() - pl.col("ts_ns").min()).alias("span"))
    assert sweeps.height > 10
    assert (sweeps.get_column("venues") == sweeps.get_column("legs")).all()
    assert (sweeps.get_column("sides") == 1).all() and (sweeps.get_column("contracts") == 1).all()
    assert (sweeps.get_column("legs") >= 2).mean() > 0.8
    last_orders = set(t.group_by("option_symbol").agg(pl.col("order_id").max()).get_column("order_id"))
    assert set(sweeps.filter(pl.col("legs") < 2).get_column("order_id")) <= last_orders  # cut short by the count
    assert (sweeps.get_column("span") <= (SMALL.sweep_max_legs - 1) * SMALL.sweep_leg_spacing_ns).all()
    assert (t.filter(pl.col("kind") == "block").get_column("size") >= SMALL.block_min_size).all()
    sizes = t.filter(pl.col("kind") == "single").get_column("size")
    assert sizes.min() >= 1 and sizes.median() <= 3 and sizes.max() > 20  # heavy tail
    assert (t.get_column("canceled") == t.get_column("canceled_right")).all()


def test_option_trade_truth_is_the_surface_at_the_print(day, truth) -> None:
    t = truth["option_trades"].join(day["option_trades"].select("sequence", "strike", "right"), on="sequence")
    spy = day["stock_quotes"].select("ts_ns", ((pl.col("bid") + pl.col("ask")) / 2).alias("spy_mid"))
    t = t.sort("ts_ns").join_asof(spy, on="ts_ns", strategy="backward")
    assert (t.get_column("underlying_price") == t.get_column("spy_mid")).all()
    S, K, T = (t.get_column(c).to_numpy() for c in ("underlying_price", "strike", "t_years"))
    open_price = truth["option_contracts"].get_column("open_price")[0]
    assert np.allclose(surface_vol(K, T, S, open_price, R, Q, SMALL), t.get_column("iv").to_numpy(), rtol=1e-14)
    is_call = (t.get_column("right") == "C").to_numpy()
    theo = greeks.bsm_price(S, K, T, R, Q, t.get_column("iv").to_numpy(), is_call)
    assert np.array_equal(theo, t.get_column("theo").to_numpy())
    assert (T > 0).all() and (T < 12 / 365).all()


def test_stock_trades_against_the_prevailing_quote(day, truth) -> None:
    trades = day["stock_trades"].join(truth["stock_trades"].drop("ts_ns"), on=["sequence", "trade_id"])
    assert trades.get_column("aggressor_side").null_count() == trades.height  # the tape does not say
    j = _with_prevailing_quote(trades, day["stock_quotes"], "symbol", strict=True)
    assert (j.get_column("q_seq") == j.get_column("quote_sequence")).all()
    assert j.get_column("q_seq").equals(_with_prevailing_quote(trades, day["stock_quotes"], "symbol", strict=False).get_column("q_seq"))
    price, bid, ask = (j.get_column(c).to_numpy() for c in ("price", "bid", "ask"))
    buy = (j.get_column("side") == "B").to_numpy()
    mid = (bid + ask) / 2
    assert ((price >= mid - 1e-9) & (price <= ask + 1e-9))[buy].all()
    assert ((price <= mid + 1e-9) & (price >= bid - 1e-9))[~buy].all()
    assert np.allclose(price * 200, np.rint(price * 200), atol=1e-6)  # cents, or half cents at the mid
    eff, und = j.get_column("efficient_price").to_numpy(), j.get_column("underlying_price").to_numpy()
    assert (np.abs(eff - und) <= (ask - bid) / 2 + 1e-9).all()  # the efficient price lies inside the quote
    odd = j.get_column("size") < SMALL.stock_lot_size
    assert (j.filter(odd).get_column("conditions").list.first() == SMALL.stock_condition_odd_lot).all()
    assert (j.filter(~odd).get_column("conditions").list.first() == SMALL.stock_condition_regular).all()
    assert (j.filter(~odd).get_column("size") % SMALL.stock_lot_size == 0).all()


def test_es_book_is_spy_times_ten_on_the_quarter_grid(day, truth) -> None:
    b = day["futures_mbp10"]
    assert set(b.get_column("symbol")) == {"ESZ5"} and set(b.get_column("instrument_id")) == {SMALL.futures_instrument_id}
    bid0, ask0 = b.get_column("bid_px_00").to_numpy(), b.get_column("ask_px_00").to_numpy()
    assert np.allclose(ask0 - bid0, SMALL.futures_tick)
    for side, sign in (("bid", -1), ("ask", 1)):
        for k in range(10):
            px = b.get_column(f"{side}_px_{k:02d}").to_numpy()
            assert np.allclose(px * 4, np.rint(px * 4))
            assert np.allclose(px - b.get_column(f"{side}_px_00").to_numpy(), sign * k * SMALL.futures_tick)
            sz, ct = b.get_column(f"{side}_sz_{k:02d}").to_numpy(), b.get_column(f"{side}_ct_{k:02d}").to_numpy()
            assert (sz >= 1).all() and (ct >= 1).all() and (ct <= sz).all()
    spy = day["stock_quotes"].select("ts_ns", ((pl.col("bid") + pl.col("ask")) / 2).alias("spy_mid"))
    j = b.select("ts_ns", "bid_px_00", "ask_px_00").join_asof(spy, on="ts_ns", strategy="backward")
    es_mid = ((j.get_column("bid_px_00") + j.get_column("ask_px_00")) / 2).to_numpy()
    assert (np.abs(es_mid - 10 * j.get_column("spy_mid").to_numpy()) <= SMALL.futures_tick / 2 + 1e-9).all()
    assert np.allclose(truth["futures_mbp10"].get_column("fair_price").to_numpy(), 10 * j.get_column("spy_mid").to_numpy())
    assert set(b.get_column("action")) == {"A", "C", "T"}
    assert (b.get_column("ts_ns").diff().drop_nulls() > 0).all()
    assert (b.get_column("ts_recv_ns") > b.get_column("ts_ns")).all()


def test_es_trades_at_the_best_level_with_their_aggressor(day, truth) -> None:
    t = day["futures_trades"].join(truth["futures_trades"].drop("ts_ns"), on=["sequence", "trade_id"])
    assert (t.get_column("aggressor_side") == t.get_column("side")).all()
    book = day["futures_mbp10"].select("ts_ns", "sequence", "action", "bid_px_00", "ask_px_00", "bid_sz_00", "ask_sz_00")
    for strict in (False, True):
        j = t.sort("ts_ns").join_asof(book.rename({"sequence": "b_seq"}), on="ts_ns", strategy="backward",
                                      allow_exact_matches=not strict)
        buy = (j.get_column("side") == "B").to_numpy()
        price = j.get_column("price").to_numpy()
        assert np.array_equal(price, np.where(buy, j.get_column("ask_px_00").to_numpy(), j.get_column("bid_px_00").to_numpy()))
        size = j.get_column("size").to_numpy()
        assert (size <= np.where(buy, j.get_column("ask_sz_00").to_numpy(), j.get_column("bid_sz_00").to_numpy())).all()
        if not strict:  # the book row at the print's instant is its own T row, sharing its sequence
            assert (j.get_column("b_seq") == j.get_column("sequence")).all() and set(j.get_column("action")) == {"T"}
    fut = t.select("price").to_numpy().ravel()
    assert np.allclose(fut * 4, np.rint(fut * 4))
    assert (np.abs(t.get_column("price") - t.get_column("fair_price")) <= SMALL.futures_tick + 1e-9).all()


def test_truth_of_option_quotes_streams_only(source) -> None:
    assert source.ground_truth("option_quotes", REF) is None
    assert source.ground_truth("rates", REF) is None
    chunks = list(source.ground_truth_chunks("option_quotes", REF))
    assert all(c.height <= CHUNK for c in chunks) and sum(c.height for c in chunks) == SMALL.option_quotes


def test_early_close_day_follows_the_calendar() -> None:
    ref = PartitionRef(dt.date(2025, 11, 28), "SPY")  # the day after Thanksgiving closes at 13:00 ET
    assert calendar.is_early_close(ref.trade_date)
    small = dataclasses.replace(SMALL, option_quotes=30_000, option_trades=1_000, stock_quotes=5_000,
                                futures_mbp10=12_000, futures_trades=500)
    src = SyntheticSource(small)
    open_ns, close_ns = calendar.session_open_close_ns(ref.trade_date)
    for name in ("option_quotes", "option_trades", "stock_quotes", "stock_trades", "futures_mbp10", "futures_trades"):
        ts = _table(src, name, ref).get_column("ts_ns")
        assert ts.min() >= open_ns and ts.max() < close_ns, name
    contracts = _table(src, "option_contracts", ref)
    zero_dte = contracts.filter(pl.col("expiration") == ref.trade_date)
    assert zero_dte.height > 0 and set(zero_dte.get_column("expiry_ts_ns")) == {close_ns}
    assert _table(src, "futures_trades", ref).get_column("symbol")[0] == "ESZ5"
    assert _table(SyntheticSource(small), "futures_mbp10", PartitionRef(dt.date(2025, 12, 12), "SPY")).get_column(
        "symbol")[0] == "ESH6"  # rolled: within 8 days of the December expiry


def test_refuses_what_it_cannot_simulate(source) -> None:
    with pytest.raises(ValueError, match="no start price for underlying 'QQQ'"):
        list(source.chunks("option_quotes", PartitionRef(REF.trade_date, "QQQ")))
    with pytest.raises(ValueError, match="does not fill table 'option_vendor_greeks'"):
        list(source.chunks("option_vendor_greeks", REF))
    with pytest.raises(CalendarError):
        list(source.chunks("stock_quotes", PartitionRef(dt.date(2025, 11, 8), "SPY")))  # a Saturday
    with pytest.raises(ValueError, match="butterfly arbitrage"):
        SyntheticSource(dataclasses.replace(SMALL, ssvi_eta=1.5))
    with pytest.raises(ValueError, match="futures_mbp10"):
        list(SyntheticSource(dataclasses.replace(SMALL, futures_mbp10=4_001, futures_trades=2_000)).chunks("futures_mbp10", REF))
    with pytest.raises(ValueError, match="chunk_rows"):
        SyntheticSource(SMALL, chunk_rows=0)


@pytest.mark.slow
def test_full_default_day_streams_in_bounded_chunks() -> None:
    settings = DEFAULT.synthetic
    assert settings.option_quotes >= 20_000_000 and settings.option_trades >= 500_000
    source = SyntheticSource(settings)
    limit = DEFAULT.ingest.chunk_rows
    for name, count in (("option_quotes", settings.option_quotes), ("option_trades", settings.option_trades)):
        rows = 0
        for chunk in source.chunks(name, REF):
            assert 0 < chunk.frame.height <= limit
            assert chunk.frame.columns == schemas.table(name).columns
            rows += chunk.frame.height
        assert rows == count, name
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    assert peak_gib < 4.0
