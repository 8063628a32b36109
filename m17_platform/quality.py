"""Data-quality checks of lake tables, run as Great Expectations suites.

Every table gets a fixed, named set of checks that depends only on its
:class:`~m17_platform.schemas.TableSchema` (:func:`check_names`), so Dagster can declare
one asset check per name before any data exists. :func:`validate_table` runs them on one
partition as **one** Great Expectations (GE) 1.x suite and returns one
:class:`CheckOutcome` per name, in the same order.

======================  ========  ===================================================
check                   severity  what it asserts (GE expectations behind it)
======================  ========  ===================================================
``schema``              ERROR     columns in schema order (``ExpectTableColumnsToMatch
                                  OrderedList``) and each column's dtype equal to the
                                  schema's (compared on the polars schema, see below)
``nulls``               ERROR     no nulls in required columns; the quote pair
                                  (``bid``/``ask``, ``*_px_00``) at most
                                  ``max_null_rate`` null (``ExpectColumnValuesToNotBeNull``)
``positive_prices``     WARN      ``spec.positive`` columns > 0 where present
                                  (``ExpectColumnValuesToBeBetween``, strict minimum 0)
``bid_le_ask``          WARN      bid <= ask on at least ``min_bid_le_ask_rate`` of the
                                  two-sided quotes (``ExpectColumnPairValuesAToBeGreater
                                  ThanB``)
``in_session``          WARN      ``ts_ns`` in the session window of the trade date (per
                                  option root: Cboe index roots close later) on at least
                                  ``min_in_session_rate`` of the rows
``sorted``              ERROR     stored order: ``(ts_ns, sequence)`` non-decreasing within
                                  each instrument, or the table's sort key overall
``duplicates``          WARN      at most ``max_duplicate_rate`` of the rows share their
                                  dedup key with another row, every copy counted as GE
                                  counts (``ExpectCompoundColumnsToBeUnique``)
======================  ========  ===================================================

How the suite runs
------------------
GE 1.x has no polars datasource, so the frame goes through ``frame.to_pandas()`` into the
pandas datasource of an ephemeral GE context. The context, its datasource and its
whole-dataframe batch definition are built once per process (GE's import alone takes
several seconds, so it is imported on first use, not when this module is imported); each
call builds a fresh, unregistered suite and validates one batch. Progress bars are turned
off through the context's ``progress_bars`` config (``ProgressBarsConfig(globally=False)``)
and the ``great_expectations`` logger is set to WARNING unless the host configured it.

Two checks need row-wise facts GE has no expectation for: the per-row session window
(it depends on the row's option root) and the order within each instrument. They are
derived with polars before the conversion, as the boolean columns ``_in_session`` and
``_in_order``, and GE expects them to be ``True`` (``ExpectColumnValuesToBeInSet``).

Dtypes are compared on the polars schema rather than with GE's type expectations: after
``to_pandas()`` a nullable int64 column with a null becomes float64 and a nullable bool
becomes object, so GE's pandas type names do not say what the lake holds. List columns
(``conditions``) reach GE Arrow-backed (``pd.ArrowDtype``): GE fingerprints each batch by
hashing it and pickles the whole frame when a column is unhashable, which with numpy
list cells took half of a call's time.

Empty frames skip GE (``ge_skipped`` in the metadata): there is nothing to validate, and
an empty frame with the schema's columns and dtypes passes every check (the column and
dtype comparison still runs).

Pairing GE results with checks goes through each expectation's ``meta`` (GE does not
return results in the order the expectations were added). GE counts for a check with
several expectations are summed (``ge_unexpected_count``) and the largest fraction kept
(``ge_unexpected_fraction``); an expectation whose metric could not be computed fails its
check with ``ge_error`` in the metadata.

A check whose columns are missing or mistyped is not evaluated: it fails, and its metadata
says which columns (``not_evaluated``); the ``schema`` check reports the cause.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import pandas as pd
import polars as pl

from m17_platform.calendar import futures_session_ns, session_window_ns
from m17_platform.schemas import TableSchema, empty_frame
from m17_platform.settings import DEFAULT, QualitySettings, SessionSettings

ERROR = "ERROR"
WARN = "WARN"

CHECK_ORDER: tuple[str, ...] = (
    "schema",
    "nulls",
    "positive_prices",
    "bid_le_ask",
    "in_session",
    "sorted",
    "duplicates",
)
"""Every check name, in the order :func:`check_names` and :func:`validate_table` use."""

CHECK_SEVERITY: dict[str, str] = {
    "schema": ERROR,
    "nulls": ERROR,
    "positive_prices": WARN,
    "bid_le_ask": WARN,
    "in_session": WARN,
    "sorted": ERROR,
    "duplicates": WARN,
}
"""Severity of a failure: ``ERROR`` (the partition is unusable) or ``WARN`` (usable, flagged)."""

CHECK_DESCRIPTIONS: dict[str, str] = {
    "schema": "columns and dtypes match the table schema, in schema order",
    "nulls": "required columns have no nulls; bid/ask null rate within the limit",
    "positive_prices": "price columns are > 0 where present",
    "bid_le_ask": "bid <= ask on (almost) every two-sided quote",
    "in_session": "ts_ns lies in the trade date's session window (per option root)",
    "sorted": "rows are in stored order: ts_ns, sequence non-decreasing per instrument",
    "duplicates": "(almost) no two rows share a dedup key",
}
"""One generic line per check; :func:`check_description` with a spec adds columns and thresholds."""

IN_SESSION_COLUMN = "_in_session"
IN_ORDER_COLUMN = "_in_order"
MATCHING_BID_COLUMN = "_bid_matching"
MATCHING_ASK_COLUMN = "_ask_matching"
_HELPER_COLUMNS = (IN_SESSION_COLUMN, IN_ORDER_COLUMN, MATCHING_BID_COLUMN, MATCHING_ASK_COLUMN)
_META_KEY = "m17_check"
_META_LABEL = "m17_label"
_NULLABLE_PREFIX = "nullable:"
_ERROR_CHARS = 300

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one named quality check on one table partition.

    name : check name (``schema``, ``nulls``, ``positive_prices``, ``bid_le_ask``,
        ``in_session``, ``sorted``, ``duplicates``).
    passed : whether the check passed.
    severity : ``ERROR`` (the partition is unusable) or ``WARN`` (usable, flagged).
    description : one line saying what was checked, with the threshold.
    metadata : statistics (counts, rates as fractions, thresholds), JSON-serialisable scalars.
    """

    name: str
    passed: bool
    severity: str
    description: str
    metadata: dict = field(default_factory=dict)


TIMING_KEYS = ("suite_seconds", "ge_seconds")
"""Metadata keys of a :class:`CheckOutcome` that time the run (seconds) rather than
describe the data: shown with the check's evaluation in Dagster, left out of the outcomes
recorded beside a partition and of the daily report, so a rerun on the same data records
the same bytes."""


def without_timings(outcome: CheckOutcome) -> CheckOutcome:
    """``outcome`` without the :data:`TIMING_KEYS` in its metadata (a new CheckOutcome)."""
    meta = {k: v for k, v in outcome.metadata.items() if k not in TIMING_KEYS}
    return replace(outcome, metadata=meta)


@dataclass(frozen=True)
class CheckInfo:
    """What Dagster needs to declare a check before any data exists."""

    name: str
    severity: str
    description: str


# --- which checks, and how they are described -------------------------------------------


def _sorted_plan(spec: TableSchema) -> tuple[str | None, tuple[str, ...]]:
    """(group column, order keys) of the ``sorted`` check; keys empty if it does not apply."""
    if spec.instrument is not None and "ts_ns" in spec.columns:
        keys = ("ts_ns",) + (("sequence",) if "sequence" in spec.columns else ())
        return spec.instrument, keys
    return None, tuple(spec.sort_key)


def check_names(spec: TableSchema) -> tuple[str, ...]:
    """The checks that apply to table ``spec``, in :data:`CHECK_ORDER`.

    Depends on the spec only (never on data), so asset-check specs can be declared
    up front: ``schema``, ``nulls`` and ``duplicates`` always; ``positive_prices`` if
    the table has positive price columns; ``bid_le_ask`` if it has a quote pair;
    ``in_session`` if it has a session kind; ``sorted`` if it has an instrument and a
    ``ts_ns`` column, or else a sort key.
    """
    applies = {
        "schema": True,
        "nulls": True,
        "positive_prices": bool(spec.positive),
        "bid_le_ask": spec.quote_pair is not None,
        "in_session": spec.session_kind is not None,
        "sorted": bool(_sorted_plan(spec)[1]),
        "duplicates": bool(spec.dedup_key),
    }
    return tuple(name for name in CHECK_ORDER if applies[name])


def check_severity(name: str) -> str:
    """``ERROR`` or ``WARN`` for check ``name`` (``KeyError`` names the known checks)."""
    try:
        return CHECK_SEVERITY[name]
    except KeyError:
        raise KeyError(f"unknown quality check {name!r}; known checks: {list(CHECK_ORDER)}") from None


def _pct(rate: float) -> str:
    return f"{rate * 100:g}%"


def check_description(
    name: str, spec: TableSchema | None = None, quality: QualitySettings = DEFAULT.quality
) -> str:
    """One line saying what check ``name`` asserts.

    Without ``spec`` the generic line of :data:`CHECK_DESCRIPTIONS`; with it, the line
    names the table's columns and the thresholds of ``quality``.
    """
    check_severity(name)
    if spec is None:
        return CHECK_DESCRIPTIONS[name]
    if name == "schema":
        return f"the {len(spec.columns)} columns of {spec.name}, in schema order, with the schema's dtypes"
    if name == "nulls":
        line = f"no nulls in the {len(spec.required)} required columns"
        if spec.quote_pair:
            line += f"; {'/'.join(spec.quote_pair)} at most {_pct(quality.max_null_rate)} null"
        return line
    if name == "positive_prices":
        return f"{', '.join(spec.positive)} > 0 where present"
    if name == "bid_le_ask":
        bid, ask = spec.quote_pair or ("bid", "ask")
        return f"{bid} <= {ask} on at least {_pct(quality.min_bid_le_ask_rate)} of two-sided quotes"
    if name == "in_session":
        return (
            f"ts_ns in the {spec.session_kind} session window of the trade date "
            f"on at least {_pct(quality.min_in_session_rate)} of rows"
        )
    if name == "sorted":
        group, keys = _sorted_plan(spec)
        where = f" within each {group}" if group else ""
        return f"({', '.join(keys)}) non-decreasing{where}, in stored order"
    return f"at most {_pct(quality.max_duplicate_rate)} of rows share a ({', '.join(spec.dedup_key)}) key"


def check_infos(spec: TableSchema, quality: QualitySettings = DEFAULT.quality) -> tuple[CheckInfo, ...]:
    """Name, severity and description of every check of ``spec``, in :func:`check_names` order."""
    return tuple(CheckInfo(n, check_severity(n), check_description(n, spec, quality)) for n in check_names(spec))


# --- the Great Expectations engine, built once per process -------------------------------


class _Engine:
    """An ephemeral GE context with one pandas datasource and a whole-dataframe batch."""

    def __init__(self) -> None:
        gx_logger = logging.getLogger("great_expectations")
        if gx_logger.level == logging.NOTSET:
            gx_logger.setLevel(logging.WARNING)
        started = time.perf_counter()
        import great_expectations as gx
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        )
        self.gx = gx
        self.context = gx.get_context(mode="ephemeral", project_config=config)
        asset = self.context.data_sources.add_pandas(name="m17_quality").add_dataframe_asset(name="frame")
        self.batch_definition = asset.add_batch_definition_whole_dataframe(name="whole_frame")
        self.setup_seconds = time.perf_counter() - started
        self.lock = threading.Lock()

    def validate(self, pdf: pd.DataFrame, suite_name: str, expectations: list) -> list:
        suite = self.gx.ExpectationSuite(name=suite_name, expectations=expectations)
        with self.lock:
            batch = self.batch_definition.get_batch(batch_parameters={"dataframe": pdf})
            return list(batch.validate(suite, result_format="BASIC").results)


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def _engine() -> _Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine()
        return _ENGINE


def warm_up() -> float:
    """Import GE and build its context now (else the first :func:`validate_table` does).

    Returns the seconds it took (0 if already done).
    """
    if _ENGINE is not None:
        return 0.0
    return _engine().setup_seconds


# --- helpers ---------------------------------------------------------------------------


def _iso(ns: int | None) -> str:
    if ns is None:
        return ""
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat()


def _fraction(part: int, whole: int) -> float:
    return float(part) / whole if whole else 0.0


_DTYPES: dict[str, tuple] = {}


def _expected_dtypes(spec: TableSchema) -> dict[str, pl.DataType]:
    cached = _DTYPES.get(spec.name)
    if cached is None or cached[0] is not spec.schema:
        cached = (spec.schema, dict(empty_frame(spec).schema))
        _DTYPES[spec.name] = cached
    return cached[1]


class _Suite:
    """Expectations tagged with the check they belong to, plus per-check metadata."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.expectations: list = []
        self.meta: dict[str, dict] = {n: {} for n in names}
        self.own_failures: dict[str, list[str]] = {n: [] for n in names}
        self.not_evaluated: dict[str, list[str]] = {n: [] for n in names}

    def add(self, check: str, label: str, expectation_cls, **kwargs) -> None:
        self.expectations.append(expectation_cls(meta={_META_KEY: check, _META_LABEL: label}, **kwargs))


def _to_pandas(frame: pl.DataFrame) -> pd.DataFrame:
    """``frame.to_pandas()``, except that list columns stay Arrow-backed (``pd.ArrowDtype``).

    GE fingerprints every batch with ``pd.util.hash_pandas_object`` and falls back to
    pickling the whole frame when a column is unhashable; numpy-object list cells made
    that pickle most of a call's time (0.8 s of 1.7 s on 60k option prints).
    """
    nested = [c for c, dtype in frame.schema.items() if dtype.is_nested()]
    if not nested:
        return frame.to_pandas()
    pdf = frame.drop(nested).to_pandas()
    for position, column in enumerate(frame.columns):
        if column in nested:
            pdf.insert(position, column, pd.arrays.ArrowExtensionArray(frame.get_column(column).to_arrow()))
    return pdf


def _order_ok(keys: tuple[str, ...], group: str | None) -> pl.Expr:
    """True where a row's keys are >= the previous row's (of the same group), lexicographically."""
    before = pl.lit(False)
    equal = pl.lit(True)
    for key in keys:
        prev = pl.col(key).shift(1)
        if group is not None:
            prev = prev.over(group)
        before = before | (equal & (pl.col(key) < prev)).fill_null(False)
        equal = equal & (pl.col(key) == prev).fill_null(False)
    return ~before


# --- validation ------------------------------------------------------------------------


def validate_table(
    frame: pl.DataFrame,
    spec: TableSchema,
    trade_date: dt.date,
    *,
    quality: QualitySettings = DEFAULT.quality,
    sessions: SessionSettings = DEFAULT.sessions,
) -> list[CheckOutcome]:
    """Run the quality checks of ``spec`` on one partition, as one GE suite.

    Parameters
    ----------
    frame : polars.DataFrame
        The partition's rows, as the lake stores them (schema columns, stored order).
    spec : TableSchema
        The table.
    trade_date : datetime.date
        The partition's trade date (bounds the ``in_session`` check).
    quality : QualitySettings
        Thresholds.
    sessions : SessionSettings
        Session rules (calendars, late-close roots).

    Returns
    -------
    list[CheckOutcome]
        One per name of :func:`check_names`, in that order. Every metadata dict holds
        ``rows``, the thresholds used, GE's ``ge_unexpected_count`` /
        ``ge_unexpected_fraction`` where the check's expectations report them, and
        ``suite_seconds`` (wall time of the whole call) and ``ge_seconds`` (GE's part).
        An empty frame skips GE (``ge_skipped``); with the schema's columns and dtypes,
        all its checks pass.

    Raises
    ------
    CalendarError
        If the table has a session kind and ``trade_date`` is not a session.
    """
    started = time.perf_counter()
    names = check_names(spec)
    rows = frame.height
    expected = _expected_dtypes(spec)
    suite = _Suite(names)

    def usable(column: str) -> bool:
        return column in frame.columns and frame.schema[column] == expected.get(column)

    def need(check: str, columns) -> bool:
        bad = [c for c in columns if not usable(c)]
        suite.not_evaluated[check].extend(bad)
        return not bad

    # schema: our dtype comparison on the polars schema, GE's ordered column list.
    missing = [c for c in spec.columns if c not in frame.columns]
    unexpected = [c for c in frame.columns if c not in spec.columns]
    mismatched = [
        f"{c}: {frame.schema[c]} (want {expected[c]})"
        for c in spec.columns
        if c in frame.columns and frame.schema[c] != expected[c]
    ]
    suite.meta["schema"].update(
        columns=len(frame.columns),
        missing_columns=",".join(missing),
        unexpected_columns=",".join(unexpected),
        dtype_mismatch_count=len(mismatched),
        dtype_mismatches="; ".join(mismatched),
    )
    if mismatched:
        suite.own_failures["schema"].append("dtype mismatch")
    if missing or unexpected:
        suite.own_failures["schema"].append("columns differ")

    derived: dict[str, pl.Expr] = {}
    gx = None if rows == 0 else _engine().gx

    def add(check: str, label: str, cls_name: str, **kwargs) -> None:
        if gx is not None:
            suite.add(check, label, getattr(gx.expectations, cls_name), **kwargs)

    # nulls
    pair = tuple(spec.quote_pair or ())
    suite.meta["nulls"]["max_null_rate"] = float(quality.max_null_rate)
    for column in spec.required:
        if column in frame.columns:
            add("nulls", column, "ExpectColumnValuesToNotBeNull", column=column, mostly=1.0)
        else:
            suite.not_evaluated["nulls"].append(column)
    for column in pair:
        if column in frame.columns:
            add(
                "nulls", _NULLABLE_PREFIX + column, "ExpectColumnValuesToNotBeNull",
                column=column, mostly=1.0 - quality.max_null_rate,
            )
        else:
            suite.not_evaluated["nulls"].append(column)

    # positive prices
    if "positive_prices" in names:
        for column in spec.positive:
            if need("positive_prices", [column]):
                add("positive_prices", column, "ExpectColumnValuesToBeBetween", column=column, min_value=0, strict_min=True)

    # bid <= ask
    if "bid_le_ask" in names:
        bid, ask = pair
        meta = suite.meta["bid_le_ask"]
        meta["min_bid_le_ask_rate"] = float(quality.min_bid_le_ask_rate)
        if need("bid_le_ask", pair):
            # NaN is missing, as pandas (and so GE) sees it; polars would order NaN above every price.
            b, a = pl.col(bid).fill_nan(None), pl.col(ask).fill_nan(None)
            checked_bid, checked_ask = bid, ask
            if spec.session_kind == "futures" and usable("ts_ns"):
                # Before the CME open (the pre-open and its opening auction) orders may
                # cross without matching: such books are counted, not held against the check.
                open_ns = futures_session_ns(trade_date, sessions)[0]
                auction = pl.col("ts_ns") < open_ns
                derived[MATCHING_BID_COLUMN] = pl.when(auction).then(None).otherwise(b)
                derived[MATCHING_ASK_COLUMN] = pl.when(auction).then(None).otherwise(a)
                checked_bid, checked_ask = MATCHING_BID_COLUMN, MATCHING_ASK_COLUMN
                meta["preopen_crossed"] = int(frame.select((auction & (b > a)).sum()).item())
                meta["matching_open"] = _iso(open_ns)
                b, a = pl.col(MATCHING_BID_COLUMN), pl.col(MATCHING_ASK_COLUMN)
                frame_stats = frame.with_columns(**{k: derived[k] for k in (MATCHING_BID_COLUMN, MATCHING_ASK_COLUMN)})
            else:
                frame_stats = frame
            add(
                "bid_le_ask", f"{bid}<={ask}", "ExpectColumnPairValuesAToBeGreaterThanB",
                column_A=checked_ask, column_B=checked_bid, or_equal=True, ignore_row_if="either_value_is_missing",
                mostly=quality.min_bid_le_ask_rate,
            )
            both = b.is_not_null() & a.is_not_null()
            stats = frame_stats.select(
                two_sided=both.sum(),
                crossed=(b > a).sum(),
                locked=(b == a).sum(),
                zero_bid=(both & (b == 0)).sum(),
            ).row(0, named=True)
            two, crossed = int(stats["two_sided"]), int(stats["crossed"])
            meta.update(
                two_sided=two,
                crossed=crossed,
                locked=int(stats["locked"]),
                zero_bid=int(stats["zero_bid"]),
                crossed_rate=_fraction(crossed, two),
                locked_rate=_fraction(int(stats["locked"]), two),
                zero_bid_rate=_fraction(int(stats["zero_bid"]), two),
                bid_le_ask_rate=1.0 - _fraction(crossed, two),
            )

    # in session: a per-row window (option roots may close later), as a boolean column.
    if "in_session" in names:
        meta = suite.meta["in_session"]
        meta["min_in_session_rate"] = float(quality.min_in_session_rate)
        kind = spec.session_kind
        default = session_window_ns(kind, trade_date, None, sessions)
        lo_expr, hi_expr = pl.lit(default[0], pl.Int64), pl.lit(default[1], pl.Int64)
        windows = {None: default}
        if kind == "option" and usable("root"):
            roots = [r for r in frame.get_column("root").unique().to_list() if r is not None]
            windows = {r: session_window_ns(kind, trade_date, r, sessions) for r in roots} or windows
            odd = {r: w for r, w in windows.items() if w != default}
            if odd:
                lo_expr = pl.col("root").replace_strict(
                    {r: w[0] for r, w in odd.items()}, default=default[0], return_dtype=pl.Int64
                )
                hi_expr = pl.col("root").replace_strict(
                    {r: w[1] for r, w in odd.items()}, default=default[1], return_dtype=pl.Int64
                )
        meta.update(
            window_start=_iso(min(w[0] for w in windows.values())),
            window_end=_iso(max(w[1] for w in windows.values())),
            late_close_roots=",".join(sorted(r for r, w in windows.items() if r is not None and w[1] > default[1])),
        )
        if need("in_session", ["ts_ns"]):
            ts = pl.col("ts_ns")
            derived[IN_SESSION_COLUMN] = (ts >= lo_expr) & (ts <= hi_expr)
            add(
                "in_session", "ts_ns in window", "ExpectColumnValuesToBeInSet",
                column=IN_SESSION_COLUMN, value_set=[True], mostly=quality.min_in_session_rate,
            )
            stats = frame.select(
                before=(ts < lo_expr).sum(),
                after=(ts > hi_expr).sum(),
                timed=ts.count(),
                first=ts.min(),
                last=ts.max(),
            ).row(0, named=True)
            outside = int(stats["before"]) + int(stats["after"])
            meta.update(
                rows_outside=outside,
                rows_before_window=int(stats["before"]),
                rows_after_window=int(stats["after"]),
                outside_rate=_fraction(outside, int(stats["timed"])),
                in_session_rate=1.0 - _fraction(outside, int(stats["timed"])),
                first_ts=_iso(stats["first"]),
                last_ts=_iso(stats["last"]),
            )

    # sorted: stored order within each instrument (or overall by the sort key).
    if "sorted" in names:
        group, keys = _sorted_plan(spec)
        meta = suite.meta["sorted"]
        meta["order"] = ",".join(keys) + (f" within {group}" if group else "")
        if need("sorted", ([group] if group else []) + list(keys)):
            ok = frame.select(_order_ok(keys, group).alias("ok")).get_column("ok")
            bad = int((~ok).sum())
            meta.update(
                out_of_order=bad,
                out_of_order_rate=_fraction(bad, rows),
                first_out_of_order_row=int((~ok).arg_max()) if bad else -1,
            )
            if group is not None:
                meta["instruments"] = int(frame.get_column(group).n_unique())
            derived[IN_ORDER_COLUMN] = _order_ok(keys, group)
            add("sorted", "stored order", "ExpectColumnValuesToBeInSet", column=IN_ORDER_COLUMN, value_set=[True], mostly=1.0)

    # duplicates
    if "duplicates" in names:
        key = list(spec.dedup_key)
        meta = suite.meta["duplicates"]
        meta["max_duplicate_rate"] = float(quality.max_duplicate_rate)
        if need("duplicates", key):
            shared = int(frame.select(key).is_duplicated().sum())
            meta.update(
                duplicate_rows=shared,
                duplicate_rate=_fraction(shared, rows),
                redundant_rows=rows - (frame.select(key).n_unique() if rows else 0),
            )
            mostly = 1.0 - quality.max_duplicate_rate
            if len(key) == 1:
                add("duplicates", key[0], "ExpectColumnValuesToBeUnique", column=key[0], mostly=mostly)
            else:
                add("duplicates", ",".join(key), "ExpectCompoundColumnsToBeUnique", column_list=key, mostly=mostly)

    # schema: GE's ordered column list (the helper columns are appended to the batch).
    add("schema", "column_order", "ExpectTableColumnsToMatchOrderedList", column_list=list(spec.columns) + list(derived))

    # one GE suite over the pandas frame
    results_by_check: dict[str, list] = {n: [] for n in names}
    ge_seconds = 0.0
    if gx is not None:
        pdf = _to_pandas(frame.with_columns(**derived) if derived else frame)
        ge_started = time.perf_counter()
        results = _engine().validate(pdf, f"m17_{spec.name}", suite.expectations)
        ge_seconds = time.perf_counter() - ge_started
        for result in results:
            check = (result.expectation_config.meta or {}).get(_META_KEY)
            if check in results_by_check:
                results_by_check[check].append(result)

    elapsed = time.perf_counter() - started
    outcomes = []
    for name in names:
        meta = {"rows": rows}
        meta.update(suite.meta[name])
        failures = list(suite.own_failures[name])
        if suite.not_evaluated[name] and name != "schema":
            meta["not_evaluated"] = "columns missing or mistyped: " + ",".join(dict.fromkeys(suite.not_evaluated[name]))
            failures.append("not evaluated")
        if gx is None:
            meta["ge_skipped"] = "empty frame: GE not run, nothing to validate"
        else:
            failures += _ge_metadata(name, results_by_check[name], meta)
        meta["suite_seconds"] = round(elapsed, 4)
        meta["ge_seconds"] = round(ge_seconds, 4)
        outcomes.append(
            CheckOutcome(
                name=name,
                passed=not failures,
                severity=check_severity(name),
                description=check_description(name, spec, quality),
                metadata=meta,
            )
        )
    return outcomes


# --- partitions larger than one batch ------------------------------------------------------

_NOT_ADDITIVE = {"columns", "dtype_mismatch_count", "ge_expectations", "first_out_of_order_row"}


def _merged_meta(
    name: str, spec: TableSchema, metas: list[dict], offsets: list[int], quality: QualitySettings
) -> tuple[dict, list[str]]:
    """Sum one check's batch statistics, recompute its rates, and decide it on the totals."""
    out: dict = {}
    for meta in metas:
        for key, value in meta.items():
            if key in _NOT_ADDITIVE or key not in out:
                out.setdefault(key, value)
            elif isinstance(value, bool) or not isinstance(value, int | float):
                continue
            elif key.endswith(("_rate", "_fraction")) or key.startswith(("max_", "min_")):
                continue
            else:
                out[key] = out[key] + value
    rows = int(out.get("rows", 0))
    failures: list[str] = []
    if any("not_evaluated" in m for m in metas):
        failures.append("not evaluated")
    if any("ge_error" in m for m in metas):
        failures.append("metric error")
    if "ge_unexpected_fraction" in out:
        out["ge_unexpected_fraction"] = max(float(m.get("ge_unexpected_fraction", 0.0)) for m in metas)
    if name == "schema":
        if any(m.get("dtype_mismatch_count") or m.get("missing_columns") or m.get("unexpected_columns") for m in metas):
            failures.append("columns differ")
        if not all(m.get("column_order_ok", True) for m in metas):
            failures.append("expectations failed")
    elif name == "nulls":
        for key in [k for k in out if k.endswith("_null_count")]:
            out[key.removesuffix("_count") + "_rate"] = _fraction(int(out[key]), rows)
        if int(out.get("required_null_count", 0)):
            failures.append("required nulls")
        with_nulls = {c for m in metas for c in str(m.get("required_columns_with_nulls", "")).split(",") if c}
        out["required_columns_with_nulls"] = ",".join(c for c in spec.columns if c in with_nulls)
        if any(out.get(f"{c}_null_rate", 0.0) > quality.max_null_rate for c in spec.quote_pair or ()):
            failures.append("null rate above limit")
    elif name == "positive_prices":
        if any(int(v) for k, v in out.items() if k.endswith("_nonpositive")):
            failures.append("non-positive prices")
    elif name == "bid_le_ask" and "two_sided" in out:
        two = int(out["two_sided"])
        for key in ("crossed", "locked", "zero_bid"):
            out[f"{key}_rate"] = _fraction(int(out.get(key, 0)), two)
        out["bid_le_ask_rate"] = 1.0 - out["crossed_rate"]
        if out["bid_le_ask_rate"] < quality.min_bid_le_ask_rate:
            failures.append("crossed quotes above limit")
    elif name == "in_session" and "rows_outside" in out:
        out["outside_rate"] = _fraction(int(out["rows_outside"]), rows)
        out["in_session_rate"] = 1.0 - out["outside_rate"]
        firsts = [m["first_ts"] for m in metas if m.get("first_ts")]
        lasts = [m["last_ts"] for m in metas if m.get("last_ts")]
        out["first_ts"], out["last_ts"] = (min(firsts) if firsts else ""), (max(lasts) if lasts else "")
        if out["in_session_rate"] < quality.min_in_session_rate:
            failures.append("rows outside the session above limit")
    elif name == "sorted" and "out_of_order" in out:
        out["out_of_order_rate"] = _fraction(int(out["out_of_order"]), rows)
        firsts = [off + int(m["first_out_of_order_row"]) for m, off in zip(metas, offsets) if int(m.get("first_out_of_order_row", -1)) >= 0]
        out["first_out_of_order_row"] = min(firsts) if firsts else -1
        if int(out["out_of_order"]):
            failures.append("rows out of order")
    elif name == "duplicates" and "duplicate_rows" in out:
        out["duplicate_rate"] = _fraction(int(out["duplicate_rows"]), rows)
        if out["duplicate_rate"] > quality.max_duplicate_rate:
            failures.append("duplicates above limit")
    out.pop("ge_failed", None)
    failed = sorted({f for m in metas for f in str(m.get("ge_failed", "")).split(",") if f})
    if failed:
        out["ge_failed_in_a_batch"] = ",".join(failed)
    return out, failures


def validate_batches(
    batches: Iterable[pl.DataFrame],
    spec: TableSchema,
    trade_date: dt.date,
    *,
    quality: QualitySettings = DEFAULT.quality,
    sessions: SessionSettings = DEFAULT.sessions,
) -> list[CheckOutcome]:
    """Run the checks of ``spec`` over a partition given in batches, one GE suite per
    batch, and decide each check on the partition's totals.

    The batches must not split an instrument (:meth:`m17_platform.lake.Lake.iter_batches`),
    so order and duplicate keys (which lead with the instrument) are whole within a
    batch. Counts are summed over the batches, rates recomputed from the sums, and each
    check passes or fails against its threshold on the totals, exactly as one suite
    over the whole partition would; ``ge_unexpected_fraction`` is the largest of any
    batch, and a batch whose own suite failed a ``mostly`` expectation the totals pass
    is named in ``ge_failed_in_a_batch``. One batch is :func:`validate_table` itself.

    Returns
    -------
    list[CheckOutcome]
        One per :func:`check_names`; metadata adds ``batches``.

    Raises
    ------
    CalendarError
        If the table has a session kind and ``trade_date`` is not a session.
    """
    per_batch: list[list[CheckOutcome]] = []
    offsets: list[int] = []
    seen = 0
    for batch in batches:
        offsets.append(seen)
        seen += batch.height
        per_batch.append(validate_table(batch, spec, trade_date, quality=quality, sessions=sessions))
    if not per_batch:
        return validate_table(empty_frame(spec), spec, trade_date, quality=quality, sessions=sessions)
    if len(per_batch) == 1:
        return per_batch[0]
    outcomes = []
    for i, name in enumerate(check_names(spec)):
        metas = [b[i].metadata for b in per_batch]
        meta, failures = _merged_meta(name, spec, metas, offsets, quality)
        meta["batches"] = len(per_batch)
        outcomes.append(
            CheckOutcome(
                name=name,
                passed=not failures,
                severity=check_severity(name),
                description=check_description(name, spec, quality),
                metadata=meta,
            )
        )
    return outcomes


def _ge_metadata(name: str, results: list, meta: dict) -> list[str]:
    """Fold GE's results for check ``name`` into ``meta``; return the reasons it failed."""
    failures: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    count, fraction, counted = 0, 0.0, False
    required_nulls: dict[str, int] = {}
    for result in results:
        config = result.expectation_config
        label = str((config.meta or {}).get(_META_LABEL, config.type))
        body = result.result or {}
        if not result.success and not body:
            # The metric was never computed: a configuration problem, not a finding.
            infos = result.exception_info if isinstance(result.exception_info, dict) else {}
            info = next(iter(infos.values()), {}) if infos else {}
            message = info.get("exception_message", "") if isinstance(info, dict) else ""
            errors.append(f"{label}: {message or 'metric error'}")
            continue
        if not result.success:
            failed.append(label)
        unexpected = body.get("unexpected_count")
        if unexpected is not None:
            counted = True
            count += int(unexpected)
            percent = body.get("unexpected_percent")
            if percent is not None and not math.isnan(float(percent)):
                fraction = max(fraction, float(percent) / 100.0)
        if name == "nulls" and unexpected is not None:
            column = config.kwargs.get("column")
            if label.startswith(_NULLABLE_PREFIX):
                meta[f"{column}_null_count"] = int(unexpected)
                meta[f"{column}_null_rate"] = _fraction(int(unexpected), int(body.get("element_count") or 0))
            else:
                required_nulls[column] = int(unexpected)
        if name == "positive_prices" and unexpected is not None:
            meta[f"{config.kwargs.get('column')}_nonpositive"] = int(unexpected)
        if name == "schema":
            meta["column_order_ok"] = bool(result.success)
    if name == "nulls":
        with_nulls = {c: n for c, n in required_nulls.items() if n}
        meta["required_null_count"] = sum(with_nulls.values())
        meta["required_columns_with_nulls"] = ",".join(with_nulls)
        for column, n in with_nulls.items():
            meta[f"{column}_null_count"] = n
    meta["ge_expectations"] = len(results)
    if counted:
        meta["ge_unexpected_count"] = count
        meta["ge_unexpected_fraction"] = fraction
    if failed:
        meta["ge_failed"] = ",".join(failed)
        failures.append("expectations failed")
    if errors:
        meta["ge_error"] = "; ".join(errors)[:_ERROR_CHARS]
        failures.append("metric error")
    return failures
