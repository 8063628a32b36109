"""Tape physics: ES prints near the level over [bar start, decision).

Prints of the proxy contract within ``+/- tape_band`` of the level (the band converted
to ES with the touch's ratio): buy and sell volume by CME's aggressor side (the
platform's rule where the exchange gives none), imbalance ``(buy - sell) / (buy + sell)``
in [-1, 1] (null without volume), prints per second of the window, and sweeps.

A sweep is one aggressor walking the book: consecutive band prints of one side, each
within ``sweep_window_ms`` of the run's first, prices never going back (a buy run rises,
a sell run falls), touching at least ``sweep_min_levels`` distinct prices. A print of the
other side, of unknown side, too late, or going back ends the run.
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl

from m17_platform.levels.convert import convert
from m17_platform.levels.partition import Trades
from m17_platform.levels.settings import LevelSettings

_EPS = 1e-9


@numba.njit(cache=True)
def _tape_kernel(lo, hi, level, band, ts, px, sz, side, sweep_ns, min_levels):
    n = lo.shape[0]
    out = np.zeros((n, 4), dtype=np.int64)  # buy, sell, prints, sweeps
    for i in range(n):
        run_side = 0
        run_start = 0
        run_levels = 0
        last_px = 0.0
        sweeps = 0
        for t in range(lo[i], hi[i]):
            if abs(px[t] - level[i]) > band[i] + _EPS:
                continue
            out[i, 2] += 1
            if side[t] > 0:
                out[i, 0] += sz[t]
            elif side[t] < 0:
                out[i, 1] += sz[t]
            cont = (
                side[t] != 0
                and side[t] == run_side
                and ts[t] - run_start <= sweep_ns
                and (px[t] - last_px) * side[t] >= 0
            )
            if cont:
                if px[t] != last_px:
                    run_levels += 1
                last_px = px[t]
                continue
            if run_levels >= min_levels:
                sweeps += 1
            run_side, run_start, run_levels, last_px = side[t], ts[t], 1, px[t]
        if run_levels >= min_levels and run_side != 0:
            sweeps += 1
        out[i, 3] = sweeps
    return out


def tape_features(touches: pl.DataFrame, trades: Trades, settings: LevelSettings) -> pl.DataFrame:
    """Tape columns, one row per touch in the touches' order.

    Parameters
    ----------
    touches : polars.DataFrame
        ``bar_start_ns``, ``decision_ts_ns``, ``level_price_es``, ``es_spy_ratio``.
    trades : :class:`.partition.Trades` of the proxy contract
    settings : LevelSettings

    Returns
    -------
    polars.DataFrame: the ``tape_*`` and ``sweep_*`` columns of :data:`.schemas.LEVEL_PHYSICS`.
    """
    s = settings
    start = touches.get_column("bar_start_ns").to_numpy()
    end = touches.get_column("decision_ts_ns").to_numpy()
    band = convert(s.tape_band, touches.get_column("es_spy_ratio").to_numpy(), to="es")
    out = _tape_kernel(
        np.searchsorted(trades.ts, start),
        np.searchsorted(trades.ts, end),
        touches.get_column("level_price_es").to_numpy(),
        band,
        trades.ts,
        trades.price,
        trades.size,
        trades.side.astype(np.int64),
        int(s.sweep_window_ms * 1_000_000),
        int(s.sweep_min_levels),
    )
    vol = out[:, 0] + out[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        imbalance = np.where(vol > 0, (out[:, 0] - out[:, 1]) / vol, np.nan)
    seconds = (end - start) / 1e9
    return pl.DataFrame(
        {
            "tape_buy_vol": out[:, 0],
            "tape_sell_vol": out[:, 1],
            "tape_trades": out[:, 2],
            "tape_imbalance": pl.Series(imbalance).fill_nan(None),
            "tape_velocity": out[:, 2] / seconds,
            "sweep_detected": out[:, 3] > 0,
            "sweep_count": out[:, 3],
        }
    )
