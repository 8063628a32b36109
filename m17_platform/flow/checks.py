"""Checks of the gold flow tables, declared before any data exists (:data:`CHECKS`) and
run on one partition with the tables it was built from (:func:`check_table`).

Each check recomputes what it asserts from the inputs by a route of its own (plain
polars / numpy over the prints, not the engines' code), so a wrong engine fails it:

* ``premium``: premium = price x size x multiplier, summed, equals what the gold table holds;
* ``flows_sum_to_totals``: every roll-up and window length sums to the day's totals, and
  every cumulative series ends at its sum;
* ``evidence``: no alert or event without evidence, and every evidence id resolves to a
  print of the partition;
* ``baseline_no_lookahead``: every spike's baseline ends before its print and equals the
  statistics of the prints immediately before it;
* ``no_lookahead`` (gamma): the dealer position at each instant equals minus the signed
  customer contracts strictly before it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from m17_platform.calendar import NS_PER_SECOND
from m17_platform.flow.prints import SIDE_SIGN, evidence_id
from m17_platform.ordered import group_sums
from m17_platform.quality import ERROR, WARN, CheckOutcome
from m17_platform.schemas import (
    BARS,
    FLOW_ALERTS,
    FLOW_PACKETS,
    FLOW_WINDOWS,
    FUTURES_TRADES_ENRICHED,
    GAMMA_EXPOSURE,
    OFF_EXCHANGE_EVENTS,
    OFF_EXCHANGE_PRINTS,
    OPTION_TRADES_ENRICHED,
    STOCK_TRADES_ENRICHED,
)
from m17_platform.settings import DEFAULT, Settings

CHECKS: dict[str, tuple[tuple[str, str], ...]] = {
    FLOW_WINDOWS.name: (
        ("premium", "window premium sums to price x size x multiplier over the non-canceled prints, per window length"),
        ("flows_sum_to_totals", "every grain and window length sums to the day's totals; cumulative series end at their sums"),
    ),
    FLOW_PACKETS.name: (
        ("premium", "packet premium = VWAP x size x multiplier, and sums to price x size x multiplier of the prints"),
        ("packets_cover_prints", "every non-canceled print is in exactly one packet, no packet longer than the window"),
    ),
    FLOW_ALERTS.name: (
        ("evidence", "no alert without evidence; every evidence id resolves to a print of the partition"),
        ("baseline_no_lookahead", "spike baselines use only the contract's prints before the alert's print"),
        ("confidence", "confidence within [0, 1] and every alert gives reasons"),
    ),
    GAMMA_EXPOSURE.name: (
        ("no_lookahead", "customer-flow dealer position at each instant = -signed customer contracts strictly before it"),
        ("totals_match_strikes", "totals equal the sum of their strikes; walls are strikes of the same instant"),
    ),
    OFF_EXCHANGE_PRINTS.name: (
        ("off_exchange_flag", "one row per stock print; the flag is the source's TRF / ADF codes"),
    ),
    OFF_EXCHANGE_EVENTS.name: (
        ("evidence", "no event without evidence; every evidence id is a non-canceled off-exchange print of its symbol"),
        ("cooldown", "events of one kind and symbol start at least the cooldown apart"),
    ),
    BARS.name: (
        ("ohlcv", "low <= open, close, VWAP <= high; volume and trades per kind equal the non-canceled prints'"),
    ),
}
"""The checks of each gold table: (name, description)."""

INPUTS: dict[str, tuple[str, ...]] = {
    FLOW_WINDOWS.name: (OPTION_TRADES_ENRICHED.name,),
    FLOW_PACKETS.name: (OPTION_TRADES_ENRICHED.name,),
    FLOW_ALERTS.name: (OPTION_TRADES_ENRICHED.name,),
    GAMMA_EXPOSURE.name: (OPTION_TRADES_ENRICHED.name,),
    OFF_EXCHANGE_PRINTS.name: (STOCK_TRADES_ENRICHED.name,),
    OFF_EXCHANGE_EVENTS.name: (OFF_EXCHANGE_PRINTS.name,),
    BARS.name: (STOCK_TRADES_ENRICHED.name, FUTURES_TRADES_ENRICHED.name, OPTION_TRADES_ENRICHED.name),
}
"""The tables each gold table's checks read besides the table itself."""


def _close(a: float, b: float, tol: float) -> bool:
    """|a - b| within ``tol`` relative to the larger of 1, |a|, |b|."""
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def _counts(values: pl.Series) -> list[tuple]:
    """(value, rows) per distinct value, sorted by value (``value_counts`` lists them in any order)."""
    return sorted(values.value_counts().iter_rows(), key=lambda r: (r[0] is None, r[0]))


def _live(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.filter(~pl.col("canceled"))


# --- flow_windows -------------------------------------------------------------------------


def _window_checks(frame: pl.DataFrame, trades: pl.DataFrame, settings: Settings) -> list[CheckOutcome]:
    tol = settings.flow.check_rel_tol
    live = _live(trades)
    notional = float((live.get_column("price") * live.get_column("size") * live.get_column("multiplier")).sum() or 0.0)
    side = live.get_column("side")
    expected = {
        "trades": float(live.height),
        "volume": float(live.get_column("size").sum() or 0),
        "buy_volume": float(live.filter(side == "buy").get_column("size").sum() or 0),
        "sell_volume": float(live.filter(side == "sell").get_column("size").sum() or 0),
        "unknown_volume": float(live.filter(~side.is_in(["buy", "sell"])).get_column("size").sum() or 0),
        "premium": notional,
    }
    # per grain and window length, in the table's order (m17_platform.ordered): the totals in
    # the metadata are the same bits on every run
    sums = group_sums(frame, ["grain", "window_ns"], ["trades", "volume", "buy_volume", "sell_volume", "unknown_volume",
                                                     "premium", "net_premium", "delta_flow", "gamma_flow"],
                      order=[c for c in FLOW_WINDOWS.sort_key if c in frame.columns])
    prem_bad = [f"{r['grain']}/{r['window_ns']}" for r in sums.iter_rows(named=True)
                if not _close(r["premium"], notional, tol)]
    out = [CheckOutcome(
        "premium", not prem_bad, ERROR, "window premium sums to price x size x multiplier over the non-canceled prints",
        {"prints": live.height, "premium_from_prints": notional, "series_off": len(prem_bad),
         "first_off": prem_bad[0] if prem_bad else ""},
    )]
    bad = []
    for r in sums.iter_rows(named=True):
        for k, v in expected.items():
            if not _close(float(r[k]), v, tol):
                bad.append(f"{r['grain']}/{r['window_ns']}:{k}")
    ref = sums.row(0, named=True) if sums.height else None
    for r in sums.iter_rows(named=True):  # greek flows: every grain and window length agree
        for k in ("net_premium", "delta_flow", "gamma_flow"):
            if ref is not None and not _close(r[k], ref[k], tol):
                bad.append(f"{r['grain']}/{r['window_ns']}:{k}")
    keys = ["grain", "window_ns", "underlying", "option_symbol", "strike", "right"]
    ends = frame.sort("window_start_ns").group_by(keys).agg(
        *[(pl.col(f"cum_{m}").last() - pl.col(m).sum()).abs().alias(m) for m in
          ("trades", "volume", "premium", "net_premium", "delta_flow", "gamma_flow")],
        *[pl.col(m).abs().sum().alias(f"_{m}_abs") for m in ("premium", "net_premium", "delta_flow", "gamma_flow")],
    )
    cum_bad = 0
    for m in ("trades", "volume", "premium", "net_premium", "delta_flow", "gamma_flow"):
        scale = pl.col(f"_{m}_abs") if f"_{m}_abs" in ends.columns else pl.lit(0.0)
        cum_bad += int(ends.filter(pl.col(m) > tol * pl.max_horizontal(pl.lit(1.0), scale)).height)
    out.append(CheckOutcome(
        "flows_sum_to_totals", not bad and cum_bad == 0, ERROR,
        "every grain and window length sums to the day's totals; cumulative series end at their sums",
        {"series": ends.height, "totals_off": len(bad), "first_off": bad[0] if bad else "",
         "cumulative_off": cum_bad, **{f"total_{k}": v for k, v in expected.items()},
         **({f"total_{k}": float(ref[k]) for k in ("net_premium", "delta_flow", "gamma_flow")} if ref else {})},
    ))
    return out


# --- flow_packets -------------------------------------------------------------------------


def _packet_checks(frame: pl.DataFrame, trades: pl.DataFrame, settings: Settings) -> list[CheckOutcome]:
    tol = settings.flow.check_rel_tol
    live = _live(trades)
    notional = float((live.get_column("price") * live.get_column("size") * live.get_column("multiplier")).sum() or 0.0)
    rebuilt = frame.get_column("vwap") * frame.get_column("size") * frame.get_column("multiplier")
    rel = ((frame.get_column("premium") - rebuilt).abs() / frame.get_column("premium").abs().clip(1.0, None))
    bad_rows = int((rel > tol).sum()) if frame.height else 0
    total = float(frame.get_column("premium").sum() or 0.0)
    out = [CheckOutcome(
        "premium", bad_rows == 0 and _close(total, notional, tol), ERROR,
        "packet premium = VWAP x size x multiplier, and sums to price x size x multiplier of the prints",
        {"packets": frame.height, "rows_off": bad_rows, "premium_packets": total, "premium_from_prints": notional},
    )]
    ids = frame.get_column("evidence_trade_ids").explode().drop_nulls()
    expected = live.select(evidence_id("option_symbol")).get_column("evidence_id")
    window_ns = settings.flow.packet_window_ms * 1_000_000
    too_long = int((frame.get_column("end_ts_ns") - frame.get_column("ts_ns") > window_ns).sum()) if frame.height else 0
    counted = int(frame.get_column("prints").sum() or 0)
    same = ids.len() == expected.len() and ids.sort().equals(expected.sort())
    out.append(CheckOutcome(
        "packets_cover_prints", counted == live.height and same and too_long == 0, ERROR,
        "every non-canceled print is in exactly one packet, no packet longer than the window",
        {"prints": live.height, "prints_in_packets": counted, "evidence_ids_match": bool(same),
         "packets_longer_than_window": too_long, "packet_window_ms": settings.flow.packet_window_ms},
    ))
    return out


# --- flow_alerts --------------------------------------------------------------------------


def _alert_checks(frame: pl.DataFrame, trades: pl.DataFrame, settings: Settings) -> list[CheckOutcome]:
    known = set(trades.select(evidence_id("option_symbol")).get_column("evidence_id").to_list())
    lengths = frame.get_column("evidence_trade_ids").list.len()
    empty = int((lengths == 0).sum()) if frame.height else 0
    miscount = int((lengths != frame.get_column("evidence_count")).sum()) if frame.height else 0
    ids = frame.get_column("evidence_trade_ids").explode().drop_nulls().to_list()
    unresolved = [i for i in ids if i not in known]
    out = [CheckOutcome(
        "evidence", empty == 0 and miscount == 0 and not unresolved, ERROR,
        "no alert without evidence; every evidence id resolves to a print of the partition",
        {"alerts": frame.height, "without_evidence": empty, "evidence_count_off": miscount, "evidence_ids": len(ids),
         "unresolved": len(unresolved), "first_unresolved": unresolved[0] if unresolved else ""},
    )]
    out.append(_baseline_check(frame, trades, settings))
    conf = frame.get_column("confidence")
    out_of_range = int(((conf < 0) | (conf > 1) | conf.is_null() | conf.is_nan()).sum()) if frame.height else 0
    no_reasons = int((frame.get_column("reasons").list.len() == 0).sum()) if frame.height else 0
    out.append(CheckOutcome(
        "confidence", out_of_range == 0 and no_reasons == 0, WARN, "confidence within [0, 1] and every alert gives reasons",
        {"alerts": frame.height, "confidence_out_of_range": out_of_range, "without_reasons": no_reasons,
         **{f"alerts.{k}": int(v) for k, v in _counts(frame.get_column("classifier"))}},
    ))
    return out


def _baseline_check(frame: pl.DataFrame, trades: pl.DataFrame, settings: Settings) -> CheckOutcome:
    c = settings.classifiers
    tol = settings.flow.check_rel_tol
    spikes = frame.filter(pl.col("classifier") == "spike")
    max_age = c.spike_baseline_max_age_seconds * NS_PER_SECOND
    live = _live(trades).sort(["option_symbol", "ts_ns", "sequence"]).with_columns(evidence_id("option_symbol"))
    symbols = live.get_column("option_symbol").to_numpy()
    position = {(s, e): i for i, (s, e) in enumerate(zip(symbols, live.get_column("evidence_id").to_list()))}
    ts = live.get_column("ts_ns").to_numpy()
    prem = live.get_column("premium").to_numpy()
    size = live.get_column("size").to_numpy().astype(np.float64)
    bad: list[str] = []
    for r in spikes.iter_rows(named=True):
        i = position.get((r["option_symbol"], r["evidence_trade_ids"][0]))
        n = r["baseline_n"] or 0
        if i is None or n <= 0:
            bad.append(r["alert_id"])
            continue
        lo = i - n
        ok = (
            lo >= 0 and bool(np.all(symbols[lo:i] == symbols[i]))
            and r["baseline_last_ts_ns"] == ts[i - 1] and r["baseline_first_ts_ns"] == ts[lo]
            and r["baseline_last_ts_ns"] <= r["ts_ns"] and ts[i] - ts[lo] <= max_age
            and _close(float(prem[lo:i].mean()), r["baseline_premium_mean"], tol)
            and _close(float(size[lo:i].mean()), r["baseline_size_mean"], tol)
        )
        if not ok:
            bad.append(r["alert_id"])
    return CheckOutcome(
        "baseline_no_lookahead", not bad, ERROR, "spike baselines use only the contract's prints before the alert's print",
        {"spikes": spikes.height, "off": len(bad), "first_off": bad[0] if bad else "",
         "baseline_prints": c.spike_baseline_prints, "max_age_seconds": c.spike_baseline_max_age_seconds},
    )


# --- gamma_exposure -----------------------------------------------------------------------


def _gamma_checks(frame: pl.DataFrame, trades: pl.DataFrame, settings: Settings) -> list[CheckOutcome]:
    tol = settings.flow.check_rel_tol
    flow = frame.filter((pl.col("source") == "customer_flow") & (pl.col("grain") == "total")).sort("ts_ns")
    live = _live(trades).sort("ts_ns")
    signed = (live.get_column("side").replace_strict(SIDE_SIGN, default=0, return_dtype=pl.Int64)
              * live.get_column("size")).to_numpy()
    cum = np.r_[0, np.cumsum(-signed)]
    before = np.searchsorted(live.get_column("ts_ns").to_numpy(), flow.get_column("ts_ns").to_numpy(), side="left")
    expected = cum[before]
    got = flow.get_column("dealer_position").to_numpy()
    off = int((expected != got).sum())
    out = [CheckOutcome(
        "no_lookahead", off == 0, ERROR,
        "customer-flow dealer position at each instant = -signed customer contracts strictly before it",
        {"instants": flow.height, "off": off, "final_dealer_position": int(got[-1]) if got.size else 0},
    )]
    strikes = frame.filter(pl.col("grain") == "strike").group_by(["source", "ts_ns"]).agg(
        pl.col("net_gex").sum().alias("_sum"), pl.col("net_gex").abs().sum().alias("_abs"),
        pl.col("strike").alias("_strikes"))
    totals = frame.filter(pl.col("grain") == "total").join(strikes, on=["source", "ts_ns"], how="left")
    sum_off = int(totals.filter(
        ((pl.col("net_gex") - pl.col("_sum").fill_null(0.0)).abs() > tol * pl.max_horizontal(pl.lit(1.0), pl.col("_abs")))
    ).height)
    wall_off = int(totals.filter(
        (pl.col("call_wall").is_not_null() & ~pl.col("_strikes").list.contains(pl.col("call_wall")))
        | (pl.col("put_wall").is_not_null() & ~pl.col("_strikes").list.contains(pl.col("put_wall")))
    ).height)
    out.append(CheckOutcome(
        "totals_match_strikes", sum_off == 0 and wall_off == 0, ERROR,
        "totals equal the sum of their strikes; walls are strikes of the same instant",
        {"totals": totals.height, "sums_off": sum_off, "walls_off": wall_off,
         **{f"instants.{k}": int(v) for k, v in _counts(totals.get_column("source"))}},
    ))
    return out


# --- off-exchange -------------------------------------------------------------------------


def _offex_print_checks(frame: pl.DataFrame, trades: pl.DataFrame, settings: Settings) -> list[CheckOutcome]:
    codes = settings.off_exchange.off_exchange_codes
    expected = [
        any(src is not None and ex is not None and src.startswith(prefix) and ex in set(c) for prefix, c in codes.items())
        for src, ex in zip(frame.get_column("source").to_list(), frame.get_column("exchange").to_list())
    ]
    flags = frame.get_column("off_exchange").to_list()
    off = sum(1 for a, b in zip(expected, flags) if a != b)
    return [CheckOutcome(
        "off_exchange_flag", off == 0 and frame.height == trades.height, ERROR,
        "one row per stock print; the flag is the source's TRF / ADF codes",
        {"rows": frame.height, "stock_prints": trades.height, "flags_off": off, "off_exchange": int(sum(flags)),
         "off_exchange_share": (sum(flags) / len(flags)) if flags else 0.0},
    )]


def _offex_event_checks(frame: pl.DataFrame, prints: pl.DataFrame, settings: Settings) -> list[CheckOutcome]:
    dark = prints.filter(pl.col("off_exchange") & ~pl.col("canceled"))
    known = set(zip(dark.get_column("symbol").to_list(), dark.get_column("evidence_id").to_list()))
    empty = 0
    unresolved = 0
    for sym, ids, count in zip(frame.get_column("symbol").to_list(), frame.get_column("evidence_trade_ids").to_list(),
                               frame.get_column("evidence_count").to_list()):
        if not ids or count < len(ids):
            empty += 1
        unresolved += sum(1 for i in ids if (sym, i) not in known)
    out = [CheckOutcome(
        "evidence", empty == 0 and unresolved == 0, ERROR,
        "no event without evidence; every evidence id is a non-canceled off-exchange print of its symbol",
        {"events": frame.height, "without_evidence": empty, "unresolved": unresolved,
         **{f"events.{k}": int(v) for k, v in _counts(frame.get_column("kind"))}},
    )]
    cooldown_ns = settings.off_exchange.cooldown_ms * 1_000_000
    gaps = frame.sort(["symbol", "kind", "ts_ns"]).with_columns(
        pl.col("ts_ns").diff().over(["symbol", "kind"]).alias("_gap"))
    close = int(gaps.filter(pl.col("_gap") < cooldown_ns).height)
    late = int(frame.filter(pl.col("known_ts_ns") < pl.col("ts_ns")).height)
    out.append(CheckOutcome(
        "cooldown", close == 0 and late == 0, WARN, "events of one kind and symbol start at least the cooldown apart",
        {"events": frame.height, "within_cooldown": close, "known_before_start": late,
         "cooldown_ms": settings.off_exchange.cooldown_ms},
    ))
    return out


# --- bars ---------------------------------------------------------------------------------


def _bar_checks(frame: pl.DataFrame, inputs: Mapping[str, pl.DataFrame], settings: Settings) -> list[CheckOutcome]:
    tol = settings.flow.check_rel_tol
    eps = tol * pl.max_horizontal(pl.lit(1.0), pl.col("high").abs())
    bad = int(frame.filter(
        (pl.col("low") > pl.min_horizontal("open", "close") + eps)
        | (pl.col("high") < pl.max_horizontal("open", "close") - eps)
        | (pl.col("vwap") < pl.col("low") - eps) | (pl.col("vwap") > pl.col("high") + eps)
        | (pl.col("volume") <= 0) | (pl.col("trades") <= 0)
    ).height)
    sources = {"stock": STOCK_TRADES_ENRICHED.name, "futures": FUTURES_TRADES_ENRICHED.name,
               "option": OPTION_TRADES_ENRICHED.name}
    meta: dict = {"bars": frame.height, "bars_off": bad}
    totals_off = 0
    for kind, name in sources.items():
        live = _live(inputs[name]) if name in inputs else None
        if live is None:
            continue
        got = frame.filter(pl.col("kind") == kind)
        want_v, want_n = int(live.get_column("size").sum() or 0), live.height
        have_v, have_n = int(got.get_column("volume").sum() or 0), int(got.get_column("trades").sum() or 0)
        meta[f"{kind}.volume"] = have_v
        meta[f"{kind}.trades"] = have_n
        totals_off += int(want_v != have_v) + int(want_n != have_n)
    scaled = frame.filter(pl.col("kind") == "futures_underlying_scale")
    meta["futures_underlying_scale.bars"] = scaled.height
    meta["totals_off"] = totals_off
    return [CheckOutcome(
        "ohlcv", bad == 0 and totals_off == 0, ERROR,
        "low <= open, close, VWAP <= high; volume and trades per kind equal the non-canceled prints'", meta,
    )]


def check_table(name: str, frame: pl.DataFrame, inputs: Mapping[str, pl.DataFrame],
                settings: Settings = DEFAULT) -> list[CheckOutcome]:
    """Run the checks of gold table ``name`` (:data:`CHECKS`) on one partition.

    Parameters
    ----------
    name : str
        A gold flow table.
    frame : polars.DataFrame
        The partition's rows.
    inputs : mapping of table name -> polars.DataFrame
        The partition's rows of the tables :data:`INPUTS` names for ``name``.

    Returns
    -------
    list[CheckOutcome]
        One per check of ``name``, in :data:`CHECKS` order.

    Raises
    ------
    KeyError
        If ``name`` is not a gold flow table, or an input it needs is missing.
    """
    if name not in CHECKS:
        raise KeyError(f"{name!r} is not a gold flow table; known: {sorted(CHECKS)}")
    missing = [t for t in INPUTS[name] if t not in inputs]
    if missing:
        raise KeyError(f"the checks of {name} need the tables {missing}")
    first = inputs[INPUTS[name][0]]
    if name == FLOW_WINDOWS.name:
        return _window_checks(frame, first, settings)
    if name == FLOW_PACKETS.name:
        return _packet_checks(frame, first, settings)
    if name == FLOW_ALERTS.name:
        return _alert_checks(frame, first, settings)
    if name == GAMMA_EXPOSURE.name:
        return _gamma_checks(frame, first, settings)
    if name == OFF_EXCHANGE_PRINTS.name:
        return _offex_print_checks(frame, first, settings)
    if name == OFF_EXCHANGE_EVENTS.name:
        return _offex_event_checks(frame, first, settings)
    return _bar_checks(frame, inputs, settings)
