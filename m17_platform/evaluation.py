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
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from m17_platform.aggressor import databento_eval_frame, lobster_eval_frame, score_rules
from m17_platform.enrichment import option_quote_greeks
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


def _lobster_pair(path: Path) -> tuple[Path, Path, str, dt.date]:
    m = _LOBSTER.match(path.name)
    if m is None:
        raise ValueError(f"{path}: not a LOBSTER message file (SYMBOL_YYYY-MM-DD_start_end_message_N.csv[.gz])")
    book = path.with_name(path.name.replace("_message_", "_orderbook_"))
    if not book.exists():
        raise FileNotFoundError(f"{path}: its orderbook file {book.name} is not beside it")
    return path, book, m["symbol"], dt.date.fromisoformat(m["date"])


def eval_aggressor(paths: list[str | Path], settings: Settings = DEFAULT) -> list[EvalResult]:
    """Score every aggressor rule on each dataset.

    Parameters
    ----------
    paths : list of paths
        LOBSTER message files (their orderbook file beside them) and Databento MBO DBN
        files (``.dbn`` / ``.dbn.zst``); a folder stands for the files in it.

    Returns
    -------
    list[EvalResult]
        Per dataset a table with rows = rule and columns accuracy (all trades),
        accuracy_at_quote, accuracy_inside (strictly inside the spread), n, ... (see
        :func:`m17_platform.aggressor.score_rules`).

    Raises
    ------
    ValueError, FileNotFoundError
        Naming a path that is neither, or a LOBSTER file without its orderbook.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(x for x in p.iterdir() if "_message_" in x.name or ".dbn" in x.name) if p.is_dir() else [p]
    out = []
    for path in files:
        if ".dbn" in path.name:
            frame = databento_eval_frame(path, settings=settings.nbbo)
            notes = "truth: CME aggressor side; quote: book rebuilt from MBO, strictly before each print"
        else:
            msg, book, symbol, day = _lobster_pair(path)
            frame = lobster_eval_frame(msg, book, symbol, day, settings=settings.nbbo)
            notes = "truth: LOBSTER direction of the executed resting order; quote: book row before the execution"
        out.append(EvalResult(path.name, score_rules(frame, settings=settings.aggressor), notes))
    return out


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
    raise ValueError(f"{path}: expected a Cboe UnderlyingOptionsIntervals*calcs* file or a TDA chain .json[.gz]")


def eval_greeks(path: str | Path, settings: Settings = DEFAULT) -> list[EvalResult]:
    """Compare our IV and greeks (from the NBBO mid) with the vendor's, per underlying.

    Returns
    -------
    list[EvalResult]
        Per underlying a table with rows = quantity (iv, delta, gamma, theta, vega) and
        columns n, median_abs_diff, p95_abs_diff, max_abs_diff (units of the quantity).
    """
    path = Path(path)
    tables, rate, rate_source = _greeks_inputs(path, settings)
    quotes = tables["option_quotes"]
    out = []
    for underlying in sorted(quotes.get_column("underlying").unique().to_list()):
        def part(name: str) -> pl.DataFrame:
            return tables[name].filter(pl.col("underlying") == underlying)

        day = quotes.filter(pl.col("underlying") == underlying).get_column("ts_ns").min()
        ref = PartitionRef(dt.datetime.fromtimestamp(day / 1e9, dt.timezone.utc).date(), underlying)
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
