"""``outcome_labels``: what price did after the decision.

The label window is (decision, decision + label_minutes]: it starts where the features
end. The path is the proxy contract's prints in the window on the SPY scale (the
touch's ratio). With ``s = +1`` for UP and ``-1`` for DOWN and the level ``L``:

* excursion_through = max ``s x (p - L)`` (how far beyond the level, in the direction);
* excursion_away = max ``-s x (p - L)`` (how far back from it);
* BREAK when excursion_through >= outcome_threshold and > excursion_away; else BOUNCE when
  excursion_away >= outcome_threshold; else CHOP;
* future_price_5min: the last print at or before the window end;
* time_to_through_1/2_ns, time_to_away_1/2_ns: from the decision to the first print
  ``time_thresholds[0]`` / ``[1]`` (dollars) through / away from the level, null if never.

A window without prints is judged on the last print before it (a flat path). A window
that extends past the data (its end not strictly before ``data_end_ns``: the as-of
instant, or the last book / print + 1 ns) gets ``label_status = incomplete`` and null
labels, never CHOP.
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl

from m17_platform.levels.convert import convert
from m17_platform.levels.partition import Trades
from m17_platform.levels.schemas import OUTCOME_LABELS
from m17_platform.levels.settings import LevelSettings
from m17_platform.schemas import empty_frame


@numba.njit(cache=True)
def _label_kernel(decision, lo, hi, sign, level, t1, t2, ts, px):
    """All prices ES points; per touch level and thresholds already converted."""
    n = decision.shape[0]
    exc = np.full((n, 3), np.nan)  # through, away, future price
    times = np.full((n, 4), -1, dtype=np.int64)  # through t1, t2, away t1, t2
    for i in range(n):
        a, b = lo[i], hi[i]
        if b > 0:
            exc[i, 2] = px[b - 1]
        first = a if b > a else a - 1
        if first < 0:
            continue
        best_t = -np.inf
        best_a = -np.inf
        for k in range(first, max(b, a)):
            d = sign[i] * (px[k] - level[i])
            best_t = max(best_t, d)
            best_a = max(best_a, -d)
            if k >= a:
                dt = ts[k] - decision[i]
                if times[i, 0] < 0 and d >= t1[i]:
                    times[i, 0] = dt
                if times[i, 1] < 0 and d >= t2[i]:
                    times[i, 1] = dt
                if times[i, 2] < 0 and -d >= t1[i]:
                    times[i, 2] = dt
                if times[i, 3] < 0 and -d >= t2[i]:
                    times[i, 3] = dt
        exc[i, 0], exc[i, 1] = best_t, best_a
    return exc, times


def build_labels(
    touches: pl.DataFrame, trades: Trades, data_end_ns: int, settings: LevelSettings
) -> tuple[pl.DataFrame, dict]:
    """The ``outcome_labels`` rows of a partition.

    Parameters
    ----------
    touches : :data:`.schemas.LEVEL_TOUCHES` rows
    trades : :class:`.partition.Trades` of the proxy contract
    data_end_ns : int
        Data are complete strictly before this instant (ns UTC).
    settings : LevelSettings

    Returns
    -------
    (polars.DataFrame with the columns of :data:`.schemas.OUTCOME_LABELS`, counts)
    """
    s = settings
    if touches.height == 0:
        return empty_frame(OUTCOME_LABELS), {"labels": 0}
    decision = touches.get_column("decision_ts_ns").to_numpy()
    end = decision + s.label_ns
    sign = np.where(touches.get_column("direction").to_numpy() == "UP", 1.0, -1.0)
    ratio = touches.get_column("es_spy_ratio").to_numpy()
    t1, t2 = (convert(np.full(touches.height, float(x)), ratio, to="es") for x in s.time_thresholds)
    # the path in ES points against the level in ES points, converted back once
    exc_es, times = _label_kernel(
        decision,
        np.searchsorted(trades.ts, decision, side="right"),
        np.searchsorted(trades.ts, end, side="right"),
        sign,
        touches.get_column("level_price_es").to_numpy(),
        t1,
        t2,
        trades.ts,
        trades.price,
    )
    exc = convert(exc_es, ratio[:, None], to="spy")
    n_trades = np.searchsorted(trades.ts, end, side="right") - np.searchsorted(trades.ts, decision, side="right")
    complete = end < int(data_end_ns)
    thr = float(s.outcome_threshold)
    through, away = exc[:, 0], exc[:, 1]
    outcome = np.where((through >= thr) & (through > away), "BREAK", np.where(away >= thr, "BOUNCE", "CHOP")).astype(
        object
    )
    outcome[~complete | np.isnan(through)] = None

    def masked(values, bad):
        series = pl.Series(values)
        series = series.fill_nan(None) if series.dtype == pl.Float64 else series
        return series.scatter(np.flatnonzero(bad), None) if bad.any() else series

    frame = (
        touches.select("touch_id", "underlying", "bar_start_ns", "decision_ts_ns", "level_kind", "level_price",
                       "direction")
        .with_columns(
            pl.Series("label_end_ts_ns", end),
            pl.Series("label_status", np.where(complete, "ok", "incomplete")),
            pl.Series("outcome", outcome.tolist(), dtype=pl.String),
            masked(exc[:, 2], ~complete).alias("future_price_5min"),
            masked(through, ~complete).alias("excursion_through"),
            masked(away, ~complete).alias("excursion_away"),
            *[
                masked(times[:, k], ~complete | (times[:, k] < 0)).alias(name)
                for k, name in enumerate(
                    ("time_to_through_1_ns", "time_to_through_2_ns", "time_to_away_1_ns", "time_to_away_2_ns")
                )
            ],
            masked(n_trades.astype(np.int64), ~complete).alias("label_trades"),
        )
        .select(OUTCOME_LABELS.columns)
    )
    counts = frame.get_column("outcome").fill_null("null").value_counts()
    return frame, {"labels": frame.height, **{f"outcome/{k}": int(v) for k, v in counts.iter_rows()}}
