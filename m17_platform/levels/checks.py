"""The checks of the level signals of a partition, and where their inputs come from.

:data:`INPUTS` names the lake tables the chain reads (same partition);
:func:`read_inputs` reads them, with the SMA history of earlier partitions;
:func:`check_signals` recomputes from the inputs: ``no_lookahead`` (the chain as of
five instants spread over the partition's data equals the full day for every signal
decided by then), ``es_book`` (the partition has a book of its futures proxy: without
one the physics tables are empty), ``book_quality`` (signals whose book window was
crossed, stale, gapped or out of order) and ``labels_after_decision`` (every label
window starts at its decision time and a label is null while its window is open).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import polars as pl

from m17_platform.levels.asof import build_signals, lookahead_check, sma_history_of
from m17_platform.levels.partition import resolve_partition
from m17_platform.levels.settings import LevelSettings, split_settings
from m17_platform.quality import CheckOutcome

INPUTS = ("futures_mbp10", "futures_trades_enriched", "bars", "stock_quotes", "option_trades_enriched",
          "gamma_exposure")
"""Lake tables (same partition) the level chain reads; the ones a partition lacks count as empty."""

CHECKS = (
    ("no_lookahead", "features of every signal decided by each of five instants over the data, computed from "
                     "the inputs cut there, equal the full day's; labels are null until their window ends"),
    ("es_book", "the partition has a book of its futures proxy (without one the physics tables are empty)"),
    ("book_quality", "signals whose barrier window saw a crossed, stale, gapped or out-of-order book are counted "
                     "and flagged (WARN when any)"),
    ("labels_after_decision", "every label window is (decision, decision + horizon], and a label is null while "
                              "its window is open"),
)
CUT_POINTS = 5


def read_inputs(read, earlier: list[Mapping[str, pl.DataFrame]] = ()) -> dict[str, pl.DataFrame]:
    """The chain's inputs: ``read(name)`` for each of :data:`INPUTS` (None where the
    partition has no such table), plus ``sma_history`` from the inputs of ``earlier``
    partitions (oldest first; :func:`~.asof.sma_history_of` of each)."""
    inputs = {name: read(name) for name in INPUTS}
    histories = [sma_history_of(dict(e)) for e in earlier]
    histories = [h for h in histories if h.height]
    if histories:
        inputs["sma_history"] = pl.concat(histories)
    return inputs


def cut_points(inputs: Mapping[str, pl.DataFrame], n: int = CUT_POINTS) -> list[int]:
    """``n`` instants spread evenly inside the span of the partition's futures data
    (ns UTC); none without futures data."""
    stamps = [f.get_column("ts_ns") for name in ("futures_mbp10", "futures_trades_enriched")
              if (f := inputs.get(name)) is not None and f.height]
    if not stamps:
        return []
    lo, hi = min(int(s.min()) for s in stamps), max(int(s.max()) for s in stamps)
    return [lo + (hi - lo) * k // (n + 1) for k in range(1, n + 1)]


def check_signals(signals: pl.DataFrame, inputs: Mapping[str, pl.DataFrame], trade_date: dt.date, underlying: str,
                  settings: LevelSettings | None = None) -> list[CheckOutcome]:
    """The outcomes of :data:`CHECKS` for one partition's ``level_signals``.

    Parameters
    ----------
    signals : the partition's level_signals rows.
    inputs : the chain's inputs (:func:`read_inputs`, without ``sma_history``: the check
        compares the chain with itself, cut and whole).
    trade_date, underlying : the partition.
    settings : LevelSettings (defaults when None).
    """
    lvl, base = split_settings(settings)
    inputs = {k: v for k, v in inputs.items() if k != "sma_history"}
    part = resolve_partition(inputs, lvl, base, trade_date, underlying)
    cuts = cut_points(inputs)
    results = lookahead_check(inputs, lvl, cuts) if part is not None and part.symbol else []
    mismatches = sum(len(m) for _, m in results)
    has_book = part is not None and part.symbol is not None
    flagged = signals.filter(pl.col("book_quality") != "ok").height if "book_quality" in signals.columns else 0
    horizon = lvl.label_ns
    open_windows = signals.filter(pl.col("label_status") != "ok")
    bad_windows = signals.filter(pl.col("label_end_ts_ns") - pl.col("decision_ts_ns") != horizon).height
    labelled_open = open_windows.filter(pl.col("outcome").is_not_null()).height
    return [
        CheckOutcome("no_lookahead", mismatches == 0, "ERROR", CHECKS[0][1],
                     {"cut_points": len(cuts), "mismatches": mismatches,
                      "signals_compared": int(signals.height)}),
        CheckOutcome("es_book", has_book, "WARN",
                     CHECKS[1][1] if has_book else "no book of a futures proxy in this partition: the physics "
                     "tables are empty", {"futures_symbol": part.symbol if has_book else ""}),
        CheckOutcome("book_quality", flagged == 0, "WARN", CHECKS[2][1],
                     {"signals": int(signals.height), "flagged": int(flagged)}),
        CheckOutcome("labels_after_decision", bad_windows == 0 and labelled_open == 0, "ERROR", CHECKS[3][1],
                     {"windows_not_at_decision": int(bad_windows), "labelled_while_open": int(labelled_open),
                      "open_windows": int(open_windows.height)}),
    ]


def run_chain(inputs: Mapping[str, pl.DataFrame], trade_date: dt.date, underlying: str,
              settings: LevelSettings | None = None, as_of_ns: int | None = None):
    """:func:`~.asof.build_signals` for a partition of the lake (trade date and underlying
    given, so a partition without futures still gets its empty tables)."""
    return build_signals(dict(inputs), settings, as_of_ns, trade_date=trade_date, underlying=underlying)
