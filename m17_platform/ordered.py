"""Reductions whose result does not depend on polars' thread count or scheduling.

A floating-point sum depends on the order of its additions. Polars' ``group_by(...).agg(
pl.col(x).sum())`` may add a group's values in partial sums whose split depends on the
thread pool (``POLARS_MAX_THREADS``) and on how the rows were hashed, so the same rows can
give sums that differ in the last bits from one run to the next (a rerun of a partition
then writes different Parquet bytes). Polars does keep the order of the rows *within* a
group, and a cumulative sum is computed in that order, so the last value of a group's
cumulative sum is the sequential sum of its values in row order: the same bits on every
run, whatever the threads. :func:`ordered_sum` and :func:`ordered_mean` are that, for use
inside ``group_by(...).agg(...)``; the caller fixes the row order (a stable sort on a
total key, or a stored order) so the order of the additions is fixed too.

Where there are many groups, :func:`group_sums` (and :func:`run_sums` for rows already
in runs of equal keys) is the fast way: a stable sort by the keys, then one pass over the
rows in a numba loop that adds each run's values one at a time (no ``fastmath``, so the
compiler keeps the order of the additions): the same bits as :func:`ordered_sum`.

Integer sums, ``min`` / ``max`` / ``first`` / ``last``, list aggregations and
``cum_sum().over(...)`` do not depend on the split and need nothing of this.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import polars as pl


def ordered_sum(expr: pl.Expr) -> pl.Expr:
    """The sum of ``expr`` over a group, added one value at a time in the group's row order.

    Parameters
    ----------
    expr : polars.Expr
        A numeric expression (any unit); nulls count as 0, as in ``Expr.sum``.

    Returns
    -------
    polars.Expr
        One value per group, of ``Expr.cum_sum``'s dtype (float64 for float64, int64 for
        integers); 0 for a group with no rows (e.g. after a ``filter``). Equal, bit for
        bit, to ``functools.reduce(operator.add, values, 0)`` over the group's values in
        row order, whatever ``POLARS_MAX_THREADS``.

    Notes
    -----
    About 5x the time of ``Expr.sum`` in a ``group_by`` (a cumulative sum per group):
    0.1 s for 1 million rows in 100,000 groups on this project's machine.
    """
    return expr.fill_null(0).cum_sum().last().fill_null(0)


def ordered_mean(expr: pl.Expr) -> pl.Expr:
    """The mean of the non-null values of ``expr`` over a group, their sum taken by
    :func:`ordered_sum`; null for a group without a non-null value (as ``Expr.mean``).

    Returns
    -------
    polars.Expr
        float64, one value per group.
    """
    count = expr.is_not_null().sum()
    return pl.when(count > 0).then(ordered_sum(expr).cast(pl.Float64) / count)


def run_starts(frame: pl.DataFrame, keys: Sequence[str]) -> np.ndarray:
    """Where each run of equal ``keys`` starts in ``frame`` (nulls equal to nulls).

    Returns
    -------
    numpy.ndarray of int64, shape (runs,)
        Increasing row numbers, the first 0; empty for an empty frame.
    """
    if frame.height == 0:
        return np.empty(0, dtype=np.int64)
    if not keys:
        return np.zeros(1, dtype=np.int64)
    changed = pl.any_horizontal([pl.col(k).ne_missing(pl.col(k).shift(1)) for k in keys])
    return np.flatnonzero(frame.select(changed.fill_null(True)).to_series().to_numpy()).astype(np.int64)


@numba.njit(cache=True)
def _run_sums_kernel(values, starts):
    n_runs = starts.shape[0]
    out = np.zeros(n_runs, dtype=values.dtype)
    for r in range(n_runs):
        end = starts[r + 1] if r + 1 < n_runs else values.shape[0]
        total = values[starts[r]]
        for i in range(starts[r] + 1, end):
            total += values[i]
        out[r] = total
    return out


def run_sums(frame: pl.DataFrame, starts: np.ndarray, columns: Sequence[str]) -> pl.DataFrame:
    """The sum of each of ``columns`` over each run of rows (``starts`` from
    :func:`run_starts`), its values added one at a time in row order (a numba loop: the
    same bits on every run, equal to :func:`ordered_sum`).

    Parameters
    ----------
    frame : polars.DataFrame
        Numeric ``columns`` (nulls count as 0).
    starts : numpy.ndarray of int64
        First row of each run, increasing, the first 0.
    columns : sequence of str

    Returns
    -------
    polars.DataFrame
        One row per run, one column per name: float columns keep their dtype, integer
        and boolean ones are summed as int64.
    """
    out = {}
    for name in columns:
        series = frame.get_column(name).fill_null(0)
        if series.dtype.is_integer() or series.dtype == pl.Boolean:
            series = series.cast(pl.Int64)
        values = np.ascontiguousarray(series.to_numpy())
        summed = _run_sums_kernel(values, np.ascontiguousarray(starts, dtype=np.int64)) if starts.size else values[:0]
        out[name] = pl.Series(name, summed, dtype=series.dtype)
    return pl.DataFrame(out)


def group_sums(frame: pl.DataFrame, keys: Sequence[str], columns: Sequence[str], *,
               order: Sequence[str] = (), count: str | None = None) -> pl.DataFrame:
    """Per distinct ``keys``: the keys, the number of rows (as ``count``, when given) and
    the sum of each of ``columns``, added in a fixed order whatever the threads.

    The rows are sorted stably by ``keys`` then ``order`` (nulls last), so a group's values
    are added in that order, ties in the order given; the sums are :func:`run_sums`.

    Parameters
    ----------
    frame : polars.DataFrame
    keys : sequence of str
        Group columns (any dtype).
    columns : sequence of str
        Numeric columns to add up (nulls count as 0).
    order : sequence of str
        Columns that fix the order of the rows within a group.
    count : str, optional
        Name of an int64 column with each group's number of rows.

    Returns
    -------
    polars.DataFrame
        ``keys``, ``count``, ``columns`` (dtypes as :func:`run_sums`); one row per group,
        sorted by ``keys`` (nulls last).
    """
    sort_by = list(dict.fromkeys([*keys, *order]))
    ordered = frame.sort(sort_by, nulls_last=True, maintain_order=True) if sort_by else frame
    starts = run_starts(ordered, keys)
    parts = [ordered.select(keys)[starts]] if keys else []
    if count is not None:
        sizes = np.diff(np.append(starts, ordered.height)).astype(np.int64)
        parts.append(pl.DataFrame({count: sizes}, schema={count: pl.Int64}))
    parts.append(run_sums(ordered, starts, columns))
    return pl.concat(parts, how="horizontal")
