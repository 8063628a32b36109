"""The option chain: contracts, the SSVI volatility surface, and per-contract quotes and
prints.

Contracts
---------
Expirations: the trade date itself (0DTE, when ``daily_expiration``: the synthetic
assumes a daily expiry every session, as SPY has listed since 2022) and the next
``weekly_expirations`` Fridays (a holiday Friday expires on the session before it).
Strikes: every ``strike_step`` within ``strikes_each_side`` steps of the open. Calls and
puts. Contracts are enumerated in OCC-symbol order, the lake's sort order, so streaming
them contract by contract yields rows already sorted by ``(option_symbol, ts_ns)``.

Surface
-------
SSVI (Gatheral & Jacquier 2014, "Arbitrage-free SVI volatility surfaces", Quantitative
Finance 14(1)), total implied variance at log-moneyness ``k = ln(K / F)``,
``F = S e^{(r - q) T}``::

    w(k, T) = theta_T / 2 * (1 + rho phi k + sqrt((phi k + rho)^2 + 1 - rho^2))
    phi     = eta / (theta_T^gamma (1 + theta_T)^(1 - gamma))      (power law)
    theta_T = sigma_atm(T, S)^2 T                                   (ATM total variance)
    sigma_atm(T, S) = (long + (short - long) e^{-T / decay}) (S / S_open)^elasticity

and ``sigma(K, T, S) = sqrt(w / T)``. Quotes' model prices are Black-Scholes-Merton
(:func:`m17_platform.greeks.bsm_price`, European exercise, continuous dividend yield) at
that vol, the underlying's NBBO mid at the update instant, and the configured rate and
dividend yield (:class:`m17_platform.settings.RatesSettings`), so
:func:`m17_platform.greeks.implied_vol` of the model price returns the surface vol.

Quotes
------
Each contract's updates (``quote_counts``) are move-triggered (an underlying mid change
plus a latency) or noise updates at random instants, at least ``option_quote_min_gap_ns``
apart. Grid: ``option_tick_small`` below ``option_tick_break``, ``option_tick_large`` at or
above. Spread ``s = max(min_ticks, ceil(spread_rel x price / tick)) + noise`` ticks; the
mid is the model price rounded to the half-tick grid (error at most a quarter tick) and
``bid = mid - s/2``, ``ask = mid + s/2`` (``s`` made even or odd to keep both on the grid);
a negative bid becomes a zero bid (size 0). Never crossed or locked.

Prints
------
Orders arrive at intraday-profile instants; each trades against the quote prevailing then
(``quote_index``) at an instant strictly between that quote and the next. Singles and
blocks print at the ask (buyer-initiated) / bid (seller-initiated), one tick inside on the
aggressor's side, or at the mid rounded toward the aggressor; sweeps print every leg at the
touch on distinct exchanges ``sweep_leg_spacing_ns`` apart (closer if the next quote comes
sooner). A seller-initiated order against a zero bid becomes a buyer-initiated one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from m17_platform import calendar, greeks
from m17_platform.settings import SessionSettings, SyntheticSettings
from m17_platform.sources.synthetic import _kernels
from m17_platform.sources.synthetic._common import (
    Stream,
    allocate,
    intraday_times,
    pareto_sizes,
    ratio_units,
    rng,
)
from m17_platform.sources.synthetic.underlying import UnderlyingDay
from m17_platform.symbols import occ_symbol

SINGLE, SWEEP, BLOCK = 0, 1, 2
KINDS = ("single", "sweep", "block")
"""Order kinds of option prints (index = ``kind`` code)."""


def expirations(trade_date: dt.date, settings: SyntheticSettings, sessions: SessionSettings) -> list[dt.date]:
    """The chain's expiration dates, nearest first (see module docstring)."""
    out = [trade_date] if settings.daily_expiration else []
    friday = trade_date + dt.timedelta(days=(4 - trade_date.weekday()) % 7)
    weeklies = 0
    while weeklies < settings.weekly_expirations:
        sessions_that_week = calendar.trading_days(friday - dt.timedelta(days=6), friday, sessions)
        expiry = sessions_that_week[-1] if sessions_that_week else friday
        if expiry > trade_date and expiry not in out:
            out.append(expiry)
            weeklies += 1
        friday += dt.timedelta(days=7)
    return out


def surface_vol(strike, t_years, spot, open_price: float, rate: float, dividend_yield: float,
                settings: SyntheticSettings) -> np.ndarray:
    """SSVI implied volatility (Gatheral & Jacquier 2014; formulas in the module docstring).

    Parameters
    ----------
    strike : array_like of float64
        Strike (dollars).
    t_years : array_like of float64
        Time to expiry (years, > 0).
    spot : array_like of float64
        Underlying price (dollars).
    open_price : float
        The session's open (dollars), the reference of the spot elasticity.
    rate, dividend_yield : float
        Continuously compounded, annualised decimals.
    settings : SyntheticSettings

    Returns
    -------
    numpy.ndarray of float64
        Annualised implied volatility (decimal), broadcast shape of the inputs.
    """
    s = settings
    shape = np.broadcast_shapes(np.shape(strike), np.shape(t_years), np.shape(spot))
    flat = [np.array(np.broadcast_to(x, shape), dtype=np.float64, order="C").ravel() for x in (strike, t_years, spot)]
    sigma = _kernels.ssvi_vol(*flat, float(open_price), float(rate), float(dividend_yield), float(s.atm_vol_long),
                              float(s.atm_vol_short), float(s.atm_vol_decay_years), float(s.atm_vol_spot_elasticity),
                              float(s.ssvi_rho), float(s.ssvi_eta), float(s.ssvi_gamma))
    return sigma.reshape(shape)


@dataclass(frozen=True)
class Chain:
    """The day's contracts in OCC-symbol order, with their activity.

    Attributes
    ----------
    root : str  option root (the underlying).
    symbols : tuple[str, ...]  OCC symbols, Polygon spelling, sorted.
    expiration : tuple[datetime.date, ...]  per contract.
    expiry_ns : int64 (n,)  expiry instant (session close of the expiration day, ns UTC).
    strike : float64 (n,)  dollars.
    is_call : bool (n,)
    expiry_rank : int64 (n,)  0 for the nearest expiration.
    quote_counts, trade_counts : int64 (n,)  updates / prints per contract (sum to the settings).
    quote_offsets, trade_offsets : int64 (n,)  ``sequence`` of each contract's first row.
    atm_vol_open : float64 (n,)  ATM vol of the contract's expiry at the open (decimal).
    open_price : float  underlying at the open (dollars).
    rate, dividend_yield : float  continuously compounded annualised decimals used to price.
    """

    root: str
    symbols: tuple[str, ...]
    expiration: tuple[dt.date, ...]
    expiry_ns: np.ndarray
    strike: np.ndarray
    is_call: np.ndarray
    expiry_rank: np.ndarray
    quote_counts: np.ndarray
    trade_counts: np.ndarray
    quote_offsets: np.ndarray
    trade_offsets: np.ndarray
    atm_vol_open: np.ndarray
    open_price: float
    rate: float
    dividend_yield: float

    def __len__(self) -> int:
        return len(self.symbols)


def build_chain(day: UnderlyingDay, settings: SyntheticSettings, sessions: SessionSettings,
                rate: float, dividend_yield: float) -> Chain:
    """Enumerate the contracts and split the day's quotes and prints among them.

    Activity of a contract: ``expiry_activity[rank] (floor + exp(-|z| / z_scale))`` with
    ``z = ln(K / S_open) / (sigma_atm sqrt(T_open))``; quotes get ``min_quotes_per_contract``
    each first (fewer if the total is short), prints go only to contracts with quotes.

    Raises
    ------
    ValueError
        If prints are asked for but no contract has a quote, or a strike cannot be an OSI strike.
    """
    s = settings
    ref = day.ref
    center = round(day.open_price / s.strike_step) * s.strike_step
    strikes = [center + s.strike_step * j for j in range(-s.strikes_each_side, s.strikes_each_side + 1)]
    strikes = [round(k, 3) for k in strikes if k > 0]
    rows = []
    for rank, expiry in enumerate(expirations(ref.trade_date, s, sessions)):
        exp_ns = calendar.expiry_instant_ns(expiry, sessions)
        for right in ("C", "P"):
            for k in strikes:
                rows.append((occ_symbol(ref.underlying, expiry, right, k), expiry, exp_ns, k, right == "C", rank))
    rows.sort(key=lambda r: r[0])
    n = len(rows)
    expiry_ns = np.array([r[2] for r in rows], dtype=np.int64)
    strike = np.array([r[3] for r in rows], dtype=np.float64)
    rank = np.array([r[5] for r in rows], dtype=np.int64)
    t_open = calendar.time_to_expiry_years(day.open_ns, expiry_ns, sessions)
    forward = day.open_price * np.exp((rate - dividend_yield) * t_open)
    sig_open = surface_vol(forward, t_open, day.open_price, day.open_price, rate, dividend_yield, s)  # ATM: k = 0
    z = np.log(strike / day.open_price) / (sig_open * np.sqrt(t_open))
    activity = np.asarray(s.expiry_activity, dtype=np.float64)[np.minimum(rank, len(s.expiry_activity) - 1)]
    wq = activity * (s.quote_activity_floor + np.exp(-np.abs(z) / s.quote_activity_z_scale))
    wt = activity * (s.trade_activity_floor + np.exp(-np.abs(z) / s.trade_activity_z_scale))
    quote_counts = allocate(s.option_quotes, wq, min(s.min_quotes_per_contract, s.option_quotes // n))
    wt = np.where(quote_counts > 0, wt, 0.0)
    if s.option_trades and not wt.sum() > 0:
        raise ValueError("option_trades > 0 but no contract has a quote to trade against; raise option_quotes")
    trade_counts = allocate(s.option_trades, wt) if s.option_trades else np.zeros(n, dtype=np.int64)
    offsets_q = np.concatenate([[0], np.cumsum(quote_counts)[:-1]]).astype(np.int64)
    offsets_t = np.concatenate([[0], np.cumsum(trade_counts)[:-1]]).astype(np.int64)
    return Chain(
        root=ref.underlying, symbols=tuple(r[0] for r in rows), expiration=tuple(r[1] for r in rows),
        expiry_ns=expiry_ns, strike=strike, is_call=np.array([r[4] for r in rows], dtype=bool), expiry_rank=rank,
        quote_counts=quote_counts, trade_counts=trade_counts, quote_offsets=offsets_q, trade_offsets=offsets_t,
        atm_vol_open=sig_open, open_price=day.open_price, rate=rate, dividend_yield=dividend_yield,
    )


@dataclass(frozen=True)
class ContractQuotes:
    """One contract's updates (arrays of length n, time order).

    ts : int64 ns UTC. bid_u, ask_u : int64 prices in ``option_tick_small`` units.
    bid_size, ask_size : int64 contracts (bid size 0 with a zero bid). bid_ex, ask_ex :
    int64 index into ``option_exchanges``. spot : float64 underlying mid the update is
    priced at (dollars). t_years : float64 time to expiry (years). sigma : float64 surface
    vol (decimal). theo : float64 model price (dollars).
    """

    ts: np.ndarray
    bid_u: np.ndarray
    ask_u: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray
    bid_ex: np.ndarray
    ask_ex: np.ndarray
    spot: np.ndarray
    t_years: np.ndarray
    sigma: np.ndarray
    theo: np.ndarray


class ChainGenerator:
    """Generates any contract's quotes and prints on its own random streams.

    Parameters
    ----------
    day : UnderlyingDay
    chain : Chain
    settings : SyntheticSettings
    sessions : SessionSettings
    """

    def __init__(self, day: UnderlyingDay, chain: Chain, settings: SyntheticSettings, sessions: SessionSettings):
        self.day, self.chain, self.settings, self.sessions = day, chain, settings, sessions
        self.move_ts = day.move_times()
        s = settings
        self.large = ratio_units(s.option_tick_large, s.option_tick_small, "option_tick_large")
        self.break_u = ratio_units(s.option_tick_break, s.option_tick_small, "option_tick_break")
        w = np.asarray(s.option_exchange_weights, dtype=np.float64)
        self.ex_p = w / w.sum()

    def _end(self, i: int) -> int:
        return int(min(self.day.close_ns, self.chain.expiry_ns[i]))

    def model(self, i: int, ts: np.ndarray):
        """(spot, t_years, sigma, theo) of contract ``i`` at instants ``ts`` (see :class:`ContractQuotes`)."""
        c, s = self.chain, self.settings
        spot = self.day.mid_at(ts)
        t = calendar.time_to_expiry_years(ts, int(c.expiry_ns[i]), self.sessions)
        sigma = surface_vol(c.strike[i], t, spot, c.open_price, c.rate, c.dividend_yield, s)
        theo = greeks.bsm_price(spot, c.strike[i], t, c.rate, c.dividend_yield, sigma, bool(c.is_call[i]))
        return spot, t, sigma, theo

    def quotes(self, i: int) -> ContractQuotes:
        """Contract ``i``'s updates (``chain.quote_counts[i]`` of them).

        Raises
        ------
        ValueError
            If the updates do not fit before the contract's end at the minimum gap.
        """
        s, day = self.settings, self.day
        n = int(self.chain.quote_counts[i])
        g = rng(s, day.ref, Stream.OPTION_QUOTES, i)
        gap = s.option_quote_min_gap_ns
        hi = self._end(i) - (n + 1) * gap
        if n and hi <= day.open_ns + 1:
            raise ValueError(f"{n} updates of {self.chain.symbols[i]} at least {gap} ns apart do not fit its session")
        first = day.open_ns + 1 + np.floor(g.exponential(s.option_quote_latency_ns, 1)).astype(np.int64)
        n_move = int(round(s.option_quote_move_share * max(n - 1, 0)))
        picks = np.sort(g.integers(0, self.move_ts.size, n_move)) if self.move_ts.size and n_move else np.empty(0, np.int64)
        picks = picks[np.concatenate([[True], picks[1:] != picks[:-1]])] if picks.size else picks  # distinct moves
        t_move = self.move_ts[picks] + 1 + np.floor(g.exponential(s.option_quote_latency_ns, picks.size)).astype(np.int64)
        t_noise = intraday_times(g.random(max(n - 1 - picks.size, 0)), day.open_ns + 1, max(hi, day.open_ns + 2),
                                 s.intraday_u_shape)
        ts = np.sort(np.clip(np.concatenate([first, t_move, t_noise])[:n], day.open_ns + 1, hi))
        _kernels.enforce_min_gap(ts, gap)
        spot, t, sigma, theo = self.model(i, ts)

        extra = g.geometric(1.0 / (1.0 + s.option_spread_extra_ticks_mean), n).astype(np.int64) - 1
        bid_u, ask_u = _kernels.quote_grid(theo / s.option_tick_small, extra, self.large, self.break_u,
                                           int(s.option_spread_min_ticks), float(s.option_spread_rel))
        p = 1.0 / max(s.option_quote_size_mean, 1.0)
        bid_size = np.where(bid_u > 0, g.geometric(p, n), 0).astype(np.int64)
        ask_size = g.geometric(p, n).astype(np.int64)
        n_ex = self.ex_p.size
        bid_ex = g.choice(n_ex, n, p=self.ex_p)
        ask_ex = g.choice(n_ex, n, p=self.ex_p)
        return ContractQuotes(ts, bid_u, ask_u, bid_size, ask_size, bid_ex, ask_ex, spot, t, sigma, theo)

    def _grid(self, units: np.ndarray, up: np.ndarray) -> np.ndarray:
        """Round prices in small-tick units onto the quote grid: at or above the break to
        the large tick, up where ``up`` else down."""
        L = self.large
        on_large = units >= self.break_u
        rounded = np.where(up, -(-units // L) * L, units // L * L)
        return np.where(on_large, rounded, units)

    def trades(self, i: int, q: ContractQuotes) -> dict[str, np.ndarray]:
        """Contract ``i``'s prints (``chain.trade_counts[i]`` of them) against its quotes ``q``.

        Returns
        -------
        dict of str to numpy.ndarray, each of length n, sorted by ``ts``:
            ``ts`` int64 ns; ``price_u`` int64 price in small-tick units; ``size`` int64
            contracts; ``buy`` bool (true aggressor); ``exchange`` int64 index into
            ``option_exchanges``; ``kind`` int64 (:data:`KINDS`, also the condition index);
            ``order`` int64 order number within the contract; ``quote_index`` int64 row of
            the prevailing quote in ``q``; ``canceled`` bool.
        """
        s, day = self.settings, self.day
        n = int(self.chain.trade_counts[i])
        g = rng(s, day.ref, Stream.OPTION_TRADES, i)
        ku = g.random(n)
        kind = np.where(ku < s.sweep_share, SWEEP, np.where(ku < s.sweep_share + s.block_share, BLOCK, SINGLE))
        extra = np.minimum(g.geometric(1.0 / (1.0 + s.sweep_extra_legs_mean), n) - 1, s.sweep_max_legs - 2)
        legs = np.where(kind == SWEEP, 2 + extra, 1).astype(np.int64)
        cum = np.cumsum(legs)
        n_orders = int(np.searchsorted(cum, n) + 1) if n else 0
        kind, legs = kind[:n_orders], legs[:n_orders].copy()
        if n_orders:
            legs[-1] -= cum[n_orders - 1] - n

        end = self._end(i)
        u_t = intraday_times(np.sort(g.random(n_orders)), day.open_ns + 1, end, s.intraday_u_shape)
        j = np.maximum(np.searchsorted(q.ts, u_t, side="right") - 1, 0)
        nxt = np.where(j + 1 < q.ts.size, q.ts[np.minimum(j + 1, q.ts.size - 1)], end)
        lo, hi = q.ts[j] + 1, nxt - 1
        spacing = np.minimum(s.sweep_leg_spacing_ns, (hi - lo) // np.maximum(legs - 1, 1))
        spacing = np.where(legs > 1, spacing, 0)
        t0 = np.clip(u_t, lo, hi - (legs - 1) * spacing)

        bid, ask = q.bid_u[j], q.ask_u[j]
        buy = (g.random(n_orders) < s.buy_share) | (bid <= 0)
        r = g.random(n_orders)
        inside = (kind != SWEEP) & (r < s.option_trade_inside_share)
        at_mid = (kind != SWEEP) & ~inside & (r < s.option_trade_inside_share + s.option_trade_mid_share)
        touch = np.where(buy, ask, bid)
        step_buy = np.where(ask > self.break_u, self.large, 1)
        step_sell = np.where(bid >= self.break_u, self.large, 1)
        better = np.where(buy, ask - step_buy, bid + step_sell)
        better = np.where((better > bid) & (better < ask), better, touch)
        two_mid = bid + ask
        mid = self._grid(np.where(buy, -(-two_mid // 2), two_mid // 2), buy)
        price = np.where(inside, better, np.where(at_mid, mid, touch))

        order = np.repeat(np.arange(n_orders), legs)
        leg = np.arange(n) - np.repeat(cum[:n_orders] - legs, legs) if n else np.empty(0, np.int64)
        ts = t0[order] + leg * spacing[order]
        size = pareto_sizes(g.random(n), 1, s.option_trade_size_alpha, s.option_trade_max_size)
        block_size = pareto_sizes(g.random(n), s.block_min_size, s.block_size_alpha, s.block_max_size)
        size = np.where(kind[order] == BLOCK, block_size, size)
        n_ex = self.ex_p.size
        start_ex = g.choice(n_ex, n_orders, p=self.ex_p)
        exchange = (start_ex[order] + leg) % n_ex
        canceled = g.random(n) < s.canceled_share
        srt = np.argsort(ts, kind="stable")
        return {
            "ts": ts[srt], "price_u": price[order][srt], "size": size[srt], "buy": buy[order][srt],
            "exchange": exchange[srt], "kind": kind[order][srt].astype(np.int64), "order": order[srt],
            "quote_index": j[order][srt], "canceled": canceled[srt],
        }
