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

Four cut-off modes, with ``cut = trade.ts_ns - lag_ns``:

* default: quote ``ts_ns <= cut`` (at or before; ``polars.join_asof(strategy="backward")``);
* ``strict=True``: quote ``ts_ns < cut`` (strictly earlier in time;
  ``join_asof(..., allow_exact_matches=False)``);
* ``strict_sequence=True``: ``(quote.ts_ns, quote.sequence) < (cut, trade.sequence)``
  lexicographically: a quote at the same nanosecond counts only if its sequence
  number is smaller than the trade's;
* ``sequence_tiebreak=True``: ``(quote.ts_ns, quote.sequence) <= (cut, trade.sequence)``:
  a quote at the same nanosecond counts if its sequence is not after the trade's.

``strict_sequence`` is the mode for sources where a trade and the book update it
causes share a timestamp and the sequence orders them: in LOBSTER, the orderbook row
produced by an execution message has that message's ``ts_ns`` and ``sequence``, and
one aggressive order sweeping several resting orders yields several executions at
the same nanosecond; the quote *before* execution *k* is the book row of message
``k - 1``. In Databento MBO (CME), the trade and the book emitted after it share
``ts_event`` and the packet ``sequence``, so strictly-before excludes the post-trade
book (it also excludes any earlier event of the same packet, which then falls back to
the previous packet's book).

Performance: both tables are sorted by instrument, so each is cut into runs of one
instrument (on the physical codes of a Categorical / Enum column or the values of an
integer column, without materialising strings; a string column through ``rle_id``).
Runs are paired by instrument value and merged in a numba kernel, in parallel over
groups of instruments, checking the ``(ts_ns, sequence)`` order in the same pass:
O(n_trades + n_quotes), one read of the quote timestamps.
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

FLAG_DTYPE = pl.Enum(list(FLAGS))
"""``nbbo_flag`` is a polars Enum of :data:`FLAGS` (compares equal to the strings)."""


@numba.njit(cache=True)
def _flag_kernel(idx, t_ts, q_ts, bid, ask, max_age):
    """nbbo_flag codes (index into FLAGS) per trade; bid/ask NaN = empty side."""
    n = idx.shape[0]
    out = np.empty(n, dtype=np.uint8)
    for i in range(n):
        j = idx[i]
        if j < 0:
            out[i] = 1
        elif t_ts[i] - q_ts[j] > max_age:
            out[i] = 2
        elif np.isnan(bid[i]) or np.isnan(ask[i]):
            out[i] = 3
        elif bid[i] == 0.0:
            out[i] = 4
        elif bid[i] > ask[i]:
            out[i] = 5
        elif bid[i] == ask[i]:
            out[i] = 6
        else:
            out[i] = 0
    return out

_MODE_AT_OR_BEFORE = 0
_MODE_STRICT_TIME = 1
_MODE_STRICT_SEQUENCE = 2
_MODE_AT_OR_BEFORE_SEQUENCE = 3


@numba.njit(cache=True)
def _run_starts(codes: np.ndarray) -> np.ndarray:
    """Offsets where a run of equal codes starts, plus ``len(codes)`` at the end."""
    n = codes.shape[0]
    count = 1 if n else 0
    for i in range(1, n):
        if codes[i] != codes[i - 1]:
            count += 1
    out = np.empty(count + 1, dtype=np.int64)
    k = 0
    if n:
        out[0] = 0
        k = 1
    for i in range(1, n):
        if codes[i] != codes[i - 1]:
            out[k] = i
            k += 1
    out[k] = n
    return out


@numba.njit(cache=True, parallel=True)
def _asof_runs_kernel(
    t_start: np.ndarray,
    t_ts: np.ndarray,
    t_seq: np.ndarray,
    q_start: np.ndarray,
    q_ts: np.ndarray,
    q_seq: np.ndarray,
    pair_t: np.ndarray,
    pair_q: np.ndarray,
    chunks: np.ndarray,
    lag_ns: int,
    mode: int,
):
    """Prevailing quote row per trade (-1 when none), merging each instrument's runs.

    ``pair_t[p]`` / ``pair_q[p]`` are the trade and quote runs of one instrument (-1
    when the table has none); ``chunks`` splits the pairs into ranges of similar work
    run in parallel. Checks ``(ts, seq)`` order inside every run in the same pass and
    returns, per pair, the first out-of-order trade row and quote row (-1 when none).
    """
    n_pairs = pair_t.shape[0]
    out = np.full(t_ts.shape[0], -1, dtype=np.int64)
    t_bad = np.full(n_pairs, -1, dtype=np.int64)
    q_bad = np.full(n_pairs, -1, dtype=np.int64)
    for c in numba.prange(chunks.shape[0] - 1):
        for p in range(chunks[c], chunks[c + 1]):
            tr = pair_t[p]
            qr = pair_q[p]
            ta = tb = qa = qb = 0
            if tr >= 0:
                ta = t_start[tr]
                tb = t_start[tr + 1]
            if qr >= 0:
                qa = q_start[qr]
                qb = q_start[qr + 1]
            tbad = -1
            qbad = -1
            j = qa
            for i in range(ta, tb):
                tt = t_ts[i]
                s = t_seq[i]
                if tbad < 0 and i > ta:
                    pt = t_ts[i - 1]
                    if tt < pt or (tt == pt and s < t_seq[i - 1]):
                        tbad = i
                cut = tt - lag_ns
                while j < qb:
                    qt = q_ts[j]
                    if qbad < 0 and j > qa:
                        pq = q_ts[j - 1]
                        if qt < pq or (qt == pq and q_seq[j] < q_seq[j - 1]):
                            qbad = j
                    if mode == 0:
                        ok = qt <= cut
                    elif mode == 1:
                        ok = qt < cut
                    elif mode == 2:
                        ok = qt < cut or (qt == cut and q_seq[j] < s)
                    else:
                        ok = qt < cut or (qt == cut and q_seq[j] <= s)
                    if not ok:
                        break
                    j += 1
                if j > qa:
                    out[i] = j - 1
            if qbad < 0:
                for k in range(max(j, qa + 1), qb):
                    pq = q_ts[k - 1]
                    if q_ts[k] < pq or (q_ts[k] == pq and q_seq[k] < q_seq[k - 1]):
                        qbad = k
                        break
            t_bad[p] = tbad
            q_bad[p] = qbad
    return out, t_bad, q_bad


@numba.njit(cache=True, parallel=True)
def _gather_kernel(idx, bid, ask, bid_size, ask_size, ts, with_sizes):
    """``column[idx]`` for the five quote columns at once (rows with ``idx < 0`` get 0)."""
    n = idx.shape[0]
    o_bid = np.zeros(n, dtype=bid.dtype)
    o_ask = np.zeros(n, dtype=ask.dtype)
    o_bs = np.zeros(n if with_sizes else 0, dtype=bid_size.dtype)
    o_as = np.zeros(n if with_sizes else 0, dtype=ask_size.dtype)
    o_ts = np.zeros(n, dtype=ts.dtype)
    for i in numba.prange(n):
        k = idx[i]
        if k >= 0:
            o_bid[i] = bid[k]
            o_ask[i] = ask[k]
            o_ts[i] = ts[k]
            if with_sizes:
                o_bs[i] = bid_size[k]
                o_as[i] = ask_size[k]
    return o_bid, o_ask, o_bs, o_as, o_ts


def _gather_matched(quotes: pl.DataFrame, idx: np.ndarray) -> pl.DataFrame:
    """The matched quote columns per trade (nulls where ``idx < 0``), cast to the output dtypes.

    Numeric columns without nulls are gathered in one parallel numba pass (the reads
    are cache misses; doing all columns per row overlaps them); anything else through
    polars ``gather``. Only the matched rows are cast, never the whole quote table.
    """
    n = idx.shape[0]
    sizes = ("bid_size", "ask_size")
    with_sizes = all(c in quotes.columns for c in sizes)
    present = ["bid", "ask", *(c for c in sizes if c in quotes.columns), "ts_ns"]
    none = idx < 0
    fast = quotes.height > 0 and (with_sizes or not any(c in quotes.columns for c in sizes)) and all(
        quotes.schema[c].is_numeric() and quotes.get_column(c).null_count() == 0 for c in present
    )
    if fast:
        cols = {c: quotes.get_column(c).to_numpy() for c in present}
        dummy = np.zeros(1, dtype=np.int64)
        got = _gather_kernel(
            idx, cols["bid"], cols["ask"], cols.get("bid_size", dummy), cols.get("ask_size", dummy),
            cols["ts_ns"], with_sizes,
        )
        names = ("bid", "ask", "bid_size", "ask_size", "ts_ns")
        mask = pl.Series(none)
        any_none = bool(none.any())
        series = [pl.Series(c, a) for c, a in zip(names, got) if c in present]
        picked = pl.DataFrame([s.set(mask, None) if any_none else s for s in series])
    else:
        picked = quotes.select(present)
        take = pl.Series("idx", idx).set(pl.Series(none), None)
        picked = picked.select(pl.all().gather(take)) if quotes.height else picked.clear(n)
    return picked.select(
        pl.col("bid").cast(pl.Float64),
        pl.col("ask").cast(pl.Float64),
        *[(pl.col(c).cast(pl.Int64) if c in present else pl.lit(None, dtype=pl.Int64)).alias(c) for c in sizes],
        pl.col("ts_ns").cast(pl.Int64).alias("quote_ts_ns"),
    )


def _instrument_runs(values: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Run boundaries of a sorted-by-instrument column and each run's value as a string.

    Categorical / Enum columns are scanned on their physical codes and integer columns
    on their values (no string is materialised per row); other columns as strings.
    """
    dtype = values.dtype
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        codes = values.to_physical().to_numpy()
    elif dtype.is_integer():
        codes = values.to_numpy()
    else:
        codes = values.cast(pl.String).rle_id().to_numpy()
    starts = _run_starts(codes)
    run_values = values.gather(pl.Series(starts[:-1], dtype=pl.Int64)).cast(pl.String)
    return starts, run_values


def _first_descending(run_values: pl.Series) -> int:
    """First run whose value is not greater than the previous run's (UTF-8 byte order), or -1."""
    if len(run_values) < 2:
        return -1
    bad = (run_values.slice(1) <= run_values.slice(0, len(run_values) - 1)).arg_true()
    return int(bad[0]) + 1 if len(bad) else -1


def _pairs(t_values: pl.Series, q_values: pl.Series, sorted_ok: bool) -> tuple[np.ndarray, np.ndarray]:
    """Trade-run / quote-run pairs of equal instrument (-1 for a side without the instrument)."""
    t_list, q_list = t_values.to_list(), q_values.to_list()
    if not sorted_ok:  # an error will be raised; pair nothing, but still order-check every run
        return (np.concatenate([np.arange(len(t_list)), np.full(len(q_list), -1)]).astype(np.int64),
                np.concatenate([np.full(len(t_list), -1), np.arange(len(q_list))]).astype(np.int64))
    q_pos = {v: k for k, v in enumerate(q_list)}
    pair_t = list(range(len(t_list)))
    pair_q = [q_pos.pop(v, -1) for v in t_list]
    rest = sorted(q_pos.values())
    return (np.array(pair_t + [-1] * len(rest), dtype=np.int64), np.array(pair_q + rest, dtype=np.int64))


def _chunks(pair_t: np.ndarray, pair_q: np.ndarray, t_start: np.ndarray, q_start: np.ndarray) -> np.ndarray:
    """Split pairs into ranges of about equal rows (trades + quotes) for the parallel kernel."""
    n = pair_t.shape[0]
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    t_len = np.append(np.diff(t_start), 0)  # index -1 (no run) reads the appended 0
    q_len = np.append(np.diff(q_start), 0)
    work = t_len[pair_t] + q_len[pair_q] + 1
    cum = np.cumsum(work)
    n_chunks = min(n, 8 * max(1, numba.get_num_threads()))
    bounds = np.searchsorted(cum, np.linspace(0, cum[-1], n_chunks + 1)[1:-1], side="right")
    return np.unique(np.concatenate([[0], bounds, [n]])).astype(np.int64)


def _check_frame(frame: pl.DataFrame, table: str, instrument: str, extra: tuple[str, ...]) -> None:
    missing = [c for c in (instrument, "ts_ns", "sequence", *extra) if c not in frame.columns]
    if missing:
        raise ValueError(f"{table}: missing columns {missing}")
    for c in (instrument, "ts_ns", "sequence"):
        nulls = frame.get_column(c).null_count()
        if nulls:
            first = int(frame.get_column(c).is_null().arg_true()[0])
            raise ValueError(f"{table}: column {c!r} has {nulls} nulls (first at row {first})")


def _raise_unsorted(table: str, instrument: str, values: pl.Series, ts: np.ndarray, seq: np.ndarray, bad: int) -> None:
    pair = values.slice(bad - 1, 2).cast(pl.String)
    raise ValueError(
        f"{table} is not sorted by ({instrument}, ts_ns, sequence): row {bad} "
        f"({pair[1]!r}, {ts[bad]}, {seq[bad]}) comes after row {bad - 1} "
        f"({pair[0]!r}, {ts[bad - 1]}, {seq[bad - 1]})"
    )


def asof_join_quotes(
    trades: pl.DataFrame,
    quotes: pl.DataFrame,
    *,
    instrument: str,
    settings: NbboSettings = NbboSettings(),
    strict: bool = False,
    strict_sequence: bool = False,
    sequence_tiebreak: bool = False,
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
    sequence_tiebreak : bool
        Quote ``(ts_ns, sequence) <= (trade.ts_ns - lag_ns, trade.sequence)``
        lexicographically: for quotes that share the trades' sequence numbers and are
        in force *at* the trade (Cboe's NBBO at each print), so that of several prints
        in one nanosecond each gets its own quote, not the last one of that instant.
        Overrides ``strict``; ``strict_sequence`` overrides it.

    Returns
    -------
    polars.DataFrame, shape (n, k + 7)
        The trade rows in their order with :data:`OUTPUT_COLUMNS` appended: ``bid``,
        ``ask`` (float64 dollars), ``bid_size``, ``ask_size`` (int64), ``quote_ts_ns``
        (int64 ns), ``quote_age_ns`` (int64 ns, ``trade.ts_ns - quote_ts_ns``, so it
        includes the lag) — all null without a quote — and ``nbbo_flag`` (Enum of :data:`FLAGS`):
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

    t_inst = trades.get_column(instrument)
    q_inst = quotes.get_column(instrument)
    t_start, t_values = _instrument_runs(t_inst)
    q_start, q_values = _instrument_runs(q_inst)
    t_ts = trades.get_column("ts_ns").cast(pl.Int64).to_numpy()
    t_seq = trades.get_column("sequence").cast(pl.Int64).to_numpy()
    q_ts = quotes.get_column("ts_ns").cast(pl.Int64).to_numpy()
    q_seq = quotes.get_column("sequence").cast(pl.Int64).to_numpy()
    t_desc = _first_descending(t_values)
    q_desc = _first_descending(q_values)
    pair_t, pair_q = _pairs(t_values, q_values, t_desc < 0 and q_desc < 0)
    chunks = _chunks(pair_t, pair_q, t_start, q_start)

    if strict_sequence:
        mode = _MODE_STRICT_SEQUENCE
    elif sequence_tiebreak:
        mode = _MODE_AT_OR_BEFORE_SEQUENCE
    else:
        mode = _MODE_STRICT_TIME if strict else _MODE_AT_OR_BEFORE
    idx, t_bad, q_bad = _asof_runs_kernel(
        t_start, t_ts, t_seq, q_start, q_ts, q_seq, pair_t, pair_q, chunks, int(settings.lag_ns), mode
    )
    for table, values, start, desc, bad, ts, seq in (
        ("trades", t_inst, t_start, t_desc, t_bad, t_ts, t_seq),
        ("quotes", q_inst, q_start, q_desc, q_bad, q_ts, q_seq),
    ):
        rows = [int(start[desc])] if desc >= 0 else []
        rows += [int(b) for b in bad[bad >= 0]]
        if rows:
            _raise_unsorted(table, instrument, values, ts, seq, min(rows))

    matched = _gather_matched(quotes, idx)
    bid = matched.get_column("bid").to_numpy()
    ask = matched.get_column("ask").to_numpy()
    q_ts_all = quotes.get_column("ts_ns").cast(pl.Int64).to_numpy() if quotes.height else np.zeros(1, np.int64)
    codes = _flag_kernel(idx, t_ts, q_ts_all, bid, ask, int(settings.max_quote_age_ns))
    out = pl.concat([trades, matched], how="horizontal").with_columns(
        quote_age_ns=pl.col("ts_ns").cast(pl.Int64) - pl.col("quote_ts_ns")
    )
    return out.with_columns(nbbo_flag=pl.Series(codes).cat.to(FLAG_DTYPE))


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
