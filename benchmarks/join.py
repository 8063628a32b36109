"""Benchmark: as-of join of trades to quotes + quote-rule classification, ours vs peers.

Engines, all in this process on the same generated day (:func:`benchmarks.data.generate_day`):

* ``ours``: :func:`m17_platform.nbbo.asof_join_quotes` then
  :func:`m17_platform.aggressor.classify` (``rule="quote"``). Output: the trades with
  bid, ask, sizes, quote_ts_ns, quote_age_ns, nbbo_flag, side, side_rule,
  side_confidence, placement.
* ``polars``: ``DataFrame.join_asof(on="ts_ns", by=<instrument>, strategy="backward")``
  then the quote rule as a polars expression (:func:`quote_rule_expr`).
* ``duckdb``: ``ASOF LEFT JOIN`` in SQL over the polars frames registered as views
  (only table names in the SQL), fetched with ``.pl()``, then the same polars
  expression. ``asof_loop_join_threshold`` is set to 0: registered frames carry no
  cardinality estimate and DuckDB otherwise plans a nested-loop join (minutes).
  DuckDB does not keep the trade order; we do not ask for it (no ``ORDER BY`` in the
  timed query), the correctness check sorts by ``sequence`` afterwards.

Every engine runs on two layouts of the same data and we report both; the headline
ratio uses each engine's best layout:

* ``string``: the instrument as OCC strings (``contract``, polars String);
* ``enum``: the same dictionary-encoded (``contract_id``, polars Enum; Arrow
  dictionary for DuckDB).

Timing: one warm-up run (numba compilation, DuckDB's first plan), then the best of
``repeats`` runs, wall clock, from the in-memory frames to the classified frame.
Correctness, in the same run: every engine's matched quote (quote_ts_ns, bid, ask)
and side equal ours row for row (quote timestamps are unique within a contract in
the generated day, so the prevailing quote is unambiguous).
"""

from __future__ import annotations

import gc
import os
import resource
import time

import duckdb
import numba
import polars as pl

from benchmarks.cli import bench_main
from benchmarks.data import SIZES, generate_day
from m17_platform.aggressor import classify
from m17_platform.nbbo import asof_join_quotes
from m17_platform.settings import AggressorSettings

LAYOUTS = {"string": "contract", "enum": "contract_id"}
ENGINES = ("ours", "polars", "duckdb")
TARGETS = {"polars": 3.0, "duckdb": 15.0}
REPEATS = 3


def quote_rule_expr(tol: float = AggressorSettings().price_tolerance) -> pl.Expr:
    """The quote rule as a polars expression over ``price``, ``bid``, ``ask`` -> ``side``.

    Same definition as ``classify(rule="quote")``: a quote is usable when both sides
    are present and bid <= ask; buy above mid + tol, sell below mid - tol, else unknown.
    """
    bid, ask, price = pl.col("bid"), pl.col("ask"), pl.col("price")
    mid = (bid + ask) / 2.0
    usable = bid.is_not_null() & ask.is_not_null() & (bid <= ask)
    return (
        pl.when(usable & (price > mid + tol)).then(pl.lit("buy"))
        .when(usable & (price < mid - tol)).then(pl.lit("sell"))
        .otherwise(pl.lit("unknown"))
        .alias("side")
    )


def _ours(trades: pl.DataFrame, quotes: pl.DataFrame, inst: str) -> pl.DataFrame:
    joined = asof_join_quotes(trades, quotes, instrument=inst)
    return classify(joined, "quote", instrument=inst)


def _polars(trades: pl.DataFrame, quotes: pl.DataFrame, inst: str) -> pl.DataFrame:
    right = quotes.select(inst, "ts_ns", "bid", "ask", "bid_size", "ask_size", quote_ts_ns="ts_ns")
    joined = trades.join_asof(right, on="ts_ns", by=inst, strategy="backward", check_sortedness=False)
    return joined.with_columns(quote_rule_expr())


_DUCKDB_SQL = """
SELECT t.*, q.bid, q.ask, q.bid_size, q.ask_size, q.ts_ns AS quote_ts_ns
FROM bench_trades t ASOF LEFT JOIN bench_quotes q
  ON t.{inst} = q.{inst} AND t.ts_ns >= q.ts_ns
"""


def _duckdb_runner(con: duckdb.DuckDBPyConnection):
    def run(trades: pl.DataFrame, quotes: pl.DataFrame, inst: str) -> pl.DataFrame:
        con.register("bench_trades", trades)
        con.register("bench_quotes", quotes)
        # only a column name from LAYOUTS is formatted in, never a value
        joined = con.execute(_DUCKDB_SQL.format(inst=inst)).pl()
        return joined.with_columns(quote_rule_expr())

    return run


def _best_of(fn, repeats: int) -> tuple[float, list[float], pl.DataFrame]:
    out = fn()  # warm-up, not timed
    times = []
    for _ in range(repeats):
        del out
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, out


def _compare(ours: pl.DataFrame, other: pl.DataFrame) -> dict[str, int | float]:
    """Row-for-row comparison of matched quote and side (other aligned on ``sequence``)."""
    cols = ["sequence", "quote_ts_ns", "bid", "ask", "side"]
    a = ours.select(cols)
    b = other.select(cols).sort("sequence")
    if a.height != b.height:
        return {"rows": b.height, "mismatched_rows": abs(a.height - b.height), "max_abs_diff_bid_ask": float("nan")}
    same = pl.lit(True)
    for c in cols:
        same = same & (pl.col(c).eq_missing(pl.col(f"{c}_peer")))
    both = pl.concat([a, b.rename({c: f"{c}_peer" for c in cols})], how="horizontal")
    mismatched = both.select((~same).sum()).item()
    diff = both.select(
        pl.max_horizontal((pl.col("bid") - pl.col("bid_peer")).abs().max(), (pl.col("ask") - pl.col("ask_peer")).abs().max())
    ).item()
    return {"rows": b.height, "mismatched_rows": int(mismatched), "max_abs_diff_bid_ask": float(diff or 0.0)}


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def run(size: str = "full", *, repeats: int = REPEATS, n_quotes: int | None = None,
        n_trades: int | None = None) -> dict:
    """Run the join benchmark; returns the figures (see the module docstring).

    Parameters
    ----------
    size : {'small', 'full'}
        5M quotes / 200k trades or 50M / 2M over 2,000 contracts.
    repeats : int
        Timed runs per engine and layout (the best is reported).
    n_quotes, n_trades : int, optional
        Override the size (tests).
    """
    t0 = time.perf_counter()
    trades, quotes = generate_day(size, n_quotes=n_quotes, n_trades=n_trades)
    gen_s = time.perf_counter() - t0
    con = duckdb.connect()
    con.execute("SET asof_loop_join_threshold = 0")
    runners = {"ours": _ours, "polars": _polars, "duckdb": _duckdb_runner(con)}
    results: dict[str, dict] = {e: {} for e in ENGINES}
    checks: dict[str, dict] = {}
    for layout, inst in LAYOUTS.items():
        t = trades.select(inst, "ts_ns", "sequence", "price", "size")
        q = quotes.select(inst, "ts_ns", "sequence", "bid", "ask", "bid_size", "ask_size")
        ours_out = None
        for engine in ENGINES:
            best, times, out = _best_of(lambda: runners[engine](t, q, inst), repeats)
            results[engine][layout] = {"seconds": best, "runs": times}
            if engine == "ours":
                ours_out = out
                counts = dict(out.get_column("side").value_counts().iter_rows())
                results[engine][layout]["sides"] = {k: int(v) for k, v in counts.items()}
            else:
                checks[f"{engine}/{layout}"] = _compare(ours_out, out)
            del out
            gc.collect()
        del ours_out, t, q
        gc.collect()
    con.close()
    best = {e: min(results[e].values(), key=lambda r: r["seconds"]) for e in ENGINES}
    best_layout = {e: min(results[e], key=lambda k: results[e][k]["seconds"]) for e in ENGINES}
    ours_s = best["ours"]["seconds"]
    n_q, n_t = quotes.height, trades.height
    return {
        "benchmark": "join",
        "size": size if n_quotes is None else "custom",
        "quotes": n_q,
        "trades": n_t,
        "contracts": int(quotes.get_column("contract").n_unique()),
        "generate_seconds": gen_s,
        "input_bytes": {"quotes": quotes.estimated_size(), "trades": trades.estimated_size()},
        "threads": {"numba": numba.get_num_threads(), "polars": pl.thread_pool_size(), "cpus": os.cpu_count()},
        "repeats": repeats,
        "engines": {
            e: {
                "best_layout": best_layout[e],
                "seconds": best[e]["seconds"],
                "quotes_per_second": n_q / best[e]["seconds"],
                "trades_per_second": n_t / best[e]["seconds"],
                "layouts": results[e],
            }
            for e in ENGINES
        },
        "checks": checks,
        "all_agree": all(c["mismatched_rows"] == 0 for c in checks.values()),
        "ratio": {p: best[p]["seconds"] / ours_s for p in ("polars", "duckdb")},
        "targets": TARGETS,
        "peak_rss_gib": _peak_rss_gib(),
        "notes": [
            "end to end from in-memory polars frames to classified trades, quote rule included",
            "peers classify with a polars expression after the join (quote_rule_expr)",
            "duckdb: ASOF LEFT JOIN over registered polars frames, asof_loop_join_threshold=0, result via .pl(), no ORDER BY",
            "ratio = peer best seconds / ours best seconds, each on its best layout",
        ],
    }


def _print(res: dict) -> None:
    print(f"join + quote rule: {res['quotes']:,} quotes, {res['trades']:,} trades, {res['contracts']} contracts "
          f"(size {res['size']}, best of {res['repeats']}, warm-up excluded)")
    print(f"threads: {res['threads']}; generated in {res['generate_seconds']:.1f} s; "
          f"inputs {res['input_bytes']['quotes'] / 2**30:.2f} GiB quotes, {res['input_bytes']['trades'] / 2**30:.2f} GiB trades")
    print(f"{'engine':8} {'layout':7} {'seconds':>9} {'Mquotes/s':>10} {'runs':>28}")
    for e, r in res["engines"].items():
        for layout, lr in r["layouts"].items():
            mark = "*" if layout == r["best_layout"] else " "
            runs = " ".join(f"{x:.3f}" for x in lr["runs"])
            print(f"{e:8} {layout:6}{mark} {lr['seconds']:9.3f} {res['quotes'] / lr['seconds'] / 1e6:10.1f} {runs:>28}")
    print("correctness vs ours (matched quote ts, bid, ask, side; row for row):")
    for k, c in res["checks"].items():
        print(f"  {k:16} rows={c['rows']:,} mismatched={c['mismatched_rows']} max|diff bid/ask|={c['max_abs_diff_bid_ask']:.3g}")
    print(f"all agree: {res['all_agree']}; peak RSS {res['peak_rss_gib']:.2f} GiB")
    print(f"targets: polars >= {TARGETS['polars']}x, duckdb >= {TARGETS['duckdb']}x")
    print(f"ratio: polars={res['ratio']['polars']:.2f} duckdb={res['ratio']['duckdb']:.2f}")


def main(argv: list[str] | None = None) -> int:
    """``m17 bench join [--size small|full] [--json] [--repeats N]``."""
    return bench_main("join", __doc__, SIZES, REPEATS, run, _print, argv)


if __name__ == "__main__":
    raise SystemExit(main())
