"""ES <-> SPY: one conversion function and the measured ratio it is given.

ES trades at a basis to SPY x 10 that moves with carry and dividends, so a fixed 10 puts
levels in the wrong place by dollars (the ESH4 sample: ES/10 = 480.x while SPY was near
475). The ratio used at instant ``t`` is measured from the past only: the median of
``ES mid / SPY mid`` over samples every ``LevelSettings.ratio_sample_seconds`` in
``[t - ratio_window_minutes, t)``, each sample pairing the last valid (two-sided, not
crossed) ES book row and the last valid SPY quote strictly before it, both at most
``ratio_max_quote_age_seconds`` old. With fewer than ``ratio_min_samples`` samples (no
SPY quotes: the ESH4 evening session, or the first minutes of a day) the settings ratio
is used (``Partition.fallback_ratio``), and every row records which (``ratio_source``).

Every price conversion in :mod:`m17_platform.levels` goes through :func:`convert`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from m17_platform.levels.settings import LevelSettings

MEASURED = "measured"
SETTINGS = "settings"
NS_PER_SECOND = 1_000_000_000


def convert(values, ratio, *, to: str):
    """Convert prices between ES points and SPY dollars: ``to="spy"`` divides by the ratio,
    ``to="es"`` multiplies.

    Parameters
    ----------
    values : float, numpy array or polars expression / series
        Prices (ES points for ``to="spy"``, SPY dollars for ``to="es"``).
    ratio : float, numpy array or polars expression / series
        ES / SPY ratio (dimensionless), broadcastable against ``values``.
    to : {"spy", "es"}

    Returns
    -------
    Same kind as ``values``.

    Raises
    ------
    ValueError
        For another ``to``.
    """
    if to == "spy":
        return values / ratio
    if to == "es":
        return values * ratio
    raise ValueError(f"convert: to must be 'spy' or 'es', got {to!r}")


def es_mid(book: pl.DataFrame | None, symbol: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(ts_ns int64, mid float64 ES points) of the contract's valid book rows (both sides
    present, bid < ask), in time order."""
    if book is None or symbol is None or book.height == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    b = (
        book.lazy()
        .filter(
            (pl.col("symbol") == symbol)
            & pl.col("bid_px_00").is_not_null()
            & pl.col("ask_px_00").is_not_null()
            & (pl.col("bid_px_00") < pl.col("ask_px_00"))
        )
        .select("ts_ns", "sequence", "bid_px_00", "ask_px_00")
        .sort(["ts_ns", "sequence"], maintain_order=True)
        .collect()
    )
    mid = (b.get_column("bid_px_00") + b.get_column("ask_px_00")) / 2.0
    return b.get_column("ts_ns").to_numpy(), mid.to_numpy()


def spy_mid(quotes: pl.DataFrame | None, underlying: str) -> tuple[np.ndarray, np.ndarray]:
    """(ts_ns int64, mid float64 dollars) of the underlying's valid quotes (both sides,
    bid > 0, bid < ask), in time order."""
    if quotes is None or quotes.height == 0:
        return np.empty(0, dtype=np.int64), np.empty(0)
    q = (
        quotes.lazy()
        .filter(
            (pl.col("symbol") == underlying)
            & pl.col("bid").is_not_null()
            & pl.col("ask").is_not_null()
            & (pl.col("bid") > 0)
            & (pl.col("bid") < pl.col("ask"))
        )
        .select("ts_ns", "sequence", "bid", "ask")
        .sort(["ts_ns", "sequence"], maintain_order=True)
        .collect()
    )
    mid = (q.get_column("bid") + q.get_column("ask")) / 2.0
    return q.get_column("ts_ns").to_numpy(), mid.to_numpy()


def _asof_strict(ts: np.ndarray, at: np.ndarray, max_age: int) -> np.ndarray:
    """Index of the last ``ts`` strictly before each ``at`` no older than ``max_age``, or -1."""
    idx = np.searchsorted(ts, at, side="left") - 1
    ok = idx >= 0
    ok[ok] = at[ok] - ts[idx[ok]] <= max_age
    return np.where(ok, idx, -1)


def ratio_samples(
    es: tuple[np.ndarray, np.ndarray],
    spy: tuple[np.ndarray, np.ndarray],
    start_ns: int,
    end_ns: int,
    lvl: LevelSettings,
) -> tuple[np.ndarray, np.ndarray]:
    """(sample instants, ES mid / SPY mid) on the epoch-aligned sample grid in
    [start_ns, end_ns), valid samples only."""
    step = int(lvl.ratio_sample_seconds) * NS_PER_SECOND
    if es[0].size == 0 or spy[0].size == 0 or end_ns <= start_ns:
        return np.empty(0, dtype=np.int64), np.empty(0)
    first = -(-max(start_ns, int(min(es[0][0], spy[0][0]))) // step) * step
    grid = np.arange(first, end_ns, step, dtype=np.int64)
    age = int(lvl.ratio_max_quote_age_seconds * NS_PER_SECOND)
    i = _asof_strict(es[0], grid, age)
    j = _asof_strict(spy[0], grid, age)
    ok = (i >= 0) & (j >= 0)
    return grid[ok], es[1][i[ok]] / spy[1][j[ok]]


def measured_ratios(
    instants: np.ndarray,
    es: tuple[np.ndarray, np.ndarray],
    spy: tuple[np.ndarray, np.ndarray],
    fallback: float,
    lvl: LevelSettings,
) -> pl.DataFrame:
    """The ES / SPY ratio at each instant, from the past only.

    Parameters
    ----------
    instants : int64 array (ns UTC)
        Where the ratio is wanted (bar starts, 2-minute bar ends).
    es, spy : (ts_ns, mid) pairs
        :func:`es_mid` and :func:`spy_mid` of the partition.
    fallback : float
        The settings ratio.

    Returns
    -------
    polars.DataFrame
        ``ts_ns`` (the unique instants, increasing), ``es_spy_ratio`` (float64),
        ``ratio_source`` (``measured`` / ``settings``), ``ratio_samples`` (int64).
    """
    inst = np.unique(np.asarray(instants, dtype=np.int64))
    window = int(lvl.ratio_window_minutes * 60 * NS_PER_SECOND)
    ratio = np.full(inst.size, float(fallback))
    count = np.zeros(inst.size, dtype=np.int64)
    if inst.size:
        s_ts, s_r = ratio_samples(es, spy, int(inst[0]) - window, int(inst[-1]), lvl)
        lo = np.searchsorted(s_ts, inst - window, side="left")
        hi = np.searchsorted(s_ts, inst, side="left")
        count = (hi - lo).astype(np.int64)
        for k in np.flatnonzero(count >= max(int(lvl.ratio_min_samples), 1)):
            ratio[k] = float(np.median(s_r[lo[k] : hi[k]]))
    measured = count >= max(int(lvl.ratio_min_samples), 1)
    return pl.DataFrame(
        {
            "ts_ns": inst,
            "es_spy_ratio": ratio,
            "ratio_source": np.where(measured, MEASURED, SETTINGS),
            "ratio_samples": count,
        },
        schema={"ts_ns": pl.Int64, "es_spy_ratio": pl.Float64, "ratio_source": pl.String, "ratio_samples": pl.Int64},
    )
