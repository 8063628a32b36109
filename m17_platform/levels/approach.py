"""Approach context: how price came to the level, from bars ended by the bar start.

Over the bars in [bar start - approach_minutes, bar start) (ES prices on the SPY scale
with the touch's ratio), with ``s = +1`` for UP (moving up toward resistance) and ``-1``
for DOWN:

* approach_distance: ``s x (last close - first open)``, the net move toward the level
  (dollars; null without bars);
* approach_velocity: that distance / the minutes those bars span (dollars per minute);
* approach_bars: consecutive bars, counted back from the last, whose close moved toward
  the level from the previous close (the first bar: from its open);
* prior_touches: touches of the same kind in earlier bars of the partition whose level
  is within ``prior_touch_tolerance`` of this one;
* bars_since_open: whole bar lengths from the regular open to the bar start (negative
  before the open: the CME evening session).
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl

from m17_platform.levels.convert import convert
from m17_platform.levels.settings import LevelSettings

_EPS = 1e-9


@numba.njit(cache=True)
def _approach_kernel(lo, hi, sign, bs, be, op, cl):
    n = lo.shape[0]
    dist = np.full(n, np.nan)
    minutes = np.full(n, np.nan)
    count = np.zeros(n, dtype=np.int64)
    for i in range(n):
        a, b = lo[i], hi[i]
        if b <= a:
            continue
        dist[i] = sign[i] * (cl[b - 1] - op[a])
        minutes[i] = (be[b - 1] - bs[a]) / 60e9
        for k in range(b - 1, a - 1, -1):
            prev = cl[k - 1] if k > a else op[a]
            if sign[i] * (cl[k] - prev) > 0:
                count[i] += 1
            else:
                break
    return dist, minutes, count


@numba.njit(cache=True)
def _prior_kernel(group, bs, price, tol):
    """Rows sorted by (group, bs): earlier rows of the group within tol."""
    n = group.shape[0]
    out = np.zeros(n, dtype=np.int64)
    first = 0
    for i in range(n):
        if i > 0 and group[i] != group[i - 1]:
            first = i
        c = 0
        for j in range(first, i):
            if bs[j] < bs[i] and abs(price[j] - price[i]) <= tol + _EPS:
                c += 1
        out[i] = c
    return out


def prior_touches(touches: pl.DataFrame, settings: LevelSettings) -> np.ndarray:
    """int64 per touch (touches' order): earlier touches of its kind within tolerance."""
    if touches.height == 0:
        return np.empty(0, dtype=np.int64)
    order = touches.with_row_index("_i").sort(["level_kind", "bar_start_ns", "level_price"], maintain_order=True)
    group = order.get_column("level_kind").rle_id().to_numpy().astype(np.int64)
    counts = _prior_kernel(
        group,
        order.get_column("bar_start_ns").to_numpy(),
        order.get_column("level_price").to_numpy(),
        float(settings.prior_touch_tolerance),
    )
    out = np.empty(touches.height, dtype=np.int64)
    out[order.get_column("_i").to_numpy()] = counts
    return out


def approach_features(touches: pl.DataFrame, es: pl.DataFrame, open_ns: int, settings: LevelSettings) -> pl.DataFrame:
    """Approach columns, one row per touch in the touches' order.

    Parameters
    ----------
    touches : polars.DataFrame
        ``bar_start_ns``, ``direction``, ``level_kind``, ``level_price``, ``es_spy_ratio``.
    es : the proxy contract's 1-minute bars (:func:`.universe.es_bars`), ES points
    open_ns : the regular session open (ns UTC)
    settings : LevelSettings

    Returns
    -------
    polars.DataFrame: the ``approach_*``, ``prior_touches``, ``bars_since_open`` columns.
    """
    s = settings
    start = touches.get_column("bar_start_ns").to_numpy()
    sign = np.where(touches.get_column("direction").to_numpy() == "UP", 1.0, -1.0)
    bs = es.get_column("bar_start_ns").to_numpy()
    lookback = int(s.approach_minutes) * 60_000_000_000
    dist, minutes, count = _approach_kernel(
        np.searchsorted(bs, start - lookback),
        np.searchsorted(bs, start),
        sign,
        bs,
        es.get_column("bar_end_ns").to_numpy(),
        es.get_column("open").to_numpy(),
        es.get_column("close").to_numpy(),
    )
    dist = convert(dist, touches.get_column("es_spy_ratio").to_numpy(), to="spy")
    with np.errstate(divide="ignore", invalid="ignore"):
        velocity = np.where(minutes > 0, dist / minutes, np.nan)
    return pl.DataFrame(
        {
            "approach_velocity": pl.Series(velocity).fill_nan(None),
            "approach_bars": count,
            "approach_distance": pl.Series(dist).fill_nan(None),
            "prior_touches": prior_touches(touches, s),
            "bars_since_open": np.floor_divide(start - int(open_ns), s.bar_ns).astype(np.int64),
        }
    )
