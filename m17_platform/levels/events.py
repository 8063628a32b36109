"""Book changes per ES price level (added, canceled, filled contracts), from MBO records
or inferred from MBP-10 rows: the ``barrier_source`` of :mod:`.barrier`.

* ``mbo`` (:func:`mbo_level_events`): Databento MBO records tracked per order: an add is
  an add; a cancel or a size-down removes size, which is a fill up to the quantity a
  preceding ``F`` record reported filled for that order and a cancel for the rest (in
  GLBX.MDP3 every fill is followed by the cancel / modify that takes it off the book, see
  :mod:`m17_platform.book`); a modify that moves an order is its removal plus an add.
  Snapshot records set the book and count as nothing. The lake keeps no MBO table
  (``raw.futures_mbp10`` holds, per book change, the top 10 levels and only the LAST
  record of the exchange event), so this needs the optional ``futures_mbo`` input.
* ``mbp10_inferred`` (:func:`infer_level_events`): consecutive valid MBP-10 rows compared
  level by level: a size increase is an add; a decrease is a fill up to the volume printed
  at that price against that side (a buy hits the ask) within ``fill_match_ms`` before
  the row, not yet matched to an earlier decrease, and a cancel for the rest. A level
  that enters or leaves the visible 10 only because the book moved counts as nothing: a
  change is inferred only where both rows show the price. Crossed or locked rows are
  skipped (the next row is compared with the last valid one).

Prices are integer ES ticks (``LevelSettings.es_tick``) so levels compare exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import polars as pl
from numba import types
from numba.typed import Dict

from m17_platform.errors import SchemaError
from m17_platform.levels.settings import LevelSettings
from m17_platform.schemas import BOOK_DEPTH

MBO = "mbo"
MBP10_INFERRED = "mbp10_inferred"
BID, ASK = 0, 1
EV_TS, EV_SIDE, EV_TICK, EV_ADD, EV_CANCEL, EV_FILL = range(6)
_F_SNAPSHOT, _F_TOB = 32, 64
_ACTIONS = "ACMRTFN"


@dataclass(frozen=True)
class Book:
    """The proxy contract's MBP-10 rows in (ts_ns, sequence) order as arrays: ts, seq
    (int64, n), bid_tk / ask_tk (int64 (n, 10): price in ES ticks, -1 where empty),
    bid_sz / ask_sz (int64 (n, 10) contracts, 0 where empty), bad (bool (n,): crossed or
    locked, never used)."""

    ts: np.ndarray
    seq: np.ndarray
    bid_tk: np.ndarray
    bid_sz: np.ndarray
    ask_tk: np.ndarray
    ask_sz: np.ndarray
    bad: np.ndarray

    @property
    def good_rows(self) -> np.ndarray:
        return np.flatnonzero(~self.bad)


def book_arrays(book: pl.DataFrame | None, symbol: str | None, tick: float) -> Book:
    """:class:`Book` of ``raw.futures_mbp10`` rows of ``symbol`` (prices to ES ticks of ``tick``)."""
    if book is None or symbol is None or book.height == 0:
        z = np.empty((0, BOOK_DEPTH), dtype=np.int64)
        e = np.empty(0, dtype=np.int64)
        return Book(e, e.copy(), z, z.copy(), z.copy(), z.copy(), np.empty(0, dtype=bool))

    def cols(side: str, what: str) -> list[str]:
        return [f"{side}_{what}_{i:02d}" for i in range(BOOK_DEPTH)]

    book_cols = [c for side in ("bid", "ask") for what in ("px", "sz") for c in cols(side, what)]
    b = (
        book.lazy()
        .filter(pl.col("symbol") == symbol)
        .select("ts_ns", "sequence", *book_cols)
        .sort(["ts_ns", "sequence"], maintain_order=True)
        .collect()
    )

    def grid(side: str, what: str) -> np.ndarray:
        if what == "px":
            exprs = [(pl.col(c) / tick).round(0).cast(pl.Int64).fill_null(-1) for c in cols(side, what)]
        else:
            exprs = [pl.col(c).cast(pl.Int64).fill_null(0) for c in cols(side, what)]
        return np.ascontiguousarray(b.select(exprs).to_numpy(order="c"), dtype=np.int64)

    bid_tk, ask_tk = grid("bid", "px"), grid("ask", "px")
    bad = (bid_tk[:, 0] >= 0) & (ask_tk[:, 0] >= 0) & (bid_tk[:, 0] >= ask_tk[:, 0])
    return Book(
        b.get_column("ts_ns").to_numpy(),
        b.get_column("sequence").to_numpy(),
        bid_tk,
        grid("bid", "sz"),
        ask_tk,
        grid("ask", "sz"),
        bad,
    )


@numba.njit(cache=True)
def _grow(buf, count, need):
    if count + need <= buf.shape[0]:
        return buf
    new = np.empty((max(buf.shape[0] * 2, count + need), 6), dtype=np.int64)
    new[:count] = buf[:count]
    return new


@numba.njit(cache=True)
def _take_fill(pend, npend, side, tk, qty, now):
    """Consume up to ``qty`` of matching printed volume (FIFO); return the filled part."""
    filled = 0
    for k in range(npend):
        if qty == 0:
            break
        if pend[k, 0] == side and pend[k, 1] == tk and pend[k, 3] >= now and pend[k, 2] > 0:
            take = min(qty, pend[k, 2])
            pend[k, 2] -= take
            qty -= take
            filled += take
    return filled


@numba.njit(cache=True)
def _emit(ev, count, ts, side, tk, add, cancel, fill):
    ev[count, 0], ev[count, 1], ev[count, 2] = ts, side, tk
    ev[count, 3], ev[count, 4], ev[count, 5] = add, cancel, fill
    return count + 1


@numba.njit(cache=True)
def _diff_side(ev, count, ts, side, p_tk, p_sz, c_tk, c_sz, pend, npend):
    depth = p_tk.shape[0]
    n_p = 0
    while n_p < depth and p_tk[n_p] >= 0:
        n_p += 1
    n_c = 0
    while n_c < depth and c_tk[n_c] >= 0:
        n_c += 1
    sgn = -1 if side == BID else 1  # key ascending = better first
    i = j = 0
    while i < n_p or j < n_c:
        kp = sgn * p_tk[i] if i < n_p else 0
        kc = sgn * c_tk[j] if j < n_c else 0
        if j >= n_c or (i < n_p and kp < kc):
            if n_c < depth or kp < sgn * c_tk[n_c - 1]:  # still in view: it left the book
                f = _take_fill(pend, npend, side, p_tk[i], p_sz[i], ts)
                count = _emit(ev, count, ts, side, p_tk[i], 0, p_sz[i] - f, f)
            i += 1
        elif i >= n_p or kc < kp:
            if n_p < depth or kc < sgn * p_tk[n_p - 1]:  # was in view: it is new
                count = _emit(ev, count, ts, side, c_tk[j], c_sz[j], 0, 0)
            j += 1
        else:
            d = c_sz[j] - p_sz[i]
            if d > 0:
                count = _emit(ev, count, ts, side, c_tk[j], d, 0, 0)
            elif d < 0:
                f = _take_fill(pend, npend, side, c_tk[j], -d, ts)
                count = _emit(ev, count, ts, side, c_tk[j], 0, -d - f, f)
            i += 1
            j += 1
    return count


@numba.njit(cache=True)
def _infer_kernel(ts, bid_tk, bid_sz, ask_tk, ask_sz, bad, tr_ts, tr_tk, tr_sz, tr_side, match_ns):
    ev = np.empty((1024, 6), dtype=np.int64)
    count = 0
    pend = np.zeros((256, 4), dtype=np.int64)  # side, tick, qty, expiry
    npend = 0
    t = 0
    prev = -1
    for r in range(ts.shape[0]):
        now = ts[r]
        while t < tr_ts.shape[0] and tr_ts[t] <= now:
            if tr_side[t] != 0:
                # compact: drop used-up and expired volume
                k2 = 0
                for k in range(npend):
                    if pend[k, 2] > 0 and pend[k, 3] >= tr_ts[t]:
                        pend[k2] = pend[k]
                        k2 += 1
                npend = k2
                if npend == pend.shape[0]:
                    bigger = np.zeros((pend.shape[0] * 2, 4), dtype=np.int64)
                    bigger[:npend] = pend[:npend]
                    pend = bigger
                pend[npend, 0] = ASK if tr_side[t] > 0 else BID
                pend[npend, 1], pend[npend, 2], pend[npend, 3] = tr_tk[t], tr_sz[t], tr_ts[t] + match_ns
                npend += 1
            t += 1
        if bad[r]:
            continue
        if prev >= 0:
            ev = _grow(ev, count, 4 * bid_tk.shape[1])
            count = _diff_side(ev, count, now, BID, bid_tk[prev], bid_sz[prev], bid_tk[r], bid_sz[r], pend, npend)
            count = _diff_side(ev, count, now, ASK, ask_tk[prev], ask_sz[prev], ask_tk[r], ask_sz[r], pend, npend)
        prev = r
    return ev[:count].copy()


def infer_level_events(book: Book, trades, settings: LevelSettings) -> np.ndarray:
    """Per-level adds, cancels and fills inferred from consecutive MBP-10 rows.

    Parameters
    ----------
    book : :class:`Book`
    trades : :class:`.partition.Trades` of the same contract (prices in ES points)
    settings : LevelSettings (``es_tick``, ``fill_match_ms``)

    Returns
    -------
    numpy.ndarray int64, shape (m, 6)
        Columns ts (ns, the row that showed the change), side (0 bid, 1 ask), tick,
        added, canceled, filled (contracts), in time order.
    """
    tr_tk = np.round(trades.price / settings.es_tick).astype(np.int64)
    return _infer_kernel(
        book.ts,
        book.bid_tk,
        book.bid_sz,
        book.ask_tk,
        book.ask_sz,
        book.bad,
        trades.ts,
        tr_tk,
        trades.size,
        trades.side.astype(np.int64),
        int(settings.fill_match_ms * 1_000_000),
    )


@numba.njit(cache=True)
def _remove(ev, count, now, side, tk, qty, pend_qty, live):
    f = min(qty, pend_qty)
    if live:
        count = _emit(ev, count, now, side, tk, 0, qty - f, f)
    return count, pend_qty - f


@numba.njit(cache=True)
def _forget(o, o_side, o_tk, o_sz, o_pend):
    o_side.pop(o)
    o_tk.pop(o)
    o_sz.pop(o)
    o_pend.pop(o)


@numba.njit(cache=True)
def _mbo_kernel(ts, oid, action, side, tk, size, flags):
    o_side = Dict.empty(key_type=types.int64, value_type=types.int64)
    o_tk = Dict.empty(key_type=types.int64, value_type=types.int64)
    o_sz = Dict.empty(key_type=types.int64, value_type=types.int64)
    o_pend = Dict.empty(key_type=types.int64, value_type=types.int64)
    ev = np.empty((1024, 6), dtype=np.int64)
    count = 0
    for r in range(ts.shape[0]):
        a, o, now = action[r], oid[r], ts[r]
        live = (flags[r] & _F_SNAPSHOT) == 0
        if flags[r] & _F_TOB:
            continue
        ev = _grow(ev, count, 2)
        if a == 3:  # R: clear
            o_side.clear()
            o_tk.clear()
            o_sz.clear()
            o_pend.clear()
        elif a == 5:  # F: fill reported, the size leaves with the cancel / modify that follows
            if o in o_sz:
                o_pend[o] = o_pend[o] + size[r]
        elif a == 0 or (a == 2 and o not in o_sz):  # A, or M of an unknown order (full state)
            if side[r] < 0 or tk[r] < 0 or size[r] <= 0:
                continue
            if o in o_sz:
                count, _ = _remove(ev, count, now, o_side[o], o_tk[o], o_sz[o], 0, live)
            o_side[o], o_tk[o], o_sz[o], o_pend[o] = side[r], tk[r], size[r], 0
            if live:
                count = _emit(ev, count, now, side[r], tk[r], size[r], 0, 0)
        elif a == 1 and o in o_sz:  # C: fully or partly
            q = min(size[r], o_sz[o])
            count, o_pend[o] = _remove(ev, count, now, o_side[o], o_tk[o], q, o_pend[o], live)
            o_sz[o] -= q
            if o_sz[o] <= 0:
                _forget(o, o_side, o_tk, o_sz, o_pend)
        elif a == 2:  # M of a resting order
            if tk[r] < 0:
                continue
            if tk[r] == o_tk[o] and side[r] == o_side[o]:
                d = size[r] - o_sz[o]
                if d > 0 and live:
                    count = _emit(ev, count, now, side[r], tk[r], d, 0, 0)
                elif d < 0:
                    count, o_pend[o] = _remove(ev, count, now, o_side[o], o_tk[o], -d, o_pend[o], live)
            else:
                count, _ = _remove(ev, count, now, o_side[o], o_tk[o], o_sz[o], o_pend[o], live)
                o_pend[o] = 0
                if size[r] > 0 and live and side[r] >= 0:
                    count = _emit(ev, count, now, side[r], tk[r], size[r], 0, 0)
            o_side[o], o_tk[o], o_sz[o] = side[r], tk[r], size[r]
            if size[r] <= 0 or side[r] < 0:
                _forget(o, o_side, o_tk, o_sz, o_pend)
    return ev[:count].copy()


def mbo_level_events(mbo: pl.DataFrame, symbol: str | None, settings: LevelSettings) -> np.ndarray:
    """Per-level adds, cancels and fills from MBO records, tracked per order.

    Parameters
    ----------
    mbo : polars.DataFrame
        One row per MBO record in file order: ``ts_ns`` (int64), ``order_id`` (int64 or
        uint64), ``action`` (A/C/M/R/T/F/N), ``side`` (B/A/N), ``price`` (float64 ES
        points, null when undefined), ``size`` (int64), ``flags`` (int64: F_SNAPSHOT
        records set the book but count as nothing; F_TOB records are skipped); optional
        ``symbol`` (rows of other contracts are dropped).
    symbol : the proxy contract
    settings : LevelSettings (``es_tick``)

    Returns
    -------
    numpy.ndarray int64 (m, 6): as :func:`infer_level_events`.

    Raises
    ------
    SchemaError
        Naming the column: a required one is missing, or an action code is unknown.
    """
    need = ["ts_ns", "order_id", "action", "side", "price", "size", "flags"]
    missing = [c for c in need if c not in mbo.columns]
    if missing:
        raise SchemaError("futures_mbo", "levels input", f"missing columns {missing} (expected {need})")
    m = mbo.filter(pl.col("symbol") == symbol) if "symbol" in mbo.columns and symbol else mbo
    bad_action = m.filter(~pl.col("action").is_in(list(_ACTIONS)))
    if bad_action.height:
        raise SchemaError(
            "futures_mbo",
            "levels input",
            f"column 'action': unknown code {bad_action.item(0, 'action')!r} (expected one of {_ACTIONS})",
        )
    action = m.select(pl.col("action").replace_strict({c: i for i, c in enumerate(_ACTIONS)}, return_dtype=pl.Int64))
    side = m.select(pl.col("side").replace_strict({"B": BID, "A": ASK, "N": -1}, default=-1, return_dtype=pl.Int64))
    tk = m.select((pl.col("price") / settings.es_tick).round(0).cast(pl.Int64).fill_null(-1))
    oid = m.get_column("order_id").cast(pl.UInt64).to_numpy().view(np.int64)
    return _mbo_kernel(
        m.get_column("ts_ns").to_numpy().astype(np.int64),
        oid,
        action.to_series().to_numpy(),
        side.to_series().to_numpy(),
        tk.to_series().to_numpy(),
        m.get_column("size").cast(pl.Int64).to_numpy(),
        m.get_column("flags").cast(pl.Int64).to_numpy(),
    )
