"""What ``m17 signals build``, ``m17 signals export`` and ``m17 validate signals`` run
(the command line only parses arguments; no Dagster import here).

* :func:`run_signals_build`: the level chain on a partition's lake inputs cut at an
  as-of instant (:func:`.asof.build_signals` with ``as_of_ns``), compared with the
  full-day ``gold.level_signals`` in the lake (:func:`.asof.compare_signals`);
* :func:`run_signals_export`: every ``level_signals`` partition of a date range in one
  Parquet file, written atomically;
* :func:`run_validate_signals`: :func:`.validate.validate_partition` on one or every
  partition, printed as aligned text.

The argument checks (:func:`parse_partition`, :func:`parse_as_of`, :func:`parse_day`,
:func:`check_out_path`) raise :class:`~m17_platform.cli_errors.UsageError` with one line;
the command line prints it and exits 2.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from m17_platform.cli_errors import UsageError
from m17_platform.lake import Lake, PartitionRef
from m17_platform.levels.schemas import LEVEL_SIGNALS, OUTCOMES
from m17_platform.levels.settings import LevelSettings
from m17_platform.settings import DEFAULT

SETTINGS = LevelSettings()
"""The settings the ``level_physics_chain`` asset runs with (its defaults)."""
SIGNALS = f"{LEVEL_SIGNALS.layer}.{LEVEL_SIGNALS.name}"
EXPORT_COLUMNS = ("trade_date", "underlying", *(c for c in LEVEL_SIGNALS.columns if c not in ("trade_date", "underlying")))
"""Columns of ``m17 signals export``: the partition keys, then ``level_signals``'."""
_AS_OF = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?$")
SHOWN_MISMATCHES = 10
"""Mismatching values ``m17 signals build`` prints (all are counted)."""


# --- arguments ---------------------------------------------------------------------------


def parse_partition(text: str, flag: str = "--partition") -> PartitionRef:
    """``'DATE|UNDERLYING'`` as a PartitionRef; UsageError with one line if it is not one."""
    try:
        return PartitionRef.parse(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def parse_as_of(text: str, trade_date: dt.date, timezone: str = DEFAULT.sessions.timezone) -> int:
    """``--as-of``: ``HH:MM:SS[.fffffffff]``, a wall-clock time in ``timezone``
    (America/New_York) on ``trade_date``; or ``YYYY-MM-DD HH:MM:SS`` on the trade date or
    the day before it (CME's evening session belongs to the next trade date). Returned as
    ns since the epoch, UTC.

    Raises
    ------
    UsageError
        When ``text`` is neither, a field is out of range (hours 00-23, minutes and
        seconds 00-59), or the date is not the trade date or the day before.
    """
    day_text, _, clock = text.strip().replace("T", " ").rpartition(" ")
    m = _AS_OF.match(clock)
    expected = (f"expected HH:MM:SS, wall-clock time in {timezone} on the trade date {trade_date} (e.g. 11:30:00), "
                f"or YYYY-MM-DD HH:MM:SS on {trade_date - dt.timedelta(days=1)} or {trade_date}")
    hour, minute, second = (int(m[1]), int(m[2]), int(m[3])) if m else (99, 0, 0)
    if m is None or hour > 23 or minute > 59 or second > 59:
        raise UsageError(f"--as-of {text!r}: {expected}")
    day = trade_date
    if day_text:
        try:
            day = dt.date.fromisoformat(day_text.strip())
        except ValueError:
            raise UsageError(f"--as-of {text!r}: {expected}") from None
        if not trade_date - dt.timedelta(days=1) <= day <= trade_date:
            raise UsageError(f"--as-of {text!r}: the date is not the partition's trade date or the day before; "
                             f"{expected}")
    frac = int((m[4] or ".0")[1:].ljust(9, "0"))
    local = dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=ZoneInfo(timezone))
    return int(local.timestamp()) * 1_000_000_000 + frac


def parse_day(text: str, flag: str) -> dt.date:
    """A ``YYYY-MM-DD`` argument; UsageError naming ``flag`` if it is not one."""
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r} is not YYYY-MM-DD") from None


def check_out_path(text: str, flag: str = "--out") -> Path:
    """An output file: ends in ``.parquet``, its folder exists, it is not a folder.

    Raises
    ------
    UsageError
        Naming ``flag`` and what is wrong.
    """
    path = Path(text)
    if path.suffix != ".parquet":
        raise UsageError(f"{flag} {text!r}: expected a file name ending in .parquet")
    if path.is_dir():
        raise UsageError(f"{flag} {text!r} is a folder; expected a .parquet file")
    if not path.parent.resolve().is_dir():
        raise UsageError(f"{flag} {text!r}: folder {str(path.parent)!r} does not exist")
    return path


def lake_of(root: str | None) -> Lake:
    """The lake at ``root`` (default ``LakeSettings.root``)."""
    return Lake(root or DEFAULT.lake.root)


# --- shared --------------------------------------------------------------------------------


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` under a temporary name in the same folder, fsync it, and
    rename it into place (``os.replace``): a reader sees the old file or the new one, never
    a part. The temporary file is removed if the write fails.

    Raises
    ------
    OSError
        From the write or the rename (naming the file).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        frame.write_parquet(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def label_distribution(signals: pl.DataFrame) -> dict[str, int]:
    """Signals per outcome: ``BREAK``, ``BOUNCE``, ``CHOP`` (always present, 0 when none)
    and ``null`` (label window not ended by the data or the as-of instant)."""
    counts = {name: 0 for name in (*OUTCOMES, "null")}
    if signals.height:
        for value, n in signals.get_column("outcome").fill_null("null").value_counts().iter_rows():
            counts[value] = int(n)
    return counts


def distribution_text(counts: dict[str, int]) -> str:
    """``BREAK=3 BOUNCE=1 CHOP=40 null=2`` (shares of the total in parentheses)."""
    total = sum(counts.values())
    return " ".join(f"{k}={v:,}" + (f" ({v / total:.0%})" if total else "") for k, v in counts.items())


def _wall(ns: int, timezone: str = DEFAULT.sessions.timezone) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")


# --- m17 signals build ----------------------------------------------------------------------


@dataclass
class AsOfBuild:
    """``m17 signals build``'s result: the signals computed from the inputs before
    ``as_of_ns``, the lake's full-day signals (None when the lake has none), the
    mismatches between the two (:func:`.asof.compare_signals`; None when not compared),
    the end of the partition's data (:func:`.asof.data_end`; 0 without futures data) and
    the lake's notes on stale inputs of its full-day table."""

    ref: PartitionRef
    as_of_ns: int
    signals: pl.DataFrame
    full: pl.DataFrame | None = None
    mismatches: list[dict] | None = None
    data_end_ns: int = 0
    stale_inputs: list[str] = field(default_factory=list)


def build_as_of(lake: Lake, ref: PartitionRef, as_of_ns: int, settings: LevelSettings = SETTINGS) -> AsOfBuild:
    """The partition's level signals from its lake inputs (with the SMA history the asset
    reads, :func:`.lake_inputs.level_inputs`) cut at ``as_of_ns``, compared with the
    full-day ``gold.level_signals`` of the lake when it has the partition.

    Parameters
    ----------
    lake : the lake
    ref : the partition
    as_of_ns : the instant (ns UTC); every input is cut strictly before it
        (:func:`.asof.truncate_inputs`). A label needs its window to end before the
        instant, and, when the instant is past the end of the partition's data, before
        that end (as in the full day: the recording says nothing after it).
    settings : LevelSettings (the asset's by default)

    Returns
    -------
    AsOfBuild

    Raises
    ------
    LakeError
        When the lake has neither the partition's inputs nor its signals, or a file
        does not match its checksum.
    """
    from m17_platform.errors import LakeError
    from m17_platform.lake.health import stale_inputs
    from m17_platform.levels.asof import build_signals, compare_signals, data_end, truncate_inputs
    from m17_platform.levels.lake_inputs import level_inputs
    from m17_platform.levels.partition import resolve_partition
    from m17_platform.levels.settings import split_settings

    inputs = level_inputs(lake, ref, settings)
    has_signals = lake.exists(LEVEL_SIGNALS, ref)
    if not has_signals and all(v is None for k, v in inputs.items() if k != "sma_history"):
        raise LakeError(f"partition {ref} is not in the lake under {lake.root}: no {SIGNALS} and none of its inputs "
                        "(materialize it first: ./m17 demo, ./m17 ingest + the main job)")
    lvl, base = split_settings(settings)
    end = data_end(inputs, resolve_partition(inputs, lvl, base, ref.trade_date, ref.underlying), None)
    # past the end of the partition's data the cut inputs are the whole recording: labels
    # are then judged on the data's end, as in the full day, not on the as-of instant
    cut = build_signals(truncate_inputs(inputs, as_of_ns), settings, as_of_ns if as_of_ns < end else None,
                        trade_date=ref.trade_date, underlying=ref.underlying)
    out = AsOfBuild(ref, as_of_ns, cut.tables["level_signals"], data_end_ns=end)
    if has_signals:
        out.full = lake.read(LEVEL_SIGNALS, ref)
        out.mismatches = compare_signals(out.full, out.signals, as_of_ns, end)
        out.stale_inputs = stale_inputs(lake, LEVEL_SIGNALS, ref)
    return out


def _print_mismatches(mismatches: list[dict], stream) -> None:
    signals = len({m["event_id"] for m in mismatches})
    print(f"look-ahead: MISMATCH: {len(mismatches)} value(s) of {signals} signal(s) differ from the full-day "
          f"{SIGNALS} in the lake", file=stream)
    for m in mismatches[:SHOWN_MISMATCHES]:
        print(f"  {m['event_id']}  {m['column']}: full day {m['full']!r}, as of {m['cut']!r}", file=stream)
    if len(mismatches) > SHOWN_MISMATCHES:
        print(f"  ... and {len(mismatches) - SHOWN_MISMATCHES} more", file=stream)


def run_signals_build(partition: str, as_of: str, lake_root: str | None = None, out: str | None = None,
                      stream=sys.stdout) -> int:
    """``m17 signals build``: print the as-of summary, write ``out``; the exit status.

    Returns
    -------
    0, or 1 when a signal decided by the as-of instant differs from the lake's full-day table.

    Raises
    ------
    UsageError
        For a bad ``partition``, ``as_of`` or ``out`` (checked before anything is read).
    LakeError
        As :func:`build_as_of`.
    """
    ref = parse_partition(partition)
    as_of_ns = parse_as_of(as_of, ref.trade_date)
    out_path = check_out_path(out) if out else None
    lake = lake_of(lake_root)
    result = build_as_of(lake, ref, as_of_ns)
    sig = result.signals
    print(f"m17 signals build: {ref} as of {_wall(as_of_ns)} (inputs cut strictly before it) from {lake.root}",
          file=stream)
    if 0 < result.data_end_ns <= as_of_ns:
        print(f"the partition's futures data end at {_wall(result.data_end_ns - 1)}, before the as-of instant: "
              "labels whose window passes that end stay null, as in the full day", file=stream)
    total = f" (the full day in the lake: {result.full.height:,})" if result.full is not None else ""
    print(f"signals decided by then: {sig.height:,}{total}", file=stream)
    labels = label_distribution(sig)
    print(f"labels: {distribution_text(labels)}", file=stream)
    print(f"labels still null (window not ended before the as-of instant or the data's end): {labels['null']:,}",
          file=stream)
    if sig.height:
        states = sig.get_column("barrier_state").fill_null("null").value_counts(sort=True)
        print("barrier states: " + " ".join(f"{k}={v:,}" for k, v in states.iter_rows()), file=stream)
    status = 0
    if result.mismatches is None:
        print(f"look-ahead: not compared: the lake has no {SIGNALS} partition {ref} (run the main job for it)",
              file=stream)
    elif result.mismatches:
        _print_mismatches(result.mismatches, stream)
        status = 1
    else:
        print(f"look-ahead: ok: the {sig.height:,} signals decided by the as-of instant have the same features as "
              f"the full-day {SIGNALS} in the lake, and their labels are null until their window ends", file=stream)
    if result.stale_inputs:
        print(f"note: the lake's {SIGNALS} {ref} is stale: {'; '.join(result.stale_inputs)} (rerun the main job)",
              file=stream)
    if out_path is not None:
        write_parquet_atomic(sig, out_path)
        print(f"wrote {sig.height:,} signals to {out_path}", file=stream)
    return status


# --- m17 signals export ----------------------------------------------------------------------


def partitions_in_range(lake: Lake, start: dt.date, end: dt.date, underlying: str | None = None) -> list[PartitionRef]:
    """The committed ``gold.level_signals`` partitions with ``start <= trade_date <= end``
    (and of ``underlying`` when given), by date then underlying."""
    return [r for r in lake.partitions(LEVEL_SIGNALS)
            if start <= r.trade_date <= end and (underlying is None or r.underlying == underlying)]


def export_signals(lake: Lake, refs: Sequence[PartitionRef], progress: bool = True) -> pl.DataFrame:
    """The ``level_signals`` of ``refs`` (each read with its checksums verified), one
    frame with ``trade_date`` (date) and ``underlying`` (string, the partition's) first,
    then the other columns of :data:`.schemas.LEVEL_SIGNALS` (:data:`EXPORT_COLUMNS`).

    Raises
    ------
    LakeError
        When a partition is missing or a file does not match its checksum.
    """
    from tqdm import tqdm

    frames = []
    for ref in tqdm(refs, desc="m17 signals export", unit="partition", disable=not progress, file=sys.stderr):
        frame = lake.read(LEVEL_SIGNALS, ref)
        frames.append(_keyed(frame, pl.lit(ref.trade_date, pl.Date), pl.lit(ref.underlying, pl.String)))
    if not frames:
        empty = pl.from_arrow(LEVEL_SIGNALS.schema.empty_table())
        return _keyed(empty, pl.lit(None, pl.Date), pl.lit(None, pl.String))
    return pl.concat(frames)


def _keyed(frame: pl.DataFrame, trade_date: pl.Expr, underlying: pl.Expr) -> pl.DataFrame:
    return frame.with_columns(trade_date.alias("trade_date"), underlying.alias("underlying")).select(EXPORT_COLUMNS)


def run_signals_export(start: str, end: str, out: str, underlying: str | None = None, lake_root: str | None = None,
                       progress: bool = True, stream=sys.stdout) -> int:
    """``m17 signals export``: write every ``level_signals`` partition of the range to
    ``out`` (atomically) and print what was written; the exit status (0).

    Raises
    ------
    UsageError
        For a bad date, an empty or reversed range, a bad underlying or ``out``.
    LakeError
        As :func:`export_signals`.
    """
    from m17_platform.symbols import validate_underlying

    first, last = parse_day(start, "--start"), parse_day(end, "--end")
    if last < first:
        raise UsageError(f"--end {last} is before --start {first}")
    if underlying is not None:
        try:
            underlying = validate_underlying(underlying)
        except ValueError as exc:
            raise UsageError(f"--underlying: {exc}") from None
    out_path = check_out_path(out)
    lake = lake_of(lake_root)
    refs = partitions_in_range(lake, first, last, underlying)
    if not refs:
        which = f" of {underlying}" if underlying else ""
        raise UsageError(f"no {SIGNALS} partition{which} from {first} to {last} under {lake.root} "
                         "(./m17 lake lists the partitions)")
    frame = export_signals(lake, refs, progress)
    write_parquet_atomic(frame, out_path)
    print(f"wrote {frame.height:,} signals of {len(refs)} partition(s) ({refs[0]} .. {refs[-1]}) to {out_path}",
          file=stream)
    print(f"labels: {distribution_text(label_distribution(frame))}", file=stream)
    return 0


# --- m17 validate signals --------------------------------------------------------------------


def print_findings(findings: Iterable, stream=sys.stdout) -> dict[str, int]:
    """Findings as aligned text, grouped by partition; returns the count per level."""
    from m17_platform.levels.validate import LEVELS

    counts = {level: 0 for level in LEVELS}
    current = None
    for f in findings:
        if f.partition != current:
            current = f.partition
            print(f"{current}", file=stream)
        counts[f.level] += 1
        print(f"  {f.level:<5}  {f.check:<28} {f.message}", file=stream)
    return counts


def run_validate_signals(partition: str | None = None, lake_root: str | None = None, stream=sys.stdout) -> int:
    """``m17 validate signals``: validate one partition (or every one in the lake) and print
    the findings; the exit status: 1 when any finding is an ERROR, else 0.

    Raises
    ------
    UsageError
        For a bad ``partition``, a partition the lake does not have, or a lake without any.
    LakeError
        When a file does not match its checksum.
    """
    from m17_platform.levels.validate import validate_partition

    ref = parse_partition(partition) if partition else None
    lake = lake_of(lake_root)
    if ref is not None:
        if not lake.exists(LEVEL_SIGNALS, ref):
            raise UsageError(f"--partition {ref}: no {SIGNALS} partition under {lake.root} (./m17 lake lists them)")
        refs = [ref]
    else:
        refs = lake.partitions(LEVEL_SIGNALS)
        if not refs:
            raise UsageError(f"no {SIGNALS} partition under {lake.root}: run the main job (./m17 demo) first")
    findings, rows, labels = [], 0, dict.fromkeys((*OUTCOMES, "null"), 0)
    for r in refs:
        signals = lake.read(LEVEL_SIGNALS, r)
        rows += signals.height
        for k, v in label_distribution(signals).items():
            labels[k] += v
        findings += validate_partition(lake, r, signals, SETTINGS)
    counts = print_findings(findings, stream)
    print(f"m17 validate signals: {len(refs)} partition(s), {rows:,} signals; labels {distribution_text(labels)}; "
          + ", ".join(f"{v} {k}" for k, v in counts.items()), file=stream)
    return 1 if counts["ERROR"] else 0
