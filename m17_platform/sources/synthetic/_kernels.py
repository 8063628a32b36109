"""Numba kernels of the synthetic session: event-time spacing and the futures book.

Random numbers are drawn outside the kernels with NumPy ``Generator`` streams and passed
in, so a kernel is a pure function of its inputs (deterministic, cacheable).
"""

from __future__ import annotations

import math

import numba
import numpy as np

BOOK_LEVELS = 10
"""Levels per side of the futures book (the ``futures_mbp10`` schema holds ten)."""

# event types of the futures book replay
EV_SHIFT = 0  # the fair price moved to another tick bucket (or the opening book)
EV_NOISE = 1  # an add or a cancel at one level
EV_TRADE = 2  # an aggressor traded at the best level (book unchanged, like an MBO ``T``)
EV_FILL = 3  # the resting quantity that trade filled leaves the book

# action / side codes of the book rows (index into ACTIONS / SIDES)
ACTIONS = ("A", "C", "T")
SIDES = ("B", "A", "N")
_ADD, _CANCEL, _TRADE = 0, 1, 2
_BID, _ASK = 0, 1


@numba.njit(cache=True)
def enforce_min_gap(ts, gap):
    """Make sorted timestamps strictly increasing by at least ``gap`` ns, in place.

    Parameters
    ----------
    ts : numpy.ndarray of int64, shape (n,)
        Sorted event times (ns); ``ts[k]`` becomes ``max(ts[k], ts[k-1] + gap)``.
    gap : int
        Smallest spacing (ns, >= 1).
    """
    for k in range(1, ts.shape[0]):
        lo = ts[k - 1] + gap
        if ts[k] < lo:
            ts[k] = lo


@numba.njit(cache=True)
def _fresh_level(pool, ptr, level, size_mean, growth, order_mean):
    """A new resting level: (size, orders, next pool index); sizes >= 1, 1 <= orders <= size."""
    n = pool.shape[0]
    u1 = pool[ptr % n]
    u2 = pool[(ptr + 1) % n]
    mean = size_mean * (1.0 + growth * level)
    size = 1 + int(-math.log(1.0 - u1) * max(mean - 1.0, 0.0))
    orders = 1 + int(u2 * 2.0 * size / order_mean)
    if orders > size:
        orders = size
    return size, orders, ptr + 2


@numba.njit(cache=True)
def futures_book(
    ev_type, ev_arg, ev_u, trade_buy, trade_draw, pool, size_mean, growth, order_mean, level_decay, add_share
):
    """Replay the futures book over time-ordered events; one output row per event.

    The book is anchored on the fair price: the best bid is tick ``b`` and the best ask
    ``b + 1`` (a one-tick market, never crossed or locked); level ``k`` of the bids is
    ``b - k``, of the asks ``b + 1 + k``. A shift keeps the sizes of levels whose price
    stays in the top ten and draws fresh ones for new levels.

    Parameters
    ----------
    ev_type : int8 array (n,)
        ``EV_SHIFT`` / ``EV_NOISE`` / ``EV_TRADE`` / ``EV_FILL``; the first must be a shift.
    ev_arg : int64 array (n,)
        Shift: the new best-bid tick ``b``. Trade and fill: the trade's index.
    ev_u : float64 array (n, 4)
        Uniforms of noise events (side, level, add or cancel, quantity).
    trade_buy : bool array (m,)
        True for a buyer-initiated trade (hits the best ask).
    trade_draw : int64 array (m,)
        Desired trade size (contracts); capped at the size resting at the best level.
    pool : float64 array
        Uniforms consumed in order (wrapping) for fresh levels.
    size_mean, growth, order_mean, level_decay, add_share : float
        ``SyntheticSettings.futures_level_size_mean``, ``futures_level_size_growth``,
        ``futures_order_size_mean``, ``futures_noise_level_decay``, ``futures_noise_add_share``.

    Returns
    -------
    best_bid : int64 (n,)
        Best-bid tick after each event.
    bid_sz, bid_ct, ask_sz, ask_ct : int64 (n, 10)
        Size (contracts) and order count per level after each event.
    action, side : int8 (n,)
        Codes into :data:`ACTIONS` and :data:`SIDES` (Databento conventions: a trade's
        side is the aggressor's, B buy / A sell; an add's or cancel's is the resting side).
    ev_px : int64 (n,)
        Tick of the event's price.
    ev_sz : int64 (n,)
        Event quantity (contracts).
    trade_px, trade_sz, trade_row : int64 (m,)
        Each trade's price tick, size (contracts) and its ``EV_TRADE`` row.
    """
    n = ev_type.shape[0]
    m = trade_buy.shape[0]
    L = BOOK_LEVELS
    best_bid = np.empty(n, dtype=np.int64)
    bid_sz = np.empty((n, L), dtype=np.int64)
    bid_ct = np.empty((n, L), dtype=np.int64)
    ask_sz = np.empty((n, L), dtype=np.int64)
    ask_ct = np.empty((n, L), dtype=np.int64)
    action = np.empty(n, dtype=np.int8)
    side = np.empty(n, dtype=np.int8)
    ev_px = np.empty(n, dtype=np.int64)
    ev_sz = np.empty(n, dtype=np.int64)
    trade_px = np.zeros(m, dtype=np.int64)
    trade_sz = np.zeros(m, dtype=np.int64)
    trade_row = np.full(m, -1, dtype=np.int64)

    bs = np.zeros(L, dtype=np.int64)
    bc = np.zeros(L, dtype=np.int64)
    as_ = np.zeros(L, dtype=np.int64)
    ac = np.zeros(L, dtype=np.int64)
    nbs = np.zeros(L, dtype=np.int64)
    nbc = np.zeros(L, dtype=np.int64)
    nas = np.zeros(L, dtype=np.int64)
    nac = np.zeros(L, dtype=np.int64)
    b = 0
    started = False
    ptr = 0
    trunc = 1.0 - math.exp(-level_decay * L)
    for i in range(n):
        t = ev_type[i]
        if t == EV_SHIFT:
            nb = ev_arg[i]
            d = nb - b
            for k in range(L):
                src = k - d  # bid level k' = old level k' - d
                if started and 0 <= src < L:
                    nbs[k] = bs[src]
                    nbc[k] = bc[src]
                else:
                    fs, fc, ptr = _fresh_level(pool, ptr, k, size_mean, growth, order_mean)
                    nbs[k] = fs
                    nbc[k] = fc
                src = k + d  # ask level k' = old level k' + d
                if started and 0 <= src < L:
                    nas[k] = as_[src]
                    nac[k] = ac[src]
                else:
                    fs, fc, ptr = _fresh_level(pool, ptr, k, size_mean, growth, order_mean)
                    nas[k] = fs
                    nac[k] = fc
            for k in range(L):
                bs[k] = nbs[k]
                bc[k] = nbc[k]
                as_[k] = nas[k]
                ac[k] = nac[k]
            b = nb
            action[i] = _ADD
            if started and d < 0:
                side[i] = _ASK
                ev_px[i] = b + 1
                ev_sz[i] = as_[0]
            else:
                side[i] = _BID
                ev_px[i] = b
                ev_sz[i] = bs[0]
            started = True
        elif t == EV_NOISE:
            u_side, u_level, u_kind, u_qty = ev_u[i, 0], ev_u[i, 1], ev_u[i, 2], ev_u[i, 3]
            k = int(-math.log(1.0 - u_level * trunc) / level_decay)
            if k >= L:
                k = L - 1
            qty = 1 + int(-math.log(1.0 - u_qty) * max(order_mean - 1.0, 0.0))
            is_bid = u_side < 0.5
            sz = bs[k] if is_bid else as_[k]
            ct = bc[k] if is_bid else ac[k]
            if u_kind < add_share or sz <= 1:
                sz += qty
                ct += 1
                action[i] = _ADD
            else:
                if qty > sz - 1:
                    qty = sz - 1
                sz -= qty
                if ct > 1:
                    ct -= 1
                action[i] = _CANCEL
            if ct > sz:
                ct = sz
            if is_bid:
                bs[k] = sz
                bc[k] = ct
                side[i] = _BID
                ev_px[i] = b - k
            else:
                as_[k] = sz
                ac[k] = ct
                side[i] = _ASK
                ev_px[i] = b + 1 + k
            ev_sz[i] = qty
        elif t == EV_TRADE:
            j = ev_arg[i]
            if trade_buy[j]:
                avail = as_[0]
                px = b + 1
                side[i] = _BID
            else:
                avail = bs[0]
                px = b
                side[i] = _ASK
            q = trade_draw[j]
            if q > avail:
                q = avail
            trade_px[j] = px
            trade_sz[j] = q
            trade_row[j] = i
            action[i] = _TRADE
            ev_px[i] = px
            ev_sz[i] = q
        else:  # EV_FILL: the filled resting quantity leaves its level, if still in the top ten
            j = ev_arg[i]
            px = trade_px[j]
            q = trade_sz[j]
            action[i] = _CANCEL
            ev_px[i] = px
            ev_sz[i] = q
            if trade_buy[j]:
                side[i] = _ASK
                k = px - (b + 1)
                if 0 <= k < L:
                    as_[k] -= q
                    if ac[k] > 1:
                        ac[k] -= 1
                    if as_[k] <= 0:
                        fs, fc, ptr = _fresh_level(pool, ptr, k, size_mean, growth, order_mean)
                        as_[k] = fs
                        ac[k] = fc
                    if ac[k] > as_[k]:
                        ac[k] = as_[k]
            else:
                side[i] = _BID
                k = b - px
                if 0 <= k < L:
                    bs[k] -= q
                    if bc[k] > 1:
                        bc[k] -= 1
                    if bs[k] <= 0:
                        fs, fc, ptr = _fresh_level(pool, ptr, k, size_mean, growth, order_mean)
                        bs[k] = fs
                        bc[k] = fc
                    if bc[k] > bs[k]:
                        bc[k] = bs[k]
        best_bid[i] = b
        for k in range(L):
            bid_sz[i, k] = bs[k]
            bid_ct[i, k] = bc[k]
            ask_sz[i, k] = as_[k]
            ask_ct[i, k] = ac[k]
    return best_bid, bid_sz, bid_ct, ask_sz, ask_ct, action, side, ev_px, ev_sz, trade_px, trade_sz, trade_row


@numba.njit(cache=True)
def asof_index(hay, needles):
    """Index of the last ``hay`` value at or before each needle (-1 if none).

    Parameters
    ----------
    hay : int64 array (n,)
        Sorted instants (ns).
    needles : int64 array (m,)
        Sorted instants (ns).

    Returns
    -------
    int64 array (m,)
        ``searchsorted(hay, needles, side="right") - 1``, found by galloping from the
        previous needle's answer: O(m log(gap)) instead of O(m log n).
    """
    n = hay.shape[0]
    m = needles.shape[0]
    out = np.empty(m, dtype=np.int64)
    pos = 0  # first index with hay[pos] > needle
    for i in range(m):
        x = needles[i]
        if pos > 0 and hay[pos - 1] > x:  # needles not sorted: restart
            pos = 0
        step = 1
        lo = pos
        hi = pos
        while hi < n and hay[hi] <= x:
            lo = hi + 1
            hi = hi + step
            step *= 2
        if hi > n:
            hi = n
        while lo < hi:
            mid = (lo + hi) // 2
            if hay[mid] <= x:
                lo = mid + 1
            else:
                hi = mid
        pos = lo
        out[i] = lo - 1
    return out


@numba.njit(cache=True)
def ssvi_vol(strike, t, spot, open_price, rate, div, vol_long, vol_short, decay, elasticity, rho, eta, gamma):
    """SSVI implied vol per element (formulas in :mod:`.chain`; Gatheral & Jacquier 2014).

    All array arguments float64 of one length n (strike, t years, spot dollars); the rest
    scalars. Returns float64 (n,) annualised vols.
    """
    n = t.shape[0]
    out = np.empty(n)
    for i in range(n):
        T = t[i]
        S = spot[i]
        k = math.log(strike[i] / (S * math.exp((rate - div) * T)))
        atm = (vol_long + (vol_short - vol_long) * math.exp(-T / decay)) * (S / open_price) ** elasticity
        theta = atm * atm * T
        phi = eta / (theta**gamma * (1.0 + theta) ** (1.0 - gamma))
        pk = phi * k
        w = 0.5 * theta * (1.0 + rho * pk + math.sqrt((pk + rho) ** 2 + 1.0 - rho * rho))
        out[i] = math.sqrt(w / T)
    return out


@numba.njit(cache=True)
def quote_grid(theo_u, extra, large, break_u, min_ticks, rel):
    """Bid and ask on the option grid around model prices (rule in :mod:`.chain`).

    Parameters
    ----------
    theo_u : float64 (n,)
        Model prices in small-tick units.
    extra : int64 (n,)
        Extra spread ticks (noise).
    large : int
        Large tick in small-tick units; ``break_u`` the price (small-tick units) from which
        it applies.
    min_ticks : int
        Narrowest spread (ticks); ``rel`` the spread as a share of the price.

    Returns
    -------
    bid_u, ask_u : int64 (n,)
        Prices in small-tick units: ``0 <= bid_u < ask_u``, both on the grid.
    """
    n = theo_u.shape[0]
    bid = np.empty(n, dtype=np.int64)
    ask = np.empty(n, dtype=np.int64)
    for i in range(n):
        p = theo_u[i]
        tick = large if p >= break_u else 1
        s = int(math.ceil(rel * p / tick - 1e-9))
        if s < min_ticks:
            s = min_ticks
        s += extra[i]
        m2 = int(math.floor(2.0 * p / tick + 0.5))  # mid in half ticks
        if (m2 - s) % 2 != 0:
            s += 1
        b = (m2 - s) // 2 * tick
        a = (m2 + s) // 2 * tick
        if b < 0:
            b = 0
        if tick == 1 and a > break_u:  # a small-tick ask above the break goes up to the large grid
            a = -(-a // large) * large
        bid[i] = b
        ask[i] = a
    return bid, ask
