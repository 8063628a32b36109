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
O(n_trades + n_quotes), one read of the quote timestamps. A second parallel pass
gathers the matched quote columns and computes age and flag per trade. The kernels
fill output arrays allocated with numpy, which asks the OS for transparent huge
pages: first-touch page faults on 4 KiB pages (numba's own allocations) cost about as
much as the passes themselves.
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


_NO_QUOTE = 1  # index of "no_quote" in FLAGS


@numba.njit(cache=True, inline="always")
def _flag_code(has_quote, age, bid, ask, max_age):
    """``nbbo_flag`` code (index into :data:`FLAGS`) of one trade.

    ``age`` is ``trade.ts_ns - quote.ts_ns`` (int64 ns), ``bid`` / ``ask`` the matched
    quote (float64 dollars, NaN = empty side), ``max_age`` in ns; the first flag that
    applies in :data:`FLAGS` order wins.
    """
    if not has_quote:
        return _NO_QUOTE
    if age > max_age:
        return 2
    if np.isnan(bid) or np.isnan(ask):
        return 3
    if bid == 0.0:
        return 4
    if bid > ask:
        return 5
    if bid == ask:
        return 6
    return 0


@numba.njit(cache=True)
def _flag_kernel(idx, t_ts, q_ts, bid, ask, max_age):
    """``nbbo_flag`` codes (uint8, index into FLAGS) per trade, for quotes gathered by polars.

    ``idx`` (int64, n): matched quote row or -1; ``t_ts`` (int64 ns, n) trade times;
    ``q_ts`` (int64 ns, m) all quote times; ``bid`` / ``ask`` (float64 dollars, n)
    the matched quote, NaN where empty or unmatched; ``max_age`` in ns.
    """
    n = idx.shape[0]
    out = np.empty(n, dtype=np.uint8)
    for i in range(n):
        j = idx[i]
        age = t_ts[i] - q_ts[j] if j >= 0 else 0
        out[i] = _flag_code(j >= 0, age, bid[i], ask[i], max_age)
    return out

_MODE_AT_OR_BEFORE = 0
_MODE_STRICT_TIME = 1
_MODE_STRICT_SEQUENCE = 2
_MODE_AT_OR_BEFORE_SEQUENCE = 3

_BLOCK = 512
"""Rows per block of the branch-free (vectorised) scans in the kernels below."""


@numba.njit(cache=True)
def _count_changes(cur: np.ndarray, prev: np.ndarray) -> int:
    """How many ``cur[m] != prev[m]``: branch-free over 0-based views, so LLVM vectorises
    it (an index like ``i - 1`` would cost a negative-index check per element)."""
    c = 0
    for m in range(cur.shape[0]):
        c += cur[m] != prev[m]
    return c


@numba.njit(cache=True)
def _count_not_increasing(cur: np.ndarray, prev: np.ndarray) -> int:
    """How many ``cur[m] <= prev[m]``, vectorised like :func:`_count_changes`."""
    c = 0
    for m in range(cur.shape[0]):
        c += cur[m] <= prev[m]
    return c


@numba.njit(cache=True)
def _run_starts(codes: np.ndarray) -> np.ndarray:
    """Offsets where a run of equal codes starts, plus ``len(codes)`` at the end.

    ``codes`` (any integer dtype, n) is read once, counting the changes of each block
    branch-free (vectorised, at memory speed); only blocks with a change are scanned
    again for their offsets. Returns int64 ``[0, s_1, ..., s_k, n]`` (``[0]`` when n == 0).
    """
    n = codes.shape[0]
    n_blocks = (max(n - 1, 0) + _BLOCK - 1) // _BLOCK  # blocks over rows 1 .. n-1
    changes = np.zeros(n_blocks, dtype=np.int64)
    for b in range(n_blocks):
        lo = 1 + b * _BLOCK
        hi = min(lo + _BLOCK, n)
        changes[b] = _count_changes(codes[lo:hi], codes[lo - 1 : hi - 1])
    out = np.empty(changes.sum() + (2 if n else 1), dtype=np.int64)
    out[0] = 0
    k = 1 if n else 0
    for b in range(n_blocks):
        if changes[b]:
            lo = 1 + b * _BLOCK
            for i in range(lo, min(lo + _BLOCK, n)):
                if codes[i] != codes[i - 1]:
                    out[k] = i
                    k += 1
    out[k] = n
    return out


@numba.njit(cache=True)
def _first_unsorted(ts: np.ndarray, seq: np.ndarray, a: int, b: int) -> int:
    """First row ``k`` in ``(a, b)`` with ``(ts[k], seq[k]) < (ts[k-1], seq[k-1])``, or -1.

    ``ts`` / ``seq`` int64. Blocks whose timestamps strictly increase (checked
    branch-free) are skipped; only blocks with a tie or a step back compare sequences.
    """
    k = a + 1
    while k < b:
        e = min(k + _BLOCK, b)
        if _count_not_increasing(ts[k:e], ts[k - 1 : e - 1]):
            for m in range(k, e):
                if ts[m] < ts[m - 1] or (ts[m] == ts[m - 1] and seq[m] < seq[m - 1]):
                    return m
        k = e
    return -1


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
    out: np.ndarray,
):
    """Fill ``out`` (int64, one per trade) with the prevailing quote row (-1 when none),
    merging each instrument's runs.

    ``t_start`` / ``q_start`` (int64) are the run offsets of :func:`_run_starts`;
    ``t_ts``, ``t_seq``, ``q_ts``, ``q_seq`` int64 (ts in ns). ``pair_t[p]`` /
    ``pair_q[p]`` are the trade and quote runs of one instrument (-1 when the table has
    none); ``chunks`` splits the pairs into ranges of similar work run in parallel.
    ``mode`` is one of the ``_MODE_*`` cut-offs against ``cut = t_ts - lag_ns``.
    Every trade row is written: every trade run is in some pair.

    Also checks the ``(ts, seq)`` order inside every run and returns, per pair, the
    first out-of-order trade row and quote row (-1 when none). The matches assume that
    order (a prefix of each quote run qualifies); they are discarded when it fails.
    Quote timestamps are read once: the scan counts those not above their predecessor,
    and only a run with such a tie or step back is checked row by row with sequences.
    """
    n_pairs = pair_t.shape[0]
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
            t_bad[p] = _first_unsorted(t_ts, t_seq, ta, tb)
            # quotes qa .. j-1 qualify for the current trade; the scan also counts the quote
            # timestamps not above their predecessor ("suspects": a tie or a step back)
            j = qa
            prev = np.iinfo(np.int64).min
            suspects = 0
            for i in range(ta, tb):
                cut = t_ts[i] - lag_ns
                while j < qb:
                    x = q_ts[j]
                    if x > cut or (x == cut and mode != _MODE_AT_OR_BEFORE):
                        break
                    suspects += x <= prev
                    prev = x
                    j += 1
                if mode == _MODE_STRICT_SEQUENCE or mode == _MODE_AT_OR_BEFORE_SEQUENCE:
                    s = t_seq[i]  # quotes at the cut itself, by sequence
                    while j < qb and q_ts[j] == cut and (
                        q_seq[j] < s or (mode == _MODE_AT_OR_BEFORE_SEQUENCE and q_seq[j] == s)
                    ):
                        suspects += q_ts[j] <= prev
                        prev = q_ts[j]
                        j += 1
                out[i] = j - 1 if j > qa else -1
            rest = max(j, qa + 1)  # quotes after the run's last trade: checked apart, vectorised
            if rest < qb:
                suspects += _count_not_increasing(q_ts[rest:qb], q_ts[rest - 1 : qb - 1])
            q_bad[p] = _first_unsorted(q_ts, q_seq, qa, qb) if suspects else -1
    return t_bad, q_bad


@numba.njit(cache=True, parallel=True)
def _gather_flag_kernel(idx, t_ts, q_ts, bid, ask, bid_size, ask_size, max_age,
                        o_bid, o_ask, o_bid_size, o_ask_size, o_ts, o_age, o_flag):
    """Fill the ``o_*`` columns with the matched quote, its age and ``nbbo_flag``, in one pass.

    Inputs: ``idx`` (int64, n) matched quote row or -1; ``t_ts`` (int64 ns, n) trade
    times; quote columns of length m: ``q_ts`` (int64 ns), ``bid`` / ``ask`` (numeric
    dollars, no nulls), ``bid_size`` / ``ask_size`` (integers, read when the size
    outputs are not empty); ``max_age`` in ns.

    Outputs, length n, allocated by the caller with numpy (huge pages, see the module
    docstring): ``o_bid``, ``o_ask`` (float64 dollars), ``o_bid_size``, ``o_ask_size``
    (int64; length 0 without sizes), ``o_ts`` (quote ts_ns), ``o_age`` (trade minus
    quote ts_ns, int64 ns), ``o_flag`` (uint8 codes). Rows with ``idx < 0`` get 0 and ``no_quote``; the
    caller sets their nulls. All columns of a row are read together: the reads are
    cache misses, issuing them per row overlaps them. (Outputs are separate arguments:
    numba 0.68 loses a parallel loop's writes to arrays unpacked from a tuple.)
    """
    with_sizes = o_bid_size.shape[0] > 0
    for i in numba.prange(idx.shape[0]):
        k = idx[i]
        b = a = 0.0
        ts = age = bs = as_ = 0
        flag = _NO_QUOTE
        if k >= 0:
            b = np.float64(bid[k])
            a = np.float64(ask[k])
            ts = q_ts[k]
            age = t_ts[i] - ts
            if with_sizes:
                bs = np.int64(bid_size[k])
                as_ = np.int64(ask_size[k])
            flag = _flag_code(True, age, b, a, max_age)
        o_bid[i] = b
        o_ask[i] = a
        o_ts[i] = ts
        o_age[i] = age
        o_flag[i] = flag
        if with_sizes:
            o_bid_size[i] = bs
            o_ask_size[i] = as_


_SIZE_COLUMNS = ("bid_size", "ask_size")
_SIZE_DTYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)
"""Size dtypes the numba gather widens to int64 exactly as polars' cast does."""
_PRICE_DTYPES = (pl.Float32, pl.Float64, *_SIZE_DTYPES)
"""Price dtypes the numba gather converts to float64 exactly as polars' cast does."""


def _matched_quotes(
    quotes: pl.DataFrame, idx: np.ndarray, t_ts: np.ndarray, q_ts: np.ndarray, max_age: int
) -> pl.DataFrame:
    """The matched quote columns per trade: bid, ask (Float64), bid_size, ask_size,
    quote_ts_ns, quote_age_ns (Int64; all null where ``idx < 0``) and nbbo_flag.

    Integer / float prices, integer sizes without nulls go through one parallel numba
    pass (:func:`_gather_flag_kernel`); anything else through polars ``gather`` and
    :func:`_flag_kernel`. Only the matched rows are cast, never the whole quote table.
    """
    n = idx.shape[0]
    none = idx < 0
    has_sizes = [c in quotes.columns for c in _SIZE_COLUMNS]
    with_sizes = all(has_sizes)
    present = ["bid", "ask", *(c for c, h in zip(_SIZE_COLUMNS, has_sizes) if h)]
    fast = (
        quotes.height > 0
        and (with_sizes or not any(has_sizes))
        and all(quotes.schema[c] in _PRICE_DTYPES for c in ("bid", "ask"))
        and all(quotes.schema[c] in _SIZE_DTYPES for c in present[2:])
        and all(quotes.get_column(c).null_count() == 0 for c in present)
    )
    if fast:
        dummy = np.zeros(1, dtype=np.int64)
        sizes = [quotes.get_column(c).to_numpy() for c in _SIZE_COLUMNS] if with_sizes else [dummy, dummy]
        m = n if with_sizes else 0
        columns = {"bid": np.empty(n), "ask": np.empty(n), "bid_size": np.empty(m, np.int64),
                   "ask_size": np.empty(m, np.int64), "quote_ts_ns": np.empty(n, np.int64),
                   "quote_age_ns": np.empty(n, np.int64)}
        codes = np.empty(n, dtype=np.uint8)
        _gather_flag_kernel(
            idx, t_ts, q_ts, quotes.get_column("bid").to_numpy(), quotes.get_column("ask").to_numpy(),
            *sizes, max_age, *columns.values(), codes,
        )
        mask = pl.Series(none) if none.any() else None
        series = []
        for name, values in columns.items():
            if name in _SIZE_COLUMNS and not with_sizes:
                series.append(pl.repeat(None, n, dtype=pl.Int64, eager=True).alias(name))
            else:
                s = pl.Series(name, values)
                series.append(s if mask is None else s.set(mask, None))
        matched = pl.DataFrame(series)
    else:
        picked = quotes.select(*present, "ts_ns")
        take = pl.Series("idx", idx).set(pl.Series(none), None)
        picked = picked.select(pl.all().gather(take)) if quotes.height else picked.clear(n)
        matched = picked.select(
            pl.col("bid").cast(pl.Float64),
            pl.col("ask").cast(pl.Float64),
            *[(pl.col(c).cast(pl.Int64) if c in present else pl.lit(None, dtype=pl.Int64)).alias(c) for c in _SIZE_COLUMNS],
            pl.col("ts_ns").cast(pl.Int64).alias("quote_ts_ns"),
        ).with_columns(quote_age_ns=pl.Series(t_ts) - pl.col("quote_ts_ns"))
        codes = _flag_kernel(
            idx, t_ts, q_ts, matched.get_column("bid").to_numpy(), matched.get_column("ask").to_numpy(), max_age
        )
    return matched.with_columns(nbbo_flag=pl.Series(codes).cat.to(FLAG_DTYPE))


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
    idx = np.empty(trades.height, dtype=np.int64)
    t_bad, q_bad = _asof_runs_kernel(
        t_start, t_ts, t_seq, q_start, q_ts, q_seq, pair_t, pair_q, chunks, int(settings.lag_ns), mode, idx
    )
    for table, values, start, desc, bad, ts, seq in (
        ("trades", t_inst, t_start, t_desc, t_bad, t_ts, t_seq),
        ("quotes", q_inst, q_start, q_desc, q_bad, q_ts, q_seq),
    ):
        rows = [int(start[desc])] if desc >= 0 else []
        rows += [int(b) for b in bad[bad >= 0]]
        if rows:
            _raise_unsorted(table, instrument, values, ts, seq, min(rows))

    matched = _matched_quotes(quotes, idx, t_ts, q_ts, int(settings.max_quote_age_ns))
    return pl.concat([trades, matched], how="horizontal")


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
