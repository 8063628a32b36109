"""Fuel physics: how dealer hedging near the level will act on a move.

From ``gold.gamma_exposure`` (strike grain) of the first source in
``LevelSettings.gamma_sources`` with an instant strictly before the decision: the sum of
``net_gex`` (dealer gamma exposure, dollars per 1% move) of the strikes within
``+/- fuel_strike_range`` of the level at the latest such instant. Dealers short gamma
(negative GEX) hedge with the move: AMPLIFY; long gamma (positive) hedge against it:
DAMPEN; NEUTRAL when |GEX near the level| is below ``fuel_neutral_share`` of the chain's
gross |GEX| at that instant (or the chain has none). All null when the partition has no
gamma rows before the decision (no options).

``gamma_exposure`` rows at instant ``t`` use prints strictly before ``t``; taking rows
strictly before the decision keeps the truncation rule of :mod:`.asof` (rows strictly
before the as-of instant) exact.
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl

from m17_platform.levels.settings import LevelSettings

_EPS = 1e-9


@numba.njit(cache=True)
def _fuel_kernel(inst_idx, offsets, strike, gex, level, rng):
    n = inst_idx.shape[0]
    near = np.full(n, np.nan)
    gross = np.full(n, np.nan)
    for i in range(n):
        k = inst_idx[i]
        if k < 0:
            continue
        s_near = 0.0
        s_gross = 0.0
        for r in range(offsets[k], offsets[k + 1]):
            s_gross += abs(gex[r])
            if abs(strike[r] - level[i]) <= rng + _EPS:
                s_near += gex[r]
        near[i] = s_near
        gross[i] = s_gross
    return near, gross


def fuel_features(touches: pl.DataFrame, gamma: pl.DataFrame | None, settings: LevelSettings) -> pl.DataFrame:
    """Fuel columns, one row per touch in the touches' order.

    Parameters
    ----------
    touches : polars.DataFrame
        ``decision_ts_ns``, ``level_price`` (SPY dollars).
    gamma : ``gold.gamma_exposure`` rows, or None
    settings : LevelSettings

    Returns
    -------
    polars.DataFrame: ``gamma_exposure``, ``fuel_effect``, ``fuel_source``, ``gamma_ts_ns``.
    """
    s = settings
    n = touches.height
    decision = touches.get_column("decision_ts_ns").to_numpy()
    level = touches.get_column("level_price").to_numpy()
    near = np.full(n, np.nan)
    gross = np.full(n, np.nan)
    used_ts = np.full(n, -1, dtype=np.int64)
    source = np.full(n, None, dtype=object)
    for name in s.gamma_sources if gamma is not None and gamma.height else ():
        rows = gamma.filter((pl.col("source") == name) & (pl.col("grain") == "strike")).sort(
            ["ts_ns", "strike"], maintain_order=True
        )
        if rows.height == 0:
            continue
        ts = rows.get_column("ts_ns").to_numpy()
        starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
        instants = ts[starts]
        k = np.searchsorted(instants, decision, side="left") - 1
        k = np.where(used_ts < 0, k, -1)
        a, b = _fuel_kernel(
            k.astype(np.int64),
            np.r_[starts, ts.size].astype(np.int64),
            rows.get_column("strike").to_numpy(),
            rows.get_column("net_gex").to_numpy(),
            level,
            float(s.fuel_strike_range),
        )
        take = k >= 0
        near[take], gross[take], used_ts[take] = a[take], b[take], instants[k[take]]
        source[take] = name
    effect = np.full(n, None, dtype=object)
    have = used_ts >= 0
    neutral = have & ((gross <= 0) | (np.abs(near) < s.fuel_neutral_share * gross))
    effect[have] = np.where(near[have] < 0, "AMPLIFY", "DAMPEN")
    effect[neutral] = "NEUTRAL"
    return pl.DataFrame(
        {
            "gamma_exposure": pl.Series(near).fill_nan(None),
            "fuel_effect": pl.Series(effect.tolist(), dtype=pl.String),
            "fuel_source": pl.Series(source.tolist(), dtype=pl.String),
            "gamma_ts_ns": pl.Series(np.where(have, used_ts, 0)).scatter(np.flatnonzero(~have), None),
        }
    )
