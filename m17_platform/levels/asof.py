"""No look-ahead, provably: the whole chain as of an instant, and the check that compares
it with the full day.

:func:`truncate_inputs` cuts every input to what was known strictly before the as-of
instant; :func:`build_signals` runs levels -> touches -> physics -> labels -> signals on
any inputs; :func:`lookahead_check` runs both and reports every signal whose decision
is at or before a cut point but whose features differ from the full day's (integers and
strings exactly, floats within 1e-12 relative), and every label that is not null although
its window had not ended by the cut, or that differs from the full day's although it had.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field

import polars as pl

from m17_platform.errors import SchemaError
from m17_platform.levels.labels import build_labels
from m17_platform.levels.partition import Partition, resolve_partition, trade_arrays
from m17_platform.levels.physics import build_physics
from m17_platform.levels.schemas import LABEL_COLUMNS, LEVEL_SIGNALS
from m17_platform.levels.settings import LevelSettings, split_settings
from m17_platform.levels.signals import build_level_signals
from m17_platform.levels.touches import build_touches
from m17_platform.levels.universe import SMA_HISTORY_SCHEMA, bar_ratios, build_levels, es_bars, sma_closes
from m17_platform.settings import Settings

INPUT_CUTS: dict[str, tuple[str, bool]] = {
    "futures_mbp10": ("ts_ns", False),
    "futures_trades_enriched": ("ts_ns", False),
    "futures_mbo": ("ts_ns", False),
    "stock_quotes": ("ts_ns", False),
    "option_trades_enriched": ("ts_ns", False),
    "gamma_exposure": ("ts_ns", False),
    "bars": ("bar_end_ns", True),
    "sma_history": ("bar_end_ns", True),
}
"""Input name -> (time column, whether a row at exactly the as-of instant is kept).
Rows are kept strictly before the instant, except bars (and earlier partitions' SMA
closes), kept when they END at or before it. ``futures_mbo`` and ``sma_history`` are
optional; ``option_trades_enriched`` and ``gamma_exposure`` may be absent (no options)."""

FLOAT_TOLERANCE = 1e-12


def truncate_inputs(inputs: dict[str, pl.DataFrame], as_of_ns: int) -> dict[str, pl.DataFrame]:
    """Every input cut to the rows known strictly before ``as_of_ns``.

    Parameters
    ----------
    inputs : dict of name -> polars.DataFrame
        Keys of :data:`INPUT_CUTS`.
    as_of_ns : int
        The instant (ns UTC).

    Returns
    -------
    dict of name -> polars.DataFrame: same keys; book, prints, quotes and gamma rows with
    ``ts_ns < as_of_ns``; bars with ``bar_end_ns <= as_of_ns``.

    Raises
    ------
    SchemaError
        For an input name :data:`INPUT_CUTS` does not know (nothing is passed through uncut).
    """
    out = {}
    for name, frame in inputs.items():
        if name not in INPUT_CUTS:
            raise SchemaError(name, "truncate_inputs", f"unknown input; known inputs: {sorted(INPUT_CUTS)}")
        column, inclusive = INPUT_CUTS[name]
        if frame is None:
            out[name] = None
            continue
        keep = pl.col(column) <= as_of_ns if inclusive else pl.col(column) < as_of_ns
        out[name] = frame.filter(keep)
    return out


@dataclass
class LevelsResult:
    """The five level tables of a partition (:data:`.schemas.LEVEL_TABLES` names), their
    counts, the partition they were computed for, and each builder's wall time (s)."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    stats: dict[str, dict] = field(default_factory=dict)
    partition: Partition | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def data_end(inputs: dict[str, pl.DataFrame], part: Partition | None, as_of_ns: int | None) -> int:
    """Data are complete strictly before this instant: ``as_of_ns`` when given, else the
    last book row or print of the proxy contract + 1 ns (0 without any)."""
    if as_of_ns is not None:
        return int(as_of_ns)
    last = 0
    for name in ("futures_mbp10", "futures_trades_enriched"):
        frame = inputs.get(name)
        if frame is not None and frame.height and part is not None and part.symbol:
            value = frame.filter(pl.col("symbol") == part.symbol).get_column("ts_ns").max()
            last = max(last, int(value) + 1) if value is not None else last
    return last


def build_signals(
    inputs: dict[str, pl.DataFrame],
    settings: LevelSettings | Settings | None = None,
    as_of_ns: int | None = None,
    *,
    trade_date: dt.date | None = None,
    underlying: str | None = None,
) -> LevelsResult:
    """The whole chain, levels to signals, for one partition, optionally as of an instant.

    Parameters
    ----------
    inputs : dict of name -> polars.DataFrame
        ``futures_mbp10``, ``futures_trades_enriched``, ``bars``, ``stock_quotes``,
        ``option_trades_enriched``, ``gamma_exposure``; optional ``sma_history``
        (earlier partitions' closes, :data:`.universe.SMA_HISTORY_SCHEMA`) and
        ``futures_mbo`` (:func:`.events.mbo_level_events`). Missing ones count as empty.
    settings : LevelSettings or Settings (see :func:`.settings.split_settings`)
    as_of_ns : int, optional
        Run on :func:`truncate_inputs` of the inputs; labels need their window to end
        strictly before it.
    trade_date, underlying : optional; inferred from the inputs (:func:`.partition.resolve_partition`)

    Returns
    -------
    LevelsResult

    Raises
    ------
    SchemaError, CalendarError
        From :func:`truncate_inputs`, :func:`.universe.build_levels`,
        :func:`.partition.resolve_partition`.
    """
    lvl, base = split_settings(settings)
    if as_of_ns is not None:
        inputs = truncate_inputs(inputs, as_of_ns)
    part = resolve_partition(inputs, lvl, base, trade_date, underlying)
    get = inputs.get
    out = LevelsResult(partition=part)

    def run(name, fn, *args, **kwargs):
        started = time.perf_counter()
        frame, stats = fn(*args, **kwargs)
        out.seconds[name] = time.perf_counter() - started
        out.tables[name], out.stats[name] = frame, stats
        return frame

    levels = run(
        "levels",
        build_levels,
        get("bars"),
        get("futures_mbp10"),
        get("stock_quotes"),
        get("option_trades_enriched"),
        get("gamma_exposure"),
        part,
        lvl,
        sma_history=get("sma_history"),
    )
    touches = run("level_touches", build_touches, levels, get("bars"), lvl)
    physics = run(
        "level_physics",
        build_physics,
        touches,
        get("futures_mbp10"),
        get("futures_trades_enriched"),
        get("bars"),
        get("gamma_exposure"),
        part,
        lvl,
        mbo=get("futures_mbo"),
    )
    labels = run(
        "outcome_labels",
        build_labels,
        touches,
        trade_arrays(get("futures_trades_enriched"), part.symbol if part else None),
        data_end(inputs, part, as_of_ns),
        lvl,
    )
    run("level_signals", build_level_signals, touches, physics, labels, part)
    return out


def sma_history_of(
    inputs: dict[str, pl.DataFrame],
    settings: LevelSettings | Settings | None = None,
    *,
    trade_date: dt.date | None = None,
    underlying: str | None = None,
) -> pl.DataFrame:
    """A partition's ``sma_bar_seconds`` closes on the SPY scale (``bar_end_ns``, ``close``):
    concatenate those of the earlier partitions (oldest first) and pass them as the next
    partition's ``sma_history``; only the last ``sma_length`` are used.

    Parameters
    ----------
    inputs : as :func:`build_signals` (``bars``, ``futures_mbp10``, ``stock_quotes`` are read)
    settings : LevelSettings or Settings
    trade_date, underlying : optional, as :func:`build_signals`

    Returns
    -------
    polars.DataFrame with :data:`.universe.SMA_HISTORY_SCHEMA`; zero rows without futures bars.
    """
    lvl, base = split_settings(settings)
    part = resolve_partition(inputs, lvl, base, trade_date, underlying)
    es = es_bars(inputs.get("bars"), part.symbol if part else None, lvl)
    if part is None or es.height == 0:
        return pl.DataFrame(schema=SMA_HISTORY_SCHEMA)
    ratios = bar_ratios(es, inputs.get("futures_mbp10"), inputs.get("stock_quotes"), part, lvl)
    return sma_closes(es, ratios, lvl)


FEATURE_COLUMNS = tuple(c for c in LEVEL_SIGNALS.columns if c not in LABEL_COLUMNS)
"""``level_signals`` columns that must not depend on anything after the decision."""


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= FLOAT_TOLERANCE * max(1.0, abs(a), abs(b))
    return a == b


def _label_mismatches(row: dict, other: dict, as_of_ns: int, full_data_end: int) -> list[dict]:
    """A label must be null (status incomplete) unless its window ended strictly before the
    cut; then it must equal the full day's, where the full day has the data too."""
    end = row["label_end_ts_ns"]
    if end < as_of_ns:
        expected = row if end < full_data_end else None
    else:
        expected = {c: None for c in LABEL_COLUMNS} | {"label_end_ts_ns": end, "label_status": "incomplete"}
    if expected is None:
        return []
    return [
        {"event_id": row["event_id"], "column": c, "full": expected[c], "cut": other[c]}
        for c in LABEL_COLUMNS
        if not _same(expected[c], other[c])
    ]


def compare_signals(full: pl.DataFrame, cut: pl.DataFrame, as_of_ns: int, full_data_end: int) -> list[dict]:
    """Mismatches between the full day's signals and the signals computed as of ``as_of_ns``.

    Every full-day signal with ``decision_ts_ns <= as_of_ns`` must be in ``cut`` with
    equal features (:data:`FEATURE_COLUMNS`); ``cut`` must hold no other signal; its label
    columns must be null unless the window ended strictly before the cut, and then (when
    the full day has the data too) equal the full day's.

    Returns
    -------
    list of dict: ``event_id``, ``column``, ``full``, ``cut`` (one per differing value;
    column ``<missing>`` / ``<extra>`` for absent signals).
    """
    due = full.filter(pl.col("decision_ts_ns") <= as_of_ns)
    by_id = {r["event_id"]: r for r in cut.iter_rows(named=True)}
    out: list[dict] = []
    for row in due.iter_rows(named=True):
        other = by_id.pop(row["event_id"], None)
        if other is None:
            out.append({"event_id": row["event_id"], "column": "<missing>", "full": row["touch_id"], "cut": None})
            continue
        for c in FEATURE_COLUMNS:
            if not _same(row[c], other[c]):
                out.append({"event_id": row["event_id"], "column": c, "full": row[c], "cut": other[c]})
        out += _label_mismatches(row, other, as_of_ns, full_data_end)
    for eid, row in by_id.items():
        out.append({"event_id": eid, "column": "<extra>", "full": None, "cut": row["touch_id"]})
    return out


def lookahead_check(
    inputs: dict[str, pl.DataFrame],
    settings: LevelSettings | Settings | None,
    cut_points: list[int],
    *,
    trade_date: dt.date | None = None,
    underlying: str | None = None,
) -> list[tuple[int, list[dict]]]:
    """For each cut point, the signals that would have been different had the chain run
    then (:func:`compare_signals`); an empty list per cut is a pass.

    Parameters
    ----------
    inputs : as :func:`build_signals`
    settings : LevelSettings or Settings
    cut_points : instants (ns UTC)

    Returns
    -------
    list of (cut point, mismatches)
    """
    full = build_signals(inputs, settings, trade_date=trade_date, underlying=underlying)
    end = data_end(inputs, full.partition, None)
    signals = full.tables["level_signals"]
    results = []
    for cut in cut_points:
        part = build_signals(inputs, settings, as_of_ns=int(cut), trade_date=trade_date, underlying=underlying)
        results.append((int(cut), compare_signals(signals, part.tables["level_signals"], int(cut), end)))
    return results
