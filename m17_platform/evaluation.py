"""Accuracy against ground truth nobody here wrote: ``m17 eval aggressor`` and ``m17 eval greeks``.

* aggressor: every rule of :mod:`m17_platform.aggressor` scored against LOBSTER's
  executed-order direction (quote = the book row before each execution) and CME's
  aggressor side in Databento MBO (quote = the book rebuilt before each print).
* greeks: our IV and greeks from the NBBO mid, computed by the same function the
  ``option_quote_greeks`` asset uses, against a vendor's (Cboe DataShop intervals with
  calcs, TD Ameritrade chains), as median / p95 absolute differences per greek.
"""

from __future__ import annotations

import datetime as dt
import errno
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from m17_platform.aggressor import databento_eval_frame, lobster_eval_frame, score_rules
from m17_platform.enrichment import option_quote_greeks
from m17_platform.errors import SourceFormatError
from m17_platform.greeks import compare_to_vendor, parity_implied_rate
from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT, Settings
from m17_platform.sources.rates import constant_rates

_LOBSTER = re.compile(r"^(?P<symbol>[A-Z.]+)_(?P<date>\d{4}-\d{2}-\d{2})_\d+_\d+_message_\d+(_head)?\.csv(\.gz)?$")


@dataclass(frozen=True)
class EvalResult:
    """One dataset's evaluation: a name, a table, and how its numbers were made."""

    dataset: str
    table: pl.DataFrame
    notes: str


def _missing(path: Path, what: str = "no such file or directory") -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, what, str(path))


def _lobster_pair(path: Path) -> tuple[Path, Path, str, dt.date]:
    m = _LOBSTER.match(path.name)
    if m is None:
        raise SourceFormatError(str(path), None, None,
                                "not a LOBSTER message file (SYMBOL_YYYY-MM-DD_start_end_message_N.csv[.gz]) "
                                "or a Databento MBO file (.dbn[.zst])")
    book = path.with_name(path.name.replace("_message_", "_orderbook_"))
    if not book.exists():
        raise _missing(path, f"its orderbook file {book.name} is not beside it")
    return path, book, m["symbol"], dt.date.fromisoformat(m["date"])


def _aggressor_files(paths: list[str | Path]) -> list[Path]:
    """The files ``eval aggressor`` reads: each file as given; in a folder, its LOBSTER
    message files and Databento MBO files (``*.mbo.dbn``, ``*.mbo.dbn.zst``)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(x for x in p.iterdir() if x.is_file() and ("_message_" in x.name or ".mbo.dbn" in x.name))
            if not found:
                raise SourceFormatError(str(p), None, None, "the folder has no LOBSTER message files "
                                        "(*_message_*.csv[.gz]) or Databento MBO files (*.mbo.dbn[.zst])")
            files += found
        elif not p.exists():
            raise _missing(p)
        else:
            files.append(p)
    return files


def eval_aggressor(paths: list[str | Path], settings: Settings = DEFAULT) -> list[EvalResult]:
    """Score every aggressor rule on each dataset.

    Parameters
    ----------
    paths : list of paths
        LOBSTER message files (their orderbook file beside them) and Databento MBO DBN
        files (``.dbn`` / ``.dbn.zst``); a folder stands for the LOBSTER message files
        and MBO files (``*.mbo.dbn[.zst]``) in it.

    Returns
    -------
    list[EvalResult]
        Per dataset a table with rows = rule and columns accuracy (all trades),
        accuracy_at_quote, accuracy_inside (strictly inside the spread), n, ... (see
        :func:`m17_platform.aggressor.score_rules`).

    Raises
    ------
    FileNotFoundError
        For a path that does not exist, or a LOBSTER file without its orderbook
        (``filename`` is the path given).
    SourceFormatError
        For a file that is neither kind, a folder with neither, a file the reader
        refuses (naming line and field), or a dataset with no trade whose aggressor
        side is known (an empty file, an MBO file without prints): nothing to score.
    """
    out = []
    for path in _aggressor_files(paths):
        if ".dbn" in path.name:
            frame = databento_eval_frame(path, settings=settings.nbbo)
            notes = "truth: CME aggressor side; quote: book rebuilt from MBO, strictly before each print"
            what = "trade prints"
        else:
            msg, book, symbol, day = _lobster_pair(path)
            frame = lobster_eval_frame(msg, book, symbol, day, settings=settings.nbbo)
            notes = "truth: LOBSTER direction of the executed resting order; quote: book row before the execution"
            what = "executions"
        scored = int(frame.get_column("aggressor_side").is_in(["B", "S"]).sum()) if frame.height else 0
        if not scored:
            reason = (f"no {what} to score (the file has no rows)" if _is_empty(path) else
                      f"no {what} to score" if frame.height == 0 else
                      f"none of its {frame.height} {what} has a known aggressor side (B/S) to score")
            raise SourceFormatError(str(path), None, None, reason)
        out.append(EvalResult(path.name, score_rules(frame, settings=settings.aggressor), notes))
    return out


def _is_empty(path: Path) -> bool:
    """True for a file of zero bytes (or a gzip of nothing)."""
    if path.stat().st_size == 0:
        return True
    if path.suffix == ".gz":
        import gzip

        try:
            with gzip.open(path) as fh:
                return fh.read(1) == b""
        except (OSError, EOFError):
            return False
    return False


def _greeks_inputs(path: Path, settings: Settings):
    """(tables, rate, rate source) from a Cboe intervals-with-calcs file or a TDA chain."""
    if path.name.startswith("UnderlyingOptionsIntervals"):
        from m17_platform.sources import cboe

        tables = cboe.read_option_intervals(path).tables
        european = tables["option_quotes"].filter(pl.col("root").is_in(list(settings.universe.european_roots)))
        rate, groups = parity_implied_rate(european, settings.rates, settings.sessions)
        if rate is None:
            return tables, settings.rates.risk_free_rate, "settings.rates.constant"
        return tables, rate, f"put-call parity of the file's European quotes ({groups} expiry snapshots)"
    if ".json" in path.name:
        from m17_platform.sources import tda

        tables = tda.read_chain(path).tables
        facts = tda.read_chain_facts(path)
        if facts.interest_rate is not None:
            return tables, float(facts.interest_rate), "the chain's interestRate"
        return tables, settings.rates.risk_free_rate, "settings.rates.constant"
    raise SourceFormatError(str(path), None, None,
                            "expected a Cboe UnderlyingOptionsIntervals*calcs* file or a TDA chain .json[.gz]")


def eval_greeks(path: str | Path, settings: Settings = DEFAULT) -> list[EvalResult]:
    """Compare our IV and greeks (from the NBBO mid) with the vendor's, per underlying.

    Returns
    -------
    list[EvalResult]
        Per underlying a table with rows = quantity (iv, delta, gamma, theta, vega) and
        columns n, median_abs_diff, p95_abs_diff, max_abs_diff (units of the quantity).

    Raises
    ------
    FileNotFoundError
        For a Cboe or TDA file that does not exist (``filename`` is the path).
    SourceFormatError
        For a folder, a file of neither kind (existing or not), a file the reader refuses (naming line
        and field), or a file without option quotes (e.g. a header and no rows).
    """
    path = Path(path)
    if path.is_dir():
        raise SourceFormatError(str(path), None, None, "is a folder; eval greeks reads one Cboe "
                                "UnderlyingOptionsIntervals*calcs* file or TDA chain .json[.gz]")
    tables, rate, rate_source = _greeks_inputs(path, settings)
    quotes = tables["option_quotes"]
    if quotes.height == 0:
        raise SourceFormatError(str(path), None, None, "no option quotes to compare"
                                + (" (the file has no rows)" if _data_rows(path) == 0 else ""))
    out = []
    for underlying in sorted(quotes.get_column("underlying").unique().to_list()):
        def part(name: str, underlying: str = underlying) -> pl.DataFrame:
            return tables[name].filter(pl.col("underlying") == underlying)

        day = quotes.filter(pl.col("underlying") == underlying).get_column("ts_ns").min()
        ref = PartitionRef(dt.datetime.fromtimestamp(day / 1e9, dt.UTC).date(), underlying)
        rates = constant_rates(ref, settings.rates, rate=rate, source=rate_source)
        ours = option_quote_greeks(part("option_quotes"), part("option_contracts"), part("stock_quotes"),
                                   part("option_vendor_greeks"), rates, settings)
        stats = compare_to_vendor(ours, columns=("iv", "delta", "gamma", "theta", "vega"))
        table = pl.DataFrame(
            [{"quantity": k, **v} for k, v in stats.items()],
            schema={"quantity": pl.String, "n": pl.Int64, "median_abs_diff": pl.Float64,
                    "p95_abs_diff": pl.Float64, "max_abs_diff": pl.Float64},
        )
        models = ",".join(sorted(ours.get_column("model").unique().to_list()))
        sources = ",".join(sorted(ours.get_column("underlying_price_source").unique().to_list()))
        notes = f"model {models}; underlying from {sources}; rate {rate:.5f} from {rate_source}; IV from the NBBO mid"
        out.append(EvalResult(f"{path.name} [{underlying}]", table, notes))
    return out


def _data_rows(path: Path) -> int | None:
    """Lines after the header of a CSV (plain or gzip); None for other files."""
    if ".csv" not in path.name:
        return None
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return max(sum(1 for line in fh if line.strip()) - 1, 0)
