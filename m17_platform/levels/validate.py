"""``m17 validate signals``: rows, nulls, ranges, distributions and checks of one partition's
``gold.level_signals``, as findings with a level.

Each :class:`Finding` is ``INFO`` (what the data are: rows, nulls of nullable columns,
ranges, distributions, a check that passed), ``WARN`` (worth a look: no signals, a label
null although its window ended, a ``WARN`` check that failed) or ``ERROR`` (the data
break a rule of the table: a null in a required column, a value out of its range, times
out of order, a duplicate id, a failed ``ERROR`` check such as ``no_lookahead``).

:func:`validate_partition` reads what it needs: the signals are passed in; the chain's
inputs are read from the lake for :func:`.checks.check_signals` (the same checks the
asset runs: ``no_lookahead``, ``es_book``, ``book_quality``, ``labels_after_decision``).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from m17_platform.lake import Lake, PartitionRef
from m17_platform.levels.schemas import BARRIER_STATES, LEVEL_SIGNALS
from m17_platform.levels.settings import LevelSettings

LEVELS = ("ERROR", "WARN", "INFO")
INFO, WARN, ERROR = "INFO", "WARN", "ERROR"
REL_TOL = 1e-9
"""Relative tolerance of the recomputed columns (distance, level_price_es)."""

COUNT_COLUMNS = ("barrier_depth_start", "barrier_depth_end", "barrier_added", "barrier_canceled", "barrier_filled",
                 "tape_buy_vol", "tape_sell_vol", "tape_trades", "sweep_count", "approach_bars", "prior_touches",
                 "book_rows", "book_crossed_rows", "sequence_gaps", "out_of_order_events", "label_trades")
"""Columns that count contracts, prints or rows: never negative."""


@dataclass(frozen=True)
class Finding:
    """One thing :func:`validate_partition` found: partition (``DATE|U``), level
    (``INFO`` / ``WARN`` / ``ERROR``), the rule's name and a one-line message."""

    partition: str
    level: str
    check: str
    message: str


def _bad(frame: pl.DataFrame, expr: pl.Expr) -> int:
    """Rows where ``expr`` is true (nulls count as fine: the null findings cover them)."""
    return int(frame.select(expr.fill_null(False).sum()).item()) if frame.height else 0


def _span(frame: pl.DataFrame, column: str, fmt: str = ".4f") -> str:
    s = frame.get_column(column).drop_nulls()
    return "no values" if s.is_empty() else f"{s.min():{fmt}} .. {s.max():{fmt}}"


def _counts(frame: pl.DataFrame, column: str, order: tuple[str, ...] = ()) -> str:
    found = dict(frame.get_column(column).fill_null("null").value_counts().iter_rows()) if frame.height else {}
    keys = [k for k in order if k in found] + sorted(k for k in found if k not in order)
    return " ".join(f"{k}={found[k]:,}" for k in keys) or "none"


def null_findings(signals: pl.DataFrame) -> list[tuple[str, str, str]]:
    """(level, check, message): ERROR per required column with nulls; one INFO with the
    null counts of the nullable columns (labels are null while their window is open)."""
    out, nullable = [], []
    counts = signals.null_count().row(0, named=True) if signals.height else {}
    for fld in LEVEL_SIGNALS.schema:
        n = int(counts.get(fld.name, 0))
        if n and not fld.nullable:
            out.append((ERROR, "nulls", f"required column {fld.name} has {n:,} null(s)"))
        elif n:
            nullable.append(f"{fld.name}={n:,}")
    out.append((INFO, "nulls", "nullable columns with nulls: " + (", ".join(nullable) or "none")))
    return out


def range_findings(signals: pl.DataFrame, settings: LevelSettings) -> list[tuple[str, str, str]]:
    """(level, check, message) of the value ranges: distance within the critical zone and
    equal to |spot - level|, tape imbalance in [-1, 1], ratios positive, counts not
    negative, level_price_es = level_price x es_spy_ratio; an INFO with each range."""
    col = pl.col
    zone = settings.critical_zone
    rules = [
        ("distance", (col("distance") < 0) | (col("distance") > zone * (1 + REL_TOL)),
         f"distance in [0, critical_zone {zone}]", _span(signals, "distance")),
        ("distance", (col("distance") - (col("spot") - col("level_price")).abs()).abs() > REL_TOL * col("spot").abs(),
         "distance = |spot - level_price|", None),
        ("tape_imbalance", col("tape_imbalance").abs() > 1, "tape_imbalance in [-1, 1]",
         _span(signals, "tape_imbalance")),
        ("ratios", col("es_spy_ratio") <= 0, "es_spy_ratio > 0",
         f"{_span(signals, 'es_spy_ratio', '.5f')} ({_counts(signals, 'ratio_source')})"),
        ("ratios", (col("barrier_replenishment_ratio") < 0) | (col("wall_ratio") < 0),
         "barrier_replenishment_ratio and wall_ratio >= 0",
         (f"replenishment {_span(signals, 'barrier_replenishment_ratio', '.3f')}, "
          f"wall {_span(signals, 'wall_ratio', '.3f')}")),
        ("ratios", (col("level_price_es") - col("level_price") * col("es_spy_ratio")).abs()
         > REL_TOL * col("level_price_es").abs(), "level_price_es = level_price x es_spy_ratio", None),
        ("counts", pl.any_horizontal([col(c) < 0 for c in COUNT_COLUMNS]) | (col("tape_velocity") < 0),
         "depths, volumes, prints and rows >= 0", None),
    ]
    return _rule_findings(signals, rules)


def time_findings(signals: pl.DataFrame, settings: LevelSettings) -> list[tuple[str, str, str]]:
    """(level, check, message) of the time order: each level known by its bar start,
    decision after the bar start, gamma rows strictly before the decision, label window
    (decision, decision + label_minutes] after the decision."""
    col = pl.col
    lead = signals.select(((col("decision_ts_ns") - col("ts_ns")) / 1e9).alias("seconds"))
    rules = [
        ("times", col("known_from_ts_ns") > col("ts_ns"), "levels known at the bar start (known_from <= ts)", None),
        ("times", col("decision_ts_ns") <= col("ts_ns"), "decision after the bar start",
         f"decision - bar start: {_span(lead, 'seconds', '.0f')} s"),
        ("times", col("gamma_ts_ns") >= col("decision_ts_ns"), "gamma rows strictly before the decision", None),
        ("times", col("label_end_ts_ns") <= col("decision_ts_ns"), "label end after the decision", None),
        ("times", col("label_end_ts_ns") - col("decision_ts_ns") != settings.label_ns,
         f"label window = decision + {settings.label_minutes} min", None),
    ]
    return _rule_findings(signals, rules)


def _rule_findings(signals, rules) -> list[tuple[str, str, str]]:
    out = []
    for check, bad_expr, rule, span in rules:
        bad = _bad(signals, bad_expr)
        if bad:
            out.append((ERROR, check, f"{bad:,} row(s) break: {rule}"))
        else:
            out.append((INFO, check, f"ok: {rule}" + (f"; {span}" if span else "")))
    return out


def distribution_findings(signals: pl.DataFrame) -> list[tuple[str, str, str]]:
    """(level, check, message): label, barrier-state, book-quality and level-kind
    distributions (INFO), and a WARN for labels null although their window ended."""
    from m17_platform.levels.schemas import OUTCOMES

    out = [
        (INFO, "labels", (f"{_counts(signals, 'outcome', (*OUTCOMES, 'null'))} "
                          f"(status {_counts(signals, 'label_status', ('ok', 'incomplete'))})")),
        (INFO, "barrier_state", _counts(signals, "barrier_state", (*BARRIER_STATES, "null"))),
        (INFO, "book_quality", _counts(signals, "book_quality", ("ok",))),
        (INFO, "level_kind", _counts(signals, "level_kind")),
    ]
    unlabelled = _bad(signals, (pl.col("label_status") == "ok") & pl.col("outcome").is_null())
    if unlabelled:
        out.append((WARN, "labels", f"{unlabelled:,} label(s) null although the window ended (no ES print before it)"))
    return out


def validate_partition(lake: Lake, ref: PartitionRef, signals: pl.DataFrame,
                       settings: LevelSettings | None = None, *, lookahead: bool = True) -> list[Finding]:
    """The findings of one partition's ``level_signals``.

    Parameters
    ----------
    lake : the lake (the chain's inputs are read from it for the checks)
    ref : the partition
    signals : its ``gold.level_signals`` rows (:data:`.schemas.LEVEL_SIGNALS` columns)
    settings : LevelSettings (defaults when None)
    lookahead : run :func:`.checks.check_signals` (the chain six times) too

    Returns
    -------
    list of Finding, in a fixed order: rows, nulls, uniqueness, ranges, times,
    distributions (these only when there are rows), then the checks.

    Raises
    ------
    LakeError
        When an input's file does not match its checksum.
    """
    settings = settings or LevelSettings()
    found: list[tuple[str, str, str]] = []
    if signals.height:
        found.append((INFO, "rows", f"{signals.height:,} signals"))
    else:
        found.append((WARN, "rows", "no signals (no touch in the critical zone, or no ES book: see es_book)"))
    if signals.height:
        found += null_findings(signals)
        dupes = signals.height - signals.get_column("event_id").n_unique()
        found.append((ERROR, "event_id", f"{dupes:,} duplicate event_id(s)") if dupes
                     else (INFO, "event_id", "ok: event_id unique"))
        found += range_findings(signals, settings)
        found += time_findings(signals, settings)
        found += distribution_findings(signals)
    if lookahead:
        found += check_findings(lake, ref, signals, settings)
    return [Finding(str(ref), level, check, message) for level, check, message in found]


def check_findings(lake: Lake, ref: PartitionRef, signals: pl.DataFrame,
                   settings: LevelSettings) -> list[tuple[str, str, str]]:
    """(level, check, message) of :func:`.checks.check_signals` on the partition's inputs
    from the lake: INFO when a check passes, else its severity (ERROR or WARN)."""
    from m17_platform.levels.checks import check_signals
    from m17_platform.levels.lake_inputs import read_partition_inputs

    inputs = read_partition_inputs(lake, ref)
    out = []
    for outcome in check_signals(signals, inputs, ref.trade_date, ref.underlying, settings):
        stats = ", ".join(f"{k}={v}" for k, v in outcome.metadata.items())
        level = INFO if outcome.passed else (ERROR if outcome.severity == "ERROR" else WARN)
        verdict = "passed" if outcome.passed else "FAILED"
        out.append((level, f"check.{outcome.name}", f"{verdict} ({stats})" if stats else verdict))
    return out
