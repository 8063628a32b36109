"""As-of join of trades to the prevailing quote of the same instrument (the "NBBO join").

Definition (``DESIGN.md``, "Analytics conventions"): each trade gets the prevailing
quote of the same instrument at or before the trade's timestamp minus a configurable
lag, with the quote's age; stale, crossed, locked, zero-bid and one-sided quotes are
*flagged*, not silently used or dropped.

Ordering and ties
-----------------
Both tables must be sorted by ``(instrument, ts_ns, sequence)`` as the lake stores
them (:mod:`m17_platform.schemas`, ``sort_key``); the function verifies this and raises
``ValueError`` naming the table and the first offending row instead of sorting
silently. Instrument strings are ordered by their UTF-8 bytes (polars' string order).
Among several quotes that qualify, the one that comes last in that order (greatest
``(ts_ns, sequence)``) prevails.

Three cut-off modes, with ``cut = trade.ts_ns - lag_ns``:

* default: quote ``ts_ns <= cut`` (at or before; ``polars.join_asof(strategy="backward")``);
* ``strict=True``: quote ``ts_ns < cut`` (strictly earlier in time;
  ``join_asof(..., allow_exact_matches=False)``);
* ``strict_sequence=True``: ``(quote.ts_ns, quote.sequence) < (cut, trade.sequence)``
  lexicographically: a quote at the same nanosecond counts only if its sequence
  number is smaller than the trade's.

``strict_sequence`` is the mode for sources where a trade and the book update it
causes share a timestamp and the sequence orders them: in LOBSTER, the orderbook row
produced by an execution message has that message's ``ts_ns`` and ``sequence``, and
one aggressive order sweeping several resting orders yields several executions at
the same nanosecond; the quote *before* execution *k* is the book row of message
``k - 1``. In Databento MBO (CME), the trade and the book emitted after it share
``ts_event`` and the packet ``sequence``, so strictly-before excludes the post-trade
book (it also excludes any earlier event of the same packet, which then falls back to
the previous packet's book).

Performance: the match is a single forward merge over int64 arrays in a numba kernel
(both sides factorised into one sorted code space), O(n_trades + n_quotes).
"""

from __future__ import annotations

from m17_platform.settings import NbboSettings

import numba
import numpy as np
import polars as pl


OUTPUT_COLUMNS = ("bid", "ask", "bid_size", "ask_size", "quote_ts_ns", "quote_age_ns", "nbbo_flag")
"""Columns :func:`asof_join_quotes` appends to the trade columns."""

FLAGS = ("ok", "no_quote", "stale", "one_sided", "zero_bid", "crossed", "locked")
"""Values of ``nbbo_flag``; when several apply, the first in this order after ``ok`` wins."""

_MODE_AT_OR_BEFORE = 0
_MODE_STRICT_TIME = 1
_MODE_STRICT_SEQUENCE = 2


@numba.njit(cache=True)
def _first_unsorted(code: np.ndarray, ts: np.ndarray, seq: np.ndarray) -> int:
    """Index of the first row whose (code, ts, seq) is smaller than the row before, or -1."""
    for i in range(1, code.shape[0]):
        if code[i] < code[i - 1]:
            return i
        if code[i] == code[i - 1]:
            if ts[i] < ts[i - 1]:
                return i
            if ts[i] == ts[i - 1] and seq[i] < seq[i - 1]:
                return i
    return -1


@numba.njit(cache=True)
def _asof_kernel(
    t_code: np.ndarray,
    t_ts: np.ndarray,
    t_seq: np.ndarray,
    q_code: np.ndarray,
    q_ts: np.ndarray,
    q_seq: np.ndarray,
    lag_ns: int,
    mode: int,
) -> np.ndarray:
    """Row index of the prevailing quote for each trade (-1 when none); one forward pass."""
    n = t_code.shape[0]
    m = q_code.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    j = 0
    for i in range(n):
        c = t_code[i]
        cut = t_ts[i] - lag_ns
        s = t_seq[i]
        while j < m:
            qc = q_code[j]
            if qc < c:
                j += 1
                continue
            if qc > c:
                break
            qt = q_ts[j]
            if mode == 0:
                ok = qt <= cut
            elif mode == 1:
                ok = qt < cut
            else:
                ok = qt < cut or (qt == cut and q_seq[j] < s)
            if not ok:
                break
            j += 1
        if j > 0 and q_code[j - 1] == c:
            out[i] = j - 1
    return out


def _check_frame(frame: pl.DataFrame, table: str, instrument: str, extra: tuple[str, ...]) -> None:
    missing = [c for c in (instrument, "ts_ns", "sequence", *extra) if c not in frame.columns]
    if missing:
        raise ValueError(f"{table}: missing columns {missing}")
    for c in (instrument, "ts_ns", "sequence"):
        nulls = frame.get_column(c).null_count()
        if nulls:
            first = int(frame.get_column(c).is_null().arg_true()[0])
            raise ValueError(f"{table}: column {c!r} has {nulls} nulls (first at row {first})")


def _check_sorted(table: str, instrument: str, values: pl.Series, code: np.ndarray, ts: np.ndarray, seq: np.ndarray) -> None:
    bad = _first_unsorted(code, ts, seq)
    if bad >= 0:
        raise ValueError(
            f"{table} is not sorted by ({instrument}, ts_ns, sequence): row {bad} "
            f"({values[bad]!r}, {ts[bad]}, {seq[bad]}) comes after row {bad - 1} "
            f"({values[bad - 1]!r}, {ts[bad - 1]}, {seq[bad - 1]})"
        )


def asof_join_quotes(
    trades: pl.DataFrame,
    quotes: pl.DataFrame,
    *,
    instrument: str,
    settings: NbboSettings = NbboSettings(),
    strict: bool = False,
    strict_sequence: bool = False,
) -> pl.DataFrame:
    """Attach to every trade the prevailing quote of the same instrument.

    Parameters
    ----------
    trades : polars.DataFrame, shape (n, k)
        Trades with ``instrument``, ``ts_ns`` (int64 ns since epoch, UTC) and
        ``sequence`` (int64), sorted by ``(instrument, ts_ns, sequence)``.
    quotes : polars.DataFrame, shape (m, *)
        Quotes with ``instrument``, ``ts_ns``, ``sequence``, ``bid`` and ``ask``
        (float64 dollars, nullable: null = empty side) and optionally ``bid_size`` /
        ``ask_size`` (int64; null columns when absent), sorted the same way. For
        ``futures_mbp10`` rename ``bid_px_00``/``ask_px_00``/``bid_sz_00``/``ask_sz_00``.
    instrument : str
        Name of the instrument column in both tables (``option_symbol``, ``symbol``).
    settings : NbboSettings
        ``lag_ns`` and ``max_quote_age_ns``.
    strict : bool
        Quote ``ts_ns < trade.ts_ns - lag_ns`` instead of ``<=``.
    strict_sequence : bool
        Quote ``(ts_ns, sequence) < (trade.ts_ns - lag_ns, trade.sequence)``
        lexicographically (see the module docstring); overrides ``strict``.

    Returns
    -------
    polars.DataFrame, shape (n, k + 7)
        The trade rows in their order with :data:`OUTPUT_COLUMNS` appended: ``bid``,
        ``ask`` (float64 dollars), ``bid_size``, ``ask_size`` (int64), ``quote_ts_ns``
        (int64 ns), ``quote_age_ns`` (int64 ns, ``trade.ts_ns - quote_ts_ns``, so it
        includes the lag) — all null without a quote — and ``nbbo_flag`` (str):
        ``no_quote`` (nothing matched), ``stale`` (age > ``max_quote_age_ns``),
        ``one_sided`` (bid or ask null), ``zero_bid`` (bid == 0), ``crossed``
        (bid > ask), ``locked`` (bid == ask), else ``ok``; the first that applies in
        that order wins.

    Raises
    ------
    ValueError
        A missing key column, a null key, a table not sorted by
        ``(instrument, ts_ns, sequence)`` (naming the table and the first offending
        row), a negative ``lag_ns``, or a trade column that collides with an output
        column.
    """
    if settings.lag_ns < 0:
        raise ValueError(f"lag_ns must be >= 0, got {settings.lag_ns}")
    _check_frame(trades, "trades", instrument, ())
    _check_frame(quotes, "quotes", instrument, ("bid", "ask"))
    clash = [c for c in OUTPUT_COLUMNS if c in trades.columns]
    if clash:
        raise ValueError(f"trades already have output columns {clash}")

    t_inst = trades.get_column(instrument).cast(pl.String)
    q_inst = quotes.get_column(instrument).cast(pl.String)
    universe = pl.concat([t_inst, q_inst]).unique().sort()
    t_code = universe.search_sorted(t_inst).to_numpy().astype(np.int64)
    q_code = universe.search_sorted(q_inst).to_numpy().astype(np.int64)
    t_ts = trades.get_column("ts_ns").cast(pl.Int64).to_numpy()
    t_seq = trades.get_column("sequence").cast(pl.Int64).to_numpy()
    q_ts = quotes.get_column("ts_ns").cast(pl.Int64).to_numpy()
    q_seq = quotes.get_column("sequence").cast(pl.Int64).to_numpy()
    _check_sorted("trades", instrument, t_inst, t_code, t_ts, t_seq)
    _check_sorted("quotes", instrument, q_inst, q_code, q_ts, q_seq)

    mode = _MODE_STRICT_SEQUENCE if strict_sequence else (_MODE_STRICT_TIME if strict else _MODE_AT_OR_BEFORE)
    idx = _asof_kernel(t_code, t_ts, t_seq, q_code, q_ts, q_seq, int(settings.lag_ns), mode)

    sizes = [
        (pl.col(c).cast(pl.Int64) if c in quotes.columns else pl.lit(None, dtype=pl.Int64)).alias(c)
        for c in ("bid_size", "ask_size")
    ]
    side = quotes.select(
        pl.col("bid").cast(pl.Float64),
        pl.col("ask").cast(pl.Float64),
        *sizes,
        pl.col("ts_ns").cast(pl.Int64).alias("quote_ts_ns"),
    )
    take = pl.Series("idx", idx).set(pl.Series(idx < 0), None)
    matched = side.select(pl.all().gather(take)) if side.height else side.clear(trades.height)
    out = pl.concat([trades, matched], how="horizontal").with_columns(
        quote_age_ns=pl.col("ts_ns").cast(pl.Int64) - pl.col("quote_ts_ns")
    )
    bid, ask = pl.col("bid"), pl.col("ask")
    flag = (
        pl.when(pl.col("quote_ts_ns").is_null())
        .then(pl.lit("no_quote"))
        .when(pl.col("quote_age_ns") > settings.max_quote_age_ns)
        .then(pl.lit("stale"))
        .when(bid.is_null() | ask.is_null())
        .then(pl.lit("one_sided"))
        .when(bid == 0)
        .then(pl.lit("zero_bid"))
        .when(bid > ask)
        .then(pl.lit("crossed"))
        .when(bid == ask)
        .then(pl.lit("locked"))
        .otherwise(pl.lit("ok"))
    )
    return out.with_columns(nbbo_flag=flag)


def join_quality(joined: pl.DataFrame) -> dict[str, float | int | None]:
    """Summary of an :func:`asof_join_quotes` result.

    Parameters
    ----------
    joined : polars.DataFrame
        Output of :func:`asof_join_quotes` (needs ``quote_age_ns`` and ``nbbo_flag``).

    Returns
    -------
    dict
        ``n_trades``; ``n_with_quote``; ``coverage`` = n_with_quote / n_trades
        (0.0 when empty); ``median_age_ns`` over matched trades (None without any);
        ``stale_rate``, ``crossed_rate``, ``locked_rate``, ``one_sided_rate``,
        ``zero_bid_rate`` = that flag's count / n_with_quote (0.0 when none; flags are
        exclusive, so a stale crossed quote counts as stale only); and
        ``count_<flag>`` for every flag in :data:`FLAGS`.
    """
    n = joined.height
    counts = dict(joined.get_column("nbbo_flag").value_counts().iter_rows())
    with_quote = n - int(counts.get("no_quote", 0))
    ages = joined.get_column("quote_age_ns").drop_nulls()
    result: dict[str, float | int | None] = {
        "n_trades": n,
        "n_with_quote": with_quote,
        "coverage": with_quote / n if n else 0.0,
        "median_age_ns": float(ages.median()) if len(ages) else None,
    }
    for f in ("stale", "crossed", "locked", "one_sided", "zero_bid"):
        result[f"{f}_rate"] = int(counts.get(f, 0)) / with_quote if with_quote else 0.0
    for f in FLAGS:
        result[f"count_{f}"] = int(counts.get(f, 0))
    return result
