"""The underlying's session: efficient price path, NBBO quotes and prints, and the futures
proxy's book (MBP-10) and prints.

Model
-----
* Quote instants: ``stock_quotes`` instants over the regular session, drawn from the
  U-shaped intraday profile (:func:`._common.intraday_times`), at least
  ``stock_quote_min_gap_ns`` apart; the first is the session open.
* Efficient price: geometric Brownian motion with Merton (1976) jumps, sampled at the
  quote instants: ``d ln P = -sigma^2/2 dt + sigma dW + J dN``, with ``sigma^2`` per
  session ``annual_vol^2 / trading_days_per_year`` spread evenly over the session, ``N``
  a Poisson process of ``jumps_per_session`` jumps a session and ``J ~ N(0, jump_std^2)``.
* NBBO: a spread of ``s`` ticks (``stock_spread_tick_probs``) placed around the efficient
  price on the ``stock_tick`` grid so that ``bid <= P <= ask``: never crossed or locked.
* Prints: instants from the same profile, each strictly between two quotes so that the
  prevailing quote is unambiguous under both at-or-before and strictly-before joins;
  buyer-initiated (``buy_share``) at the ask, sellers at the bid; ``stock_trade_mid_share``
  at the midpoint (half ticks allowed), ``stock_trade_improve_share`` one tick inside when
  the spread allows. Sizes: odd lots uniform, round lots Pareto-tailed.
* Futures proxy (``UniverseSettings.futures_proxies``, ES for SPY): its fair price is
  ``futures_price_ratio x`` the underlying's NBBO mid (ES = SPY x 10). The book's best bid
  is the fair price floored to ``futures_tick`` and the best ask one tick above, so the
  futures mid is within half a futures tick of ``ratio x mid`` at every row. The book moves
  at the instant of each underlying quote that changes the fair price's tick bucket; between
  moves, adds and cancels hit levels (more often near the top); each print hits the best
  level on its side (action ``T``, book unchanged, as Databento's MBO) and its fill leaves
  the book ``futures_fill_latency_ns`` later (action ``C``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from m17_platform import calendar
from m17_platform.lake import PartitionRef
from m17_platform.settings import SessionSettings, SyntheticSettings, UniverseSettings
from m17_platform.sources.synthetic import _kernels
from m17_platform.sources.synthetic._common import Stream, intraday_times, pareto_sizes, rng, ticks_to_price

MONTH_CODES = "FGHJKMNQUVXZ"
"""CME futures month codes, January to December."""


@dataclass(frozen=True)
class UnderlyingDay:
    """One session of the underlying, as arrays (one entry per NBBO update).

    Attributes
    ----------
    ref : PartitionRef
    open_ns, close_ns : int
        Regular session open and close (ns since epoch, UTC) from the exchange calendar.
    open_price : float
        Efficient price at the open (dollars).
    ts : int64 (n,)
        Quote instants (ns), strictly increasing, ``ts[0] == open_ns``.
    bid_ticks, ask_ticks : int64 (n,)
        NBBO prices in ``tick`` units (``ask > bid``).
    bid_size, ask_size : int64 (n,)
        Displayed sizes (shares).
    bid_ex, ask_ex : int64 (n,)
        Index into ``SyntheticSettings.stock_exchanges``.
    efficient : float64 (n,)
        Efficient (latent) price at each quote (dollars).
    mid : float64 (n,)
        NBBO mid (dollars; on the half-tick grid).
    tick : float
        Price grid (dollars).
    """

    ref: PartitionRef
    open_ns: int
    close_ns: int
    open_price: float
    ts: np.ndarray
    bid_ticks: np.ndarray
    ask_ticks: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray
    bid_ex: np.ndarray
    ask_ex: np.ndarray
    efficient: np.ndarray
    mid: np.ndarray
    tick: float

    def index_at(self, ts: np.ndarray) -> np.ndarray:
        """Index of the quote prevailing at ``ts`` (at or before; ``ts >= open_ns``), int64."""
        return _kernels.asof_index(self.ts, np.ascontiguousarray(ts, dtype=np.int64))

    def mid_at(self, ts: np.ndarray) -> np.ndarray:
        """NBBO mid prevailing at ``ts`` (dollars), float64."""
        return self.mid[self.index_at(ts)]

    def move_times(self) -> np.ndarray:
        """Instants (ns) of the quotes whose mid differs from the previous quote's, int64."""
        two_mid = self.bid_ticks + self.ask_ticks
        return self.ts[1:][two_mid[1:] != two_mid[:-1]]


def session_open_price(ref: PartitionRef, settings: SyntheticSettings) -> float:
    """The day's open: ``start_price[underlying] x exp(open_price_jitter x Z)`` (dollars).

    Raises
    ------
    ValueError
        If the underlying has no ``start_price``.
    """
    if ref.underlying not in settings.start_price:
        raise ValueError(
            f"the synthetic source has no start price for underlying {ref.underlying!r}; "
            f"configured: {sorted(settings.start_price)} (SyntheticSettings.start_price)"
        )
    z = rng(settings, ref, Stream.OPEN).standard_normal()
    return float(settings.start_price[ref.underlying] * np.exp(settings.open_price_jitter * z))


def underlying_day(ref: PartitionRef, settings: SyntheticSettings, sessions: SessionSettings) -> UnderlyingDay:
    """Generate the underlying's quotes and efficient price for ``ref`` (see module docstring).

    Raises
    ------
    CalendarError
        If the trade date is not an exchange session.
    ValueError
        Unknown underlying, or more quotes than fit the session at the minimum gap.
    """
    open_ns, close_ns = calendar.session_open_close_ns(ref.trade_date, sessions)
    open_price = session_open_price(ref, settings)
    n = settings.stock_quotes
    gap = settings.stock_quote_min_gap_ns
    hi = close_ns - (n + 1) * gap
    if hi <= open_ns + 1:
        raise ValueError(f"{n} stock quotes at least {gap} ns apart do not fit the session of {ref.trade_date}")
    g = rng(settings, ref, Stream.STOCK_QUOTES)
    ts = np.empty(n, dtype=np.int64)
    ts[0] = open_ns
    ts[1:] = intraday_times(np.sort(g.random(n - 1)), open_ns + 1, hi, settings.intraday_u_shape)
    _kernels.enforce_min_gap(ts, gap)

    session_ns = close_ns - open_ns
    var_per_ns = settings.annual_vol**2 / settings.trading_days_per_year / session_ns
    step = np.diff(ts).astype(np.float64) * var_per_ns
    incr = -0.5 * step + np.sqrt(step) * g.standard_normal(n - 1)
    n_jumps = int(g.poisson(settings.jumps_per_session))
    jump_at = open_ns + np.floor(g.random(n_jumps) * session_ns).astype(np.int64)
    jump_size = g.normal(0.0, settings.jump_std, n_jumps)
    k = np.searchsorted(ts, jump_at, side="right")  # first quote after the jump
    ok = (k >= 1) & (k <= n - 1)
    np.add.at(incr, k[ok] - 1, jump_size[ok])
    efficient = open_price * np.exp(np.concatenate([[0.0], np.cumsum(incr)]))

    probs = np.asarray(settings.stock_spread_tick_probs, dtype=np.float64)
    spread = 1 + g.choice(probs.size, n, p=probs / probs.sum()).astype(np.int64)
    x = efficient / settings.stock_tick
    odd = spread % 2 == 1
    bid = np.where(odd, np.floor(x).astype(np.int64) - (spread - 1) // 2, np.rint(x).astype(np.int64) - spread // 2)
    ask = bid + spread
    lot = settings.stock_lot_size
    p = 1.0 / max(settings.stock_quote_size_mean_lots, 1.0)
    bid_size = lot * g.geometric(p, n).astype(np.int64)
    ask_size = lot * g.geometric(p, n).astype(np.int64)
    n_ex = len(settings.stock_exchanges)
    bid_ex = g.integers(0, n_ex, n)
    ask_ex = g.integers(0, n_ex, n)
    mid = (ticks_to_price(bid, settings.stock_tick) + ticks_to_price(ask, settings.stock_tick)) / 2.0  # as a reader computes it
    return UnderlyingDay(ref, open_ns, close_ns, open_price, ts, bid, ask, bid_size, ask_size, bid_ex, ask_ex,
                         efficient, mid, settings.stock_tick)


@dataclass(frozen=True)
class Prints:
    """Prints of one instrument as arrays (one entry per print).

    Attributes
    ----------
    ts : int64 (n,)  instants (ns since epoch, UTC), non-decreasing.
    price : float64 (n,)  dollars.
    size : int64 (n,)  shares or contracts.
    buy : bool (n,)  true aggressor: buyer-initiated.
    exchange : int64 (n,)  index into the exchange codes of the table.
    condition : int64 (n,)  index into the table's condition codes.
    quote_index : int64 (n,)  row (within the instrument) of the prevailing quote or book.
    """

    ts: np.ndarray
    price: np.ndarray
    size: np.ndarray
    buy: np.ndarray
    exchange: np.ndarray
    condition: np.ndarray
    quote_index: np.ndarray


def stock_prints(day: UnderlyingDay, settings: SyntheticSettings) -> Prints:
    """The underlying's prints for the day (``stock_trades`` of them), against ``day``'s quotes.

    Each print lies strictly between two quote instants (``quote_index`` is the quote
    before it). ``condition`` is 0 for a round-lot print, 1 for an odd lot.
    """
    s = settings
    n = s.stock_trades
    g = rng(s, day.ref, Stream.STOCK_TRADES)
    t = intraday_times(np.sort(g.random(n)), day.open_ns + 1, day.close_ns, s.intraday_u_shape)
    j = np.searchsorted(day.ts, t, side="left").astype(np.int64) - 1  # last quote strictly before
    nxt = np.minimum(j + 1, day.ts.size - 1)
    t = np.where((j + 1 < day.ts.size) & (day.ts[nxt] == t), t - 1, t)  # never on a quote's instant
    buy = g.random(n) < s.buy_share
    r = g.random(n)
    bid, ask = day.bid_ticks[j], day.ask_ticks[j]
    half = np.where(buy, 2 * ask, 2 * bid)  # price in half ticks
    improve = (r >= s.stock_trade_mid_share) & (r < s.stock_trade_mid_share + s.stock_trade_improve_share) & (ask - bid >= 2)
    half = np.where(improve, np.where(buy, 2 * (ask - 1), 2 * (bid + 1)), half)
    half = np.where(r < s.stock_trade_mid_share, bid + ask, half)
    odd = g.random(n) < s.stock_odd_lot_share
    odd_size = g.integers(1, max(s.stock_lot_size, 2), n)
    lots = pareto_sizes(g.random(n), 1, s.stock_trade_size_alpha, s.stock_trade_max_lots)
    size = np.where(odd, odd_size, s.stock_lot_size * lots)
    exchange = g.integers(0, len(s.stock_exchanges), n)
    return Prints(t, ticks_to_price(half, day.tick / 2.0), size, buy, exchange, odd.astype(np.int64), j)


def futures_root(underlying: str, universe: UniverseSettings) -> str | None:
    """The futures root that serves ``underlying`` as a proxy (``ES`` for ``SPY``), or None."""
    roots = sorted(r for r, u in universe.futures_proxies.items() if u == underlying)
    return roots[0] if roots else None


def front_contract(root: str, day: dt.date, settings: SyntheticSettings) -> str:
    """Raw symbol of the front contract on ``day`` (``ESZ5``): the first listed month whose
    expiry (third Friday) is more than ``futures_roll_days`` calendar days away."""
    for year in (day.year, day.year + 1):
        for month in sorted(settings.futures_contract_months):
            first = dt.date(year, month, 1)
            third_friday = first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)
            if day < third_friday - dt.timedelta(days=settings.futures_roll_days):
                return f"{root}{MONTH_CODES[month - 1]}{year % 10}"
    raise ValueError(f"no listed futures month after {day}")  # unreachable with 1-12 months


@dataclass(frozen=True)
class FuturesDay:
    """The futures proxy's book rows and prints for one session.

    Attributes
    ----------
    symbol : str  raw symbol (``ESZ5``).
    ratio : float  futures price / underlying price.
    tick : float  futures price grid (dollars).
    ts, ts_recv : int64 (n,)  book row instants and capture instants (ns).
    best_bid : int64 (n,)  best-bid tick; level k of the bids is ``best_bid - k``, of the
        asks ``best_bid + 1 + k``.
    bid_sz, bid_ct, ask_sz, ask_ct : int64 (n, 10)  sizes (contracts) and order counts.
    action, side : int8 (n,)  codes into ``_kernels.ACTIONS`` / ``_kernels.SIDES``.
    ev_px, ev_sz : int64 (n,)  event price (ticks) and quantity (contracts).
    prints : Prints  the prints (``quote_index`` = the print's own ``T`` row, whose book
        is the book before the print).
    trade_recv : int64 (m,)  capture instants of the prints (ns).
    """

    symbol: str
    ratio: float
    tick: float
    ts: np.ndarray
    ts_recv: np.ndarray
    best_bid: np.ndarray
    bid_sz: np.ndarray
    bid_ct: np.ndarray
    ask_sz: np.ndarray
    ask_ct: np.ndarray
    action: np.ndarray
    side: np.ndarray
    ev_px: np.ndarray
    ev_sz: np.ndarray
    prints: Prints
    trade_recv: np.ndarray


def futures_day(day: UnderlyingDay, settings: SyntheticSettings, universe: UniverseSettings) -> FuturesDay | None:
    """The futures proxy's session (see module docstring), or None if no futures root
    serves the underlying or ``futures_mbp10`` is 0.

    Raises
    ------
    ValueError
        If ``futures_mbp10`` is smaller than the opening book + the fair-price moves of the
        day + two rows per print.
    """
    s = settings
    root = futures_root(day.ref.underlying, universe)
    if root is None or s.futures_mbp10 == 0:  # validate() keeps futures_trades at 0 then
        return None
    ratio = float(universe.futures_price_ratio[root])
    fair = ratio * day.mid
    bucket = np.floor(fair / s.futures_tick + 1e-9).astype(np.int64)
    change = np.concatenate([[True], bucket[1:] != bucket[:-1]])
    shift_t, shift_b = day.ts[change], bucket[change]
    m = s.futures_trades
    n_shift = shift_t.size
    n_noise = s.futures_mbp10 - n_shift - 2 * m
    if n_noise < 0:
        raise ValueError(
            f"futures_mbp10={s.futures_mbp10} cannot hold the {n_shift} book moves the underlying's path makes "
            f"on {day.ref.trade_date} plus 2 x {m} rows for the prints; raise SyntheticSettings.futures_mbp10"
        )
    n = s.futures_mbp10
    hi = day.close_ns - n - s.futures_fill_latency_ns - 2
    g = rng(s, day.ref, Stream.FUTURES_BOOK)
    noise_t = intraday_times(g.random(n_noise), day.open_ns + 1, hi, s.intraday_u_shape)
    noise_u = g.random((n_noise, 4))
    pool = g.random(40 * n_shift + 2 * m + 2)
    ts_recv_lat = 1 + np.floor(g.exponential(s.futures_recv_latency_ns, n)).astype(np.int64)
    gt = rng(s, day.ref, Stream.FUTURES_TRADES)
    trade_t = intraday_times(np.sort(gt.random(m)), day.open_ns + 1, hi, s.intraday_u_shape)
    trade_buy = gt.random(m) < s.buy_share
    trade_draw = pareto_sizes(gt.random(m), 1, s.futures_trade_size_alpha, s.futures_trade_max_size)

    times = np.concatenate([shift_t, noise_t, trade_t, trade_t + s.futures_fill_latency_ns])
    types = np.concatenate([
        np.full(n_shift, _kernels.EV_SHIFT, np.int8), np.full(n_noise, _kernels.EV_NOISE, np.int8),
        np.full(m, _kernels.EV_TRADE, np.int8), np.full(m, _kernels.EV_FILL, np.int8),
    ])
    arg = np.concatenate([shift_b, np.zeros(n_noise, np.int64), np.arange(m), np.arange(m)])
    u = np.zeros((n, 4))
    u[n_shift:n_shift + n_noise] = noise_u
    order = np.lexsort((types, times))
    times, types, arg, u = times[order], types[order], arg[order], u[order]
    _kernels.enforce_min_gap(times, 1)
    if times[-1] >= day.close_ns:
        raise ValueError(f"{n} futures book rows do not fit the session of {day.ref.trade_date}")
    out = _kernels.futures_book(
        types, arg, u, trade_buy, trade_draw, pool, float(s.futures_level_size_mean),
        float(s.futures_level_size_growth), float(s.futures_order_size_mean), float(s.futures_noise_level_decay),
        float(s.futures_noise_add_share),
    )
    best_bid, bid_sz, bid_ct, ask_sz, ask_ct, action, side, ev_px, ev_sz, trade_px, trade_sz, trade_row = out
    prints = Prints(
        ts=times[trade_row], price=ticks_to_price(trade_px, s.futures_tick), size=trade_sz, buy=trade_buy,
        exchange=np.zeros(m, np.int64), condition=np.zeros(m, np.int64), quote_index=trade_row,
    )
    return FuturesDay(
        symbol=front_contract(root, day.ref.trade_date, s), ratio=ratio, tick=s.futures_tick, ts=times,
        ts_recv=times + ts_recv_lat, best_bid=best_bid, bid_sz=bid_sz, bid_ct=bid_ct, ask_sz=ask_sz,
        ask_ct=ask_ct, action=action, side=side, ev_px=ev_px, ev_sz=ev_sz, prints=prints,
        trade_recv=times[trade_row] + ts_recv_lat[trade_row],
    )
