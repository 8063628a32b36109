"""Barrier physics: the defending side of the ES book around a level, and the book's
quality in the window.

The defending side is the ask for an UP touch (sellers defending resistance) and the
bid for a DOWN touch. Over the window [bar start, decision):

* depth at the start / end: contracts on the defending side within +/-
  ``barrier_zone_ticks`` ES ticks of the level (converted to ES with the touch's ratio),
  in the last valid book row strictly before the instant (crossed or locked rows are
  skipped, and counted);
* added, canceled, filled: contracts entering / leaving the zone on that side in the
  window, from :mod:`.events` (``barrier_source`` says: ``mbo`` or ``mbp10_inferred``);
* replenishment ratio = added / (canceled + filled), null when nothing left;
* wall ratio = end depth / baseline, the baseline being the mean defending depth within
  ``barrier_zone_ticks`` of the best price, sampled (last valid row strictly before) at
  every minute boundary in [bar start - baseline_minutes, bar start): earlier data only;
  null with fewer than ``baseline_min_samples`` samples or a zero baseline.

State, first match wins (every threshold a :class:`.settings.LevelSettings` field):

=============  ======================================================================
VACUUM         canceled >= min_contracts and >= vacuum_min_canceled_share x start depth,
               filled / (canceled + filled) <= vacuum_max_fill_share, depth fell by >=
               vacuum_min_drop: pulled, not hit
CONSUMED       filled >= min_contracts and >= consumed_min_filled_share x start depth,
               fill share >= consumed_min_fill_share, depth fell by >= consumed_min_drop:
               eaten by the aggressors
ABSORPTION     filled >= min_contracts and >= absorption_min_filled_share x start depth
               while the depth fell by <= absorption_max_drop: hit and refilled
WALL           wall ratio >= wall_min_ratio and replenishment >= wall_min_replenishment
               (or nothing left the zone): thick and holding
WEAK           wall ratio <= weak_max_ratio, or without a baseline end depth <= weak_max_depth
NEUTRAL        none of the above
null           no valid book row at the start or the end
=============  ======================================================================

Book quality per window (never silently used): crossed / locked rows (skipped),
the longest time without a book row (from the last row before the window to the
decision; ``stale`` beyond ``book_stale_seconds``), sequence steps larger than
``sequence_gap_min`` and book rows or prints whose sequence goes backwards.
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl

from m17_platform.levels.events import BID, Book
from m17_platform.levels.partition import Trades
from m17_platform.levels.settings import LevelSettings

_EPS = 1e-9


@numba.njit(cache=True)
def _zone_depth(tk, sz, level_f, zone):
    total = 0
    for k in range(tk.shape[0]):
        if tk[k] >= 0 and abs(tk[k] - level_f) <= zone + _EPS:
            total += sz[k]
    return total


@numba.njit(cache=True)
def _touch_kernel(side, level_f, zone, ev, lo, hi, bid_tk, bid_sz, ask_tk, ask_sz, row_start, row_end):
    n = side.shape[0]
    out = np.full((n, 5), -1, dtype=np.int64)
    for i in range(n):
        tks, szs = (bid_tk, bid_sz) if side[i] == BID else (ask_tk, ask_sz)
        if row_start[i] >= 0:
            out[i, 0] = _zone_depth(tks[row_start[i]], szs[row_start[i]], level_f[i], zone)
        if row_end[i] >= 0:
            out[i, 1] = _zone_depth(tks[row_end[i]], szs[row_end[i]], level_f[i], zone)
        a = c = f = 0
        for e in range(lo[i], hi[i]):
            if ev[e, 1] == side[i] and abs(ev[e, 2] - level_f[i]) <= zone + _EPS:
                a += ev[e, 3]
                c += ev[e, 4]
                f += ev[e, 5]
        out[i, 2], out[i, 3], out[i, 4] = a, c, f
    return out


@numba.njit(cache=True)
def _best_depth(rows, tk, sz, zone, is_bid):
    out = np.full(rows.shape[0], np.nan)
    for g in range(rows.shape[0]):
        r = rows[g]
        if r < 0 or tk[r, 0] < 0:
            continue
        total = 0
        for k in range(tk.shape[1]):
            if tk[r, k] >= 0 and (tk[r, 0] - tk[r, k] if is_bid else tk[r, k] - tk[r, 0]) <= zone:
                total += sz[r, k]
        out[g] = total
    return out


@numba.njit(cache=True)
def _baseline(samples, lo, hi, side, min_samples):
    out = np.full(side.shape[0], np.nan)
    for i in range(side.shape[0]):
        s = 0.0
        m = 0
        for g in range(lo[i], hi[i]):
            v = samples[side[i], g]
            if not np.isnan(v):
                s += v
                m += 1
        if m >= min_samples and m > 0:
            out[i] = s / m
    return out


@numba.njit(cache=True)
def _quality_kernel(start, end, ts, seq, bad, tr_ts, tr_seq, gap_min):
    n = start.shape[0]
    out = np.zeros((n, 5), dtype=np.int64)  # rows, crossed, max gap (-1 none), sequence gaps, out of order
    for i in range(n):
        r0 = np.searchsorted(ts, start[i])
        r1 = np.searchsorted(ts, end[i])
        prev = ts[r0 - 1] if r0 > 0 else start[i]
        gap = 0
        for r in range(r0, r1):
            gap = max(gap, ts[r] - prev)
            prev = ts[r]
            out[i, 1] += bad[r]
            if r > 0:
                step = seq[r] - seq[r - 1]
                out[i, 3] += step > gap_min
                out[i, 4] += step < 0
        out[i, 0] = r1 - r0
        out[i, 2] = max(gap, end[i] - prev) if ts.shape[0] else -1
        t0 = np.searchsorted(tr_ts, start[i])
        t1 = np.searchsorted(tr_ts, end[i])
        for t in range(max(t0, 1), t1):
            out[i, 4] += tr_seq[t] < tr_seq[t - 1]
    return out


def asof_rows(book: Book, instants: np.ndarray) -> np.ndarray:
    """int64: the last valid (not crossed / locked) book row strictly before each instant, -1 if none."""
    good = book.good_rows
    if good.size == 0:
        return np.full(np.shape(instants), -1, dtype=np.int64)
    k = np.searchsorted(book.ts[good], instants, side="left") - 1
    return np.where(k >= 0, good[np.maximum(k, 0)], -1).astype(np.int64)


def baseline_samples(book: Book, grid: np.ndarray, settings: LevelSettings) -> np.ndarray:
    """float64 (2, len(grid)): bid (row 0) and ask (row 1) depth within ``barrier_zone_ticks``
    of the best price in the last valid row strictly before each grid instant (NaN: none)."""
    rows = asof_rows(book, grid)
    zone = int(settings.barrier_zone_ticks)
    return np.vstack(
        [
            _best_depth(rows, book.bid_tk, book.bid_sz, zone, True),
            _best_depth(rows, book.ask_tk, book.ask_sz, zone, False),
        ]
    )


def classify(d0, d1, added, canceled, filled, wall_ratio, settings: LevelSettings) -> np.ndarray:
    """Barrier state per touch (object array of str / None); inputs as in the module
    docstring (depths -1 where there is no book)."""
    s = settings
    d0f, d1f = d0.astype(float), d1.astype(float)
    gone = (canceled + filled).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        drop = np.where(d0f > 0, (d0f - d1f) / d0f, 0.0)
        share = np.where(gone > 0, filled / gone, 0.0)
        repl = np.where(gone > 0, added / gone, np.inf)
    w = np.nan_to_num(wall_ratio, nan=-1.0)
    big_c = (canceled >= s.min_contracts) & (canceled >= s.vacuum_min_canceled_share * d0f)
    big_f = filled >= s.min_contracts
    rules = [
        ("VACUUM", big_c & (share <= s.vacuum_max_fill_share) & (drop >= s.vacuum_min_drop)),
        (
            "CONSUMED",
            big_f
            & (filled >= s.consumed_min_filled_share * d0f)
            & (share >= s.consumed_min_fill_share)
            & (drop >= s.consumed_min_drop),
        ),
        ("ABSORPTION", big_f & (filled >= s.absorption_min_filled_share * d0f) & (drop <= s.absorption_max_drop)),
        ("WALL", (w >= s.wall_min_ratio) & (repl >= s.wall_min_replenishment)),
        ("WEAK", ((w >= 0) & (w <= s.weak_max_ratio)) | (np.isnan(wall_ratio) & (d1 <= s.weak_max_depth))),
    ]
    state = np.full(d0.shape[0], "NEUTRAL", dtype=object)
    decided = np.zeros(d0.shape[0], dtype=bool)
    for name, mask in rules:
        state[mask & ~decided] = name
        decided |= mask
    state[(d0 < 0) | (d1 < 0)] = None
    return state


def barrier_features(
    touches: pl.DataFrame,
    book: Book,
    events: np.ndarray,
    source: str,
    trades: Trades,
    grid: np.ndarray,
    settings: LevelSettings,
) -> pl.DataFrame:
    """Barrier and book-quality columns, one row per touch, in the touches' order.

    Parameters
    ----------
    touches : polars.DataFrame
        ``bar_start_ns``, ``decision_ts_ns``, ``direction``, ``level_price_es``.
    book : :class:`.events.Book`
    events : int64 (m, 6) from :mod:`.events`, any order
    source : ``mbo`` or ``mbp10_inferred``
    trades : :class:`.partition.Trades` (out-of-order prints)
    grid : int64 minute boundaries covering the bars (baseline samples)
    settings : LevelSettings

    Returns
    -------
    polars.DataFrame: the ``barrier_*``, ``wall_ratio`` and book-quality columns of
    :data:`.schemas.LEVEL_PHYSICS`.
    """
    s = settings
    start = touches.get_column("bar_start_ns").to_numpy().astype(np.int64)
    end = touches.get_column("decision_ts_ns").to_numpy().astype(np.int64)
    side = np.where(touches.get_column("direction").to_numpy() == "UP", 1, 0).astype(np.int64)
    level_f = touches.get_column("level_price_es").to_numpy() / s.es_tick
    ev = events[np.argsort(events[:, 0], kind="stable")] if events.shape[0] else events.reshape(0, 6)
    zone = int(s.barrier_zone_ticks)
    out = _touch_kernel(
        side,
        level_f,
        zone,
        ev,
        np.searchsorted(ev[:, 0], start),
        np.searchsorted(ev[:, 0], end),
        book.bid_tk,
        book.bid_sz,
        book.ask_tk,
        book.ask_sz,
        asof_rows(book, start),
        asof_rows(book, end),
    )
    samples = baseline_samples(book, grid, s)
    base_ns = int(s.baseline_minutes) * 60_000_000_000
    baseline = _baseline(
        samples, np.searchsorted(grid, start - base_ns), np.searchsorted(grid, start), side, int(s.baseline_min_samples)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        wall = np.where((baseline > 0) & (out[:, 1] >= 0), out[:, 1] / baseline, np.nan)
        gone = out[:, 3] + out[:, 4]
        repl = np.where(gone > 0, out[:, 2] / gone, np.nan)
    state = classify(out[:, 0], out[:, 1], out[:, 2], out[:, 3], out[:, 4], wall, s)
    nobook = (out[:, 0] < 0) | (out[:, 1] < 0)
    frame = pl.DataFrame(
        {
            "barrier_source": np.full(start.size, source, dtype=object).astype(str),
            "barrier_side": np.where(side == 1, "ask", "bid"),
            "barrier_depth_start": _nullable(out[:, 0], out[:, 0] < 0),
            "barrier_depth_end": _nullable(out[:, 1], out[:, 1] < 0),
            "barrier_delta_liq": _nullable(out[:, 1] - out[:, 0], nobook),
            "barrier_added": _nullable(out[:, 2], nobook),
            "barrier_canceled": _nullable(out[:, 3], nobook),
            "barrier_filled": _nullable(out[:, 4], nobook),
            "barrier_replenishment_ratio": pl.Series(repl).fill_nan(None),
            "barrier_baseline_depth": pl.Series(baseline).fill_nan(None),
            "wall_ratio": pl.Series(wall).fill_nan(None),
            "barrier_state": pl.Series(state.tolist(), dtype=pl.String),
        }
    )
    return pl.concat([frame, book_quality(start, end, book, trades, nobook, s)], how="horizontal")


def _nullable(values: np.ndarray, mask: np.ndarray) -> pl.Series:
    return pl.Series(values).scatter(np.flatnonzero(mask), None) if mask.any() else pl.Series(values)


def book_quality(
    start: np.ndarray, end: np.ndarray, book: Book, trades: Trades, nobook: np.ndarray, settings: LevelSettings
) -> pl.DataFrame:
    """The book-quality columns of :data:`.schemas.LEVEL_PHYSICS` for windows [start, end)
    (int64 ns arrays); ``nobook`` marks windows without a valid book row at either end."""
    q = _quality_kernel(start, end, book.ts, book.seq, book.bad, trades.ts, trades.seq, int(settings.sequence_gap_min))
    flags = [
        ("no_book", nobook),
        ("crossed", q[:, 1] > 0),
        ("stale", q[:, 2] > int(settings.book_stale_seconds * 1e9)),
        ("sequence_gap", q[:, 3] > 0),
        ("out_of_order", q[:, 4] > 0),
    ]
    words = np.full(start.size, "", dtype=object)
    for name, mask in flags:
        words[mask] = np.where(words[mask] == "", name, words[mask] + "+" + name)
    words[words == ""] = "ok"
    return pl.DataFrame(
        {
            "book_rows": q[:, 0],
            "book_crossed_rows": q[:, 1],
            "book_max_gap_ns": _nullable(q[:, 2], q[:, 2] < 0),
            "sequence_gaps": q[:, 3],
            "out_of_order_events": q[:, 4],
            "book_quality": pl.Series(words.tolist(), dtype=pl.String),
        }
    )
