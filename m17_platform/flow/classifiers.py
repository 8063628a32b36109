"""Flow classifiers, their alerts, and the signal-filtering presets (seed 004).

Every classifier reads its thresholds from :class:`~m17_platform.settings.ClassifierSettings`
and produces alerts with a confidence and the reasons behind it; every alert names the
prints it stands on (``evidence_trade_ids``, :func:`.prints.evidence_id`).

Classifiers
-----------
``sweep`` (on packets)
    At least ``sweep_min_prints`` prints on at least ``sweep_min_exchanges`` (> 1)
    exchanges within the packet window, one side (dominant side share >=
    ``min_aggressor_ratio``), premium >= ``sweep_min_premium``, NBBO coverage >=
    ``min_nbbo_coverage``. Confidence factors: side share, share of the contracts at or
    through the aggressor's quote (AA/A for buys, B/BB for sells), NBBO coverage,
    size-weighted side confidence of the prints.
``block`` (on prints)
    One print of at least ``block_min_size`` contracts and ``block_min_premium``.
    Factors: the print's side confidence, whether its NBBO is usable.
``repeated_hits`` (on packets)
    At least ``repeat_min_packets`` packets of one contract on one side (buy or sell)
    within ``repeat_window_seconds``, premium together >= ``repeat_min_premium``.
    Factors: mean side share, mean NBBO coverage, mean side confidence of the packets.
``spike`` (on prints)
    Premium (or size) z-score against a rolling baseline of the same contract's prior
    prints: at most ``spike_baseline_prints`` prints immediately before the print in
    (ts_ns, sequence) order, none older than ``spike_baseline_max_age_seconds``, at
    least ``spike_min_samples`` of them; z = (x - mean) / sample std (ddof 1); a
    constant baseline gives z = +inf above it. Fires at premium >= ``spike_min_premium``
    with z >= ``spike_min_premium_z``, or size >= ``spike_min_size`` with z >=
    ``spike_min_size_z``. The baseline never includes the print or anything after it
    (:func:`spike_baselines`, numba). Factors: z margin 1 - z_min / z, side confidence,
    NBBO usable.
``zero_dte_burst`` (on packets)
    Packets of contracts expiring on the trade date with |strike / S - 1| <=
    ``zero_dte_max_atm_pct``, grouped by right and side: at least
    ``zero_dte_min_packets`` within ``zero_dte_window_seconds`` with premium >=
    ``zero_dte_min_premium`` and contracts >= ``zero_dte_min_size``. Factors: mean side
    share, mean NBBO coverage, closeness to the money 1 - mean |K/S - 1| / max.
``vertical`` / ``straddle`` / ``strangle`` / ``multi_leg`` (on prints)
    Prints of different contracts of the underlying at most ``multi_leg_tolerance_ms``
    apart (0: the same timestamp), 2..``multi_leg_max_legs`` contracts, one expiration
    for the named structures, equal contracts per leg: two legs of one right and two
    strikes are a vertical; a call and a put at one strike a straddle, at two strikes a
    strangle; three or more equal legs, a calendar, or legs the source marks multi-leg
    (``multi_leg_conditions``) are ``multi_leg``. Factors: size match (smallest / largest
    leg), side pattern (vertical: legs on opposite sides; straddle / strangle: one side;
    1 when it holds, 0.5 when sides are unknown, 0 when contradicted), 1 when the source
    marks the legs multi-leg else 0.5, NBBO coverage.

Confidence is the mean of the classifier's factors, each in [0, 1]; ``reasons`` lists the
thresholds met and every factor's value, so an alert explains itself.

Each classifier function (:func:`sweeps`, :func:`blocks`, :func:`repeated_hits`,
:func:`spikes`, :func:`zero_dte_bursts`, :func:`multi_leg_structures`) takes prints
(:func:`classifier_prints`) or packets (:func:`.packets.packet_table`) and returns its
alerts as a polars DataFrame with the ``flow_alerts`` columns except ``alert_id`` and
``presets`` (added by :func:`flow_alerts`), plus ``placement``, ``is_sweep`` and
``nbbo_stale`` for :func:`signal_presets`; times in ns since epoch UTC, premium in
dollars, size in contracts.

Repeated-hits and 0DTE bursts report each burst once: after an alert, the next one of
the same group needs new packets (evidence never overlaps).
"""

from __future__ import annotations

import datetime as dt

import numba
import numpy as np
import polars as pl

from m17_platform.calendar import NS_PER_SECOND
from m17_platform.flow.packets import iso_flag
from m17_platform.flow.prints import run_codes
from m17_platform.flow.windows import print_flows
from m17_platform.ordered import ordered_mean, ordered_sum
from m17_platform.schemas import FLOW_ALERTS
from m17_platform.settings import DEFAULT, SignalPreset, Settings

ALERT_DTYPES: dict[str, pl.DataType] = dict(pl.from_arrow(FLOW_ALERTS.schema.empty_table()).schema)
"""Polars dtypes of the flow_alerts columns."""

_SPIKE_COLUMNS = ("premium_z", "size_z", "baseline_n", "baseline_premium_mean", "baseline_size_mean",
                  "baseline_first_ts_ns", "baseline_last_ts_ns")
_IDENTITY = ("option_symbol", "underlying", "root", "expiration", "strike", "right")


# --- signal presets ------------------------------------------------------------------------


def _preset_keep(preset: SignalPreset, etf: pl.Expr, sweep: pl.Expr, stale: pl.Expr) -> pl.Expr:
    if preset.keep_all:
        return pl.lit(True)
    p = pl.col("premium")
    placement = pl.col("placement")
    return (
        pl.when(p >= preset.auto_keep_notional).then(True)
        .when(p < preset.min_notional).then(False)
        .when(etf & (p < preset.etf_min_notional)).then(False)
        .when(placement.is_in(["B", "BB"]).fill_null(False) & (p < preset.bid_side_min_notional)).then(False)
        .when((placement == "MID").fill_null(False) & ~sweep & (p < preset.mid_min_notional)).then(False)
        .when(stale & (p < preset.stale_min_notional)).then(False)
        .when(placement.is_in(["A", "AA"]).fill_null(False) & (p >= preset.ask_side_keep_notional)).then(True)
        .when(sweep & (p >= preset.sweep_keep_notional)).then(True)
        .when((pl.col("size") >= preset.large_size) & (p >= preset.large_size_keep_notional)).then(True)
        .otherwise(False)
    )


def signal_presets(frame: pl.DataFrame, settings: Settings = DEFAULT) -> pl.Series:
    """The signal-filtering presets (seed 004) each row passes.

    Parameters
    ----------
    frame : polars.DataFrame
        Rows with ``premium`` (dollars), ``size`` (contracts), ``placement``
        (AA/A/MID/B/BB or null), ``underlying``, ``is_sweep`` (bool: a sweep or an ISO
        print) and ``nbbo_stale`` (bool: the NBBO is missing or older than
        ``SignalFilterSettings.nbbo_max_age_ms``; for packets and alerts, on fewer than
        ``ClassifierSettings.min_nbbo_coverage`` of their prints).
    settings : Settings
        ``signals.presets`` (rules in :class:`~m17_platform.settings.SignalPreset`'s
        order) and ``signals.etf_underlyings``.

    Returns
    -------
    polars.Series of list[str]
        Preset names passed, in the settings' order, one list per row, named ``presets``.
    """
    etf = pl.col("underlying").is_in(list(settings.signals.etf_underlyings))
    sweep = pl.col("is_sweep").fill_null(False)
    stale = pl.col("nbbo_stale").fill_null(True)
    names = [
        pl.when(_preset_keep(preset, etf, sweep, stale)).then(pl.lit(name)).otherwise(pl.lit(None, dtype=pl.String))
        for name, preset in settings.signals.presets.items()
    ]
    if not names:
        return pl.Series("presets", [[] for _ in range(frame.height)], dtype=pl.List(pl.String))
    return frame.select(pl.concat_list(names).list.drop_nulls().alias("presets")).get_column("presets")


# --- numba kernels -------------------------------------------------------------------------


@numba.njit(cache=True)
def _bursts_kernel(group, ts, premium, size, window_ns, min_count, min_premium, min_size):
    n = ts.shape[0]
    starts = np.empty(n, dtype=np.int64)
    ends = np.empty(n, dtype=np.int64)
    m = 0
    j = 0
    prem = 0.0
    qty = 0
    for i in range(n):
        if i == 0 or group[i] != group[i - 1] or j > i:
            j = i
            prem = 0.0
            qty = 0
        prem += premium[i]
        qty += size[i]
        while ts[i] - ts[j] > window_ns:
            prem -= premium[j]
            qty -= size[j]
            j += 1
        if i - j + 1 >= min_count and prem >= min_premium and qty >= min_size:
            starts[m] = j
            ends[m] = i
            m += 1
            j = i + 1
            prem = 0.0
            qty = 0
    return starts[:m], ends[:m]


def bursts(group: np.ndarray, ts: np.ndarray, premium: np.ndarray, size: np.ndarray, *, window_ns: int,
           min_count: int, min_premium: float, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping bursts: runs of rows of one group within ``window_ns`` that reach
    ``min_count`` rows, ``min_premium`` dollars and ``min_size`` contracts.

    Scanning each group in time order, a burst is reported at the first row where the
    rows of the trailing window (since the previous burst of the group) reach every
    minimum; the window then restarts after that row.

    Parameters
    ----------
    group : int64 (n,)
        Group code; rows sorted by (group, ts).
    ts : int64 (n,)
        ns since epoch UTC.
    premium : float64 (n,)
        dollars.
    size : int64 (n,)
        contracts.

    Returns
    -------
    (starts, ends) : int64 arrays
        Row index of each burst's first and last row (inclusive).
    """
    return _bursts_kernel(
        np.ascontiguousarray(group, dtype=np.int64), np.ascontiguousarray(ts, dtype=np.int64),
        np.ascontiguousarray(premium, dtype=np.float64), np.ascontiguousarray(size, dtype=np.int64),
        np.int64(window_ns), np.int64(min_count), np.float64(min_premium), np.int64(min_size),
    )


@numba.njit(cache=True)
def _baseline_kernel(group, ts, premium, size, max_n, max_age_ns):
    n = ts.shape[0]
    count = np.zeros(n, dtype=np.int64)
    pm = np.full(n, np.nan)
    ps = np.full(n, np.nan)
    sm = np.full(n, np.nan)
    ss = np.full(n, np.nan)
    first = np.full(n, -1, dtype=np.int64)
    last = np.full(n, -1, dtype=np.int64)
    start = 0
    for i in range(n):
        if i == 0 or group[i] != group[i - 1]:
            start = i
        k = i - 1
        c = 0
        sp = 0.0
        sq = 0.0
        while k >= start and c < max_n and ts[i] - ts[k] <= max_age_ns:
            sp += premium[k]
            sq += size[k]
            c += 1
            k -= 1
        count[i] = c
        if c == 0:
            continue
        first[i] = ts[k + 1]
        last[i] = ts[i - 1]
        mp = sp / c
        mq = sq / c
        pm[i] = mp
        sm[i] = mq
        if c > 1:
            vp = 0.0
            vq = 0.0
            for r in range(k + 1, i):
                vp += (premium[r] - mp) ** 2
                vq += (size[r] - mq) ** 2
            ps[i] = np.sqrt(vp / (c - 1))
            ss[i] = np.sqrt(vq / (c - 1))
    return count, pm, ps, sm, ss, first, last


def spike_baselines(prints: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """Rolling baseline of each print from its contract's prior prints only.

    Parameters
    ----------
    prints : polars.DataFrame
        Sorted by (option_symbol, ts_ns, sequence), with ``premium`` (dollars) and
        ``size`` (contracts).
    settings : Settings
        ``classifiers.spike_baseline_prints`` (count) and
        ``classifiers.spike_baseline_max_age_seconds`` (seconds).

    Returns
    -------
    polars.DataFrame
        One row per print, same order: ``baseline_n`` (int64), ``baseline_premium_mean``
        and ``baseline_premium_std`` (dollars), ``baseline_size_mean`` and
        ``baseline_size_std`` (contracts; std ddof 1, null below two prints),
        ``baseline_first_ts_ns`` / ``baseline_last_ts_ns`` (ns; null without a baseline),
        ``premium_z`` / ``size_z`` (standard deviations; +inf above a constant
        baseline, null without a std).

    Notes
    -----
    The baseline of row i is rows i-1, i-2, ... of the same contract, at most
    ``spike_baseline_prints`` of them and none more than the max age before row i: only
    earlier data, so changing a later print never changes an earlier print's baseline.
    """
    c = settings.classifiers
    if prints.height == 0:
        code = np.empty(0, dtype=np.int64)
    else:
        code = run_codes(prints, ["option_symbol"])
    count, pm, ps, sm, ss, first, last = _baseline_kernel(
        np.ascontiguousarray(code, dtype=np.int64),
        np.ascontiguousarray(prints.get_column("ts_ns").to_numpy(), dtype=np.int64),
        np.ascontiguousarray(prints.get_column("premium").to_numpy(), dtype=np.float64),
        np.ascontiguousarray(prints.get_column("size").to_numpy(), dtype=np.float64),
        np.int64(c.spike_baseline_prints), np.int64(round(c.spike_baseline_max_age_seconds * NS_PER_SECOND)),
    )
    frame = pl.DataFrame({
        "baseline_n": count,
        "baseline_premium_mean": pm, "baseline_premium_std": ps,
        "baseline_size_mean": sm, "baseline_size_std": ss,
        "baseline_first_ts_ns": first, "baseline_last_ts_ns": last,
    }).with_columns(pl.col(n).fill_nan(None) for n in ("baseline_premium_mean", "baseline_premium_std",
                                                       "baseline_size_mean", "baseline_size_std"))
    frame = frame.with_columns(
        pl.when(pl.col("baseline_n") > 0).then(pl.col(n)).alias(n) for n in ("baseline_first_ts_ns", "baseline_last_ts_ns")
    )

    def z(x: pl.Expr, mean: str, std: str) -> pl.Expr:
        return (
            pl.when(pl.col(std) > 0).then((x - pl.col(mean)) / pl.col(std))
            .when((pl.col(std) == 0) & (x > pl.col(mean))).then(float("inf"))
            .when(pl.col(std) == 0).then(0.0)
        )

    frame = frame.with_columns(
        prints.get_column("premium").cast(pl.Float64).alias("_x_premium"),
        prints.get_column("size").cast(pl.Float64).alias("_x_size"),
    )
    return frame.with_columns(
        z(pl.col("_x_premium"), "baseline_premium_mean", "baseline_premium_std").alias("premium_z"),
        z(pl.col("_x_size"), "baseline_size_mean", "baseline_size_std").alias("size_z"),
    ).drop("_x_premium", "_x_size")


# --- shared assembly ----------------------------------------------------------------------


def most_common(expr: pl.Expr) -> pl.Expr:
    """The most frequent value of ``expr`` in a group (null counts as a value, as in
    ``Expr.mode``); of equally frequent ones the smallest, null last (``Expr.mode`` lists
    ties in an order that changes from run to run)."""
    return expr.mode().sort(nulls_last=True).first()


def _mean_factors(*factors: pl.Expr) -> pl.Expr:
    return pl.mean_horizontal([f.fill_null(0.0).clip(0.0, 1.0) for f in factors])


def _pct(expr: pl.Expr) -> pl.Expr:
    return (expr * 100).round(0).cast(pl.Int64).cast(pl.String) + pl.lit("%")


def _dollars(expr: pl.Expr) -> pl.Expr:
    return pl.lit("$") + expr.round(0).cast(pl.Int64).cast(pl.String)


def _fmt(expr: pl.Expr, digits: int = 2) -> pl.Expr:
    return expr.round(digits).cast(pl.String)


def _finish(frame: pl.DataFrame, classifier: str) -> pl.DataFrame:
    """Fill the columns every classifier shares and order them like FLOW_ALERTS
    (alert_id and presets still to come)."""
    cols = []
    for name in FLOW_ALERTS.columns:
        if name in ("alert_id", "presets"):
            continue
        if name in frame.columns:
            cols.append(pl.col(name).cast(ALERT_DTYPES[name]))
        elif name == "classifier":
            cols.append(pl.lit(classifier).alias("classifier"))
        elif name == "evidence_count":
            cols.append(pl.col("evidence_trade_ids").list.len().cast(pl.Int64).alias("evidence_count"))
        elif name == "legs":
            cols.append(pl.concat_list(pl.col("option_symbol")).alias("legs"))
        else:
            cols.append(pl.lit(None, dtype=ALERT_DTYPES[name]).alias(name))
    extra = [pl.col(c) for c in ("placement", "is_sweep", "nbbo_stale") if c in frame.columns]
    return frame.select(*cols, *extra)


def _empty_alerts() -> pl.DataFrame:
    return pl.from_arrow(FLOW_ALERTS.schema.empty_table()).drop("alert_id", "presets").with_columns(
        pl.lit(None, dtype=pl.String).alias("placement"), pl.lit(None, dtype=pl.Boolean).alias("is_sweep"),
        pl.lit(None, dtype=pl.Boolean).alias("nbbo_stale"),
    )


def sweep_mask(settings: Settings = DEFAULT) -> pl.Expr:
    """Boolean expression over :func:`.packets.packet_table` rows: the packet is a sweep."""
    c = settings.classifiers
    return (
        (pl.col("prints") >= c.sweep_min_prints)
        & (pl.col("exchange_count") >= max(c.sweep_min_exchanges, 2))
        & pl.col("side").is_in(["buy", "sell"])
        & (pl.col("premium") >= c.sweep_min_premium)
        & (pl.col("nbbo_coverage") >= c.min_nbbo_coverage)
    )


def _aggressive_share() -> pl.Expr:
    size = pl.col("size").cast(pl.Float64)
    return (
        pl.when(pl.col("side") == "buy").then((pl.col("above_ask_volume") + pl.col("at_ask_volume")) / size)
        .when(pl.col("side") == "sell").then((pl.col("at_bid_volume") + pl.col("below_bid_volume")) / size)
        .otherwise(0.0)
    )


def sweeps(packets: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """``sweep`` alerts from :func:`.packets.packet_table` rows (see module docstring)."""
    c = settings.classifiers
    hits = packets.filter(sweep_mask(settings))
    if hits.height == 0:
        return _empty_alerts()
    aggressive = _aggressive_share()
    return _finish(
        hits.with_columns(
            pl.col("ts_ns").alias("start_ts_ns"), pl.col("end_ts_ns").alias("ts_ns"),
            _mean_factors(pl.col("side_share"), aggressive, pl.col("nbbo_coverage"), pl.col("side_confidence"))
            .alias("confidence"),
            pl.concat_list(
                pl.format("{} prints on {} exchanges ({}) in {} ms", pl.col("prints"), pl.col("exchange_count"),
                          pl.col("exchanges").list.join(","), _fmt((pl.col("end_ts_ns") - pl.col("ts_ns")) / 1e6, 3)),
                pl.format("premium {} >= {}", _dollars(pl.col("premium")), pl.lit(f"${c.sweep_min_premium:,.0f}")),
                pl.format("side {} on {} of contracts (min {})", pl.col("side"), _pct(pl.col("side_share")),
                          pl.lit(f"{c.min_aggressor_ratio:.0%}")),
                pl.format("factor aggressive_share={}", _fmt(aggressive)),
                pl.format("factor nbbo_coverage={}", _fmt(pl.col("nbbo_coverage"))),
                pl.format("factor side_confidence={}", _fmt(pl.col("side_confidence"))),
            ).alias("reasons"),
            pl.lit(True).alias("is_sweep"),
            (pl.col("nbbo_fresh_share") < c.min_nbbo_coverage).alias("nbbo_stale"),
        ),
        "sweep",
    )


def blocks(prints: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """``block`` alerts: single prints of at least ``block_min_size`` contracts and
    ``block_min_premium`` dollars."""
    c = settings.classifiers
    hits = prints.filter((pl.col("size") >= c.block_min_size) & (pl.col("premium") >= c.block_min_premium))
    if hits.height == 0:
        return _empty_alerts()
    ok = pl.col("nbbo_ok").cast(pl.Float64)
    return _finish(
        hits.with_columns(
            pl.col("ts_ns").alias("start_ts_ns"),
            _mean_factors(pl.col("side_confidence"), ok).alias("confidence"),
            pl.concat_list(
                pl.format("single print of {} contracts >= {}", pl.col("size"), pl.lit(f"{c.block_min_size:,}")),
                pl.format("premium {} >= {}", _dollars(pl.col("premium")), pl.lit(f"${c.block_min_premium:,.0f}")),
                pl.format("side {} by {}", pl.col("side"), pl.col("side_rule")),
                pl.format("factor side_confidence={}", _fmt(pl.col("side_confidence"))),
                pl.format("factor nbbo_usable={}", _fmt(ok)),
            ).alias("reasons"),
            pl.concat_list(pl.col("evidence_id")).alias("evidence_trade_ids"),
            pl.col("iso").alias("is_sweep"),
            (~pl.col("nbbo_fresh")).alias("nbbo_stale"),
        ),
        "block",
    )


def _burst_alerts(packets: pl.DataFrame, keys: list[str], *, window_s: float, min_count: int, min_premium: float,
                  min_size: int, classifier: str, extra_factor: pl.Expr | None, reason: str,
                  settings: Settings) -> pl.DataFrame:
    """Alerts from non-overlapping bursts of packets grouped by ``keys`` (side included)."""
    if packets.height == 0:
        return _empty_alerts()
    ordered = packets.sort([*keys, "ts_ns"], maintain_order=True)
    code = run_codes(ordered, keys)
    starts, ends = bursts(
        code, ordered.get_column("ts_ns").to_numpy(), ordered.get_column("premium").to_numpy(),
        ordered.get_column("size").to_numpy(), window_ns=int(round(window_s * NS_PER_SECOND)),
        min_count=min_count, min_premium=min_premium, min_size=min_size,
    )
    if starts.size == 0:
        return _empty_alerts()
    burst = np.full(ordered.height, -1, dtype=np.int64)
    for b, (s, e) in enumerate(zip(starts, ends)):
        burst[s:e + 1] = b
    rows = ordered.with_columns(pl.Series("_burst", burst)).filter(pl.col("_burst") >= 0)
    if extra_factor is not None:
        rows = rows.with_columns(extra_factor.alias("_extra"))
    size = pl.col("size").sum()
    # float sums in the packets' (time) order (m17_platform.ordered): the same bits on every run
    agg = rows.group_by("_burst", maintain_order=True).agg(
        pl.col("ts_ns").first().alias("start_ts_ns"),
        pl.col("end_ts_ns").max().alias("ts_ns"),
        *[pl.col(k).first() for k in _IDENTITY],
        pl.col("side").first(),
        pl.len().alias("_packets"),
        ordered_sum(pl.col("premium")).alias("premium"),
        size,
        pl.col("prints").sum().alias("_prints"),
        pl.col("option_symbol").unique(maintain_order=True).alias("legs"),
        pl.col("evidence_trade_ids").list.explode(keep_nulls=False, empty_as_null=False).alias("evidence_trade_ids"),
        (ordered_sum(pl.col("side_share") * pl.col("size")) / size).alias("_side_share"),
        (ordered_sum(pl.col("nbbo_coverage") * pl.col("prints")) / pl.col("prints").sum()).alias("_coverage"),
        (ordered_sum(pl.col("nbbo_fresh_share") * pl.col("prints")) / pl.col("prints").sum()).alias("_fresh"),
        (ordered_sum(pl.col("side_confidence") * pl.col("size")) / size).alias("_side_conf"),
        *([ordered_mean(pl.col("_extra")).alias("_extra")] if extra_factor is not None else []),
        pl.col("iso").any().alias("is_sweep"),
        most_common(pl.col("placement")).alias("placement"),
    )
    factors = [pl.col("_side_share"), pl.col("_coverage"), pl.col("_side_conf")]
    if extra_factor is not None:
        factors.append(pl.col("_extra"))
    reasons = [
        pl.format("{} {} packets within {} s (min {})", pl.col("_packets"), pl.col("side"), pl.lit(f"{window_s:g}"),
                  pl.lit(str(min_count))),
        pl.format("premium {} >= {}, {} contracts", _dollars(pl.col("premium")), pl.lit(f"${min_premium:,.0f}"),
                  pl.col("size")),
        pl.lit(reason),
        pl.format("factor side_share={}", _fmt(pl.col("_side_share"))),
        pl.format("factor nbbo_coverage={}", _fmt(pl.col("_coverage"))),
        pl.format("factor side_confidence={}", _fmt(pl.col("_side_conf"))),
    ]
    if extra_factor is not None:
        reasons.append(pl.format("factor moneyness={}", _fmt(pl.col("_extra"))))
    c = settings.classifiers
    return _finish(
        agg.with_columns(
            _mean_factors(*factors).alias("confidence"),
            pl.concat_list(reasons).alias("reasons"),
            (pl.col("_fresh") < c.min_nbbo_coverage).alias("nbbo_stale"),
        ),
        classifier,
    )


def repeated_hits(packets: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """``repeated_hits`` alerts: bursts of one contract's packets on one side."""
    c = settings.classifiers
    sided = packets.filter(pl.col("side").is_in(["buy", "sell"]))
    return _burst_alerts(
        sided, ["option_symbol", "side"], window_s=c.repeat_window_seconds, min_count=c.repeat_min_packets,
        min_premium=c.repeat_min_premium, min_size=0, classifier="repeated_hits", extra_factor=None,
        reason="same contract, same side", settings=settings,
    )


def zero_dte_bursts(packets: pl.DataFrame, trade_date: dt.date, settings: Settings = DEFAULT) -> pl.DataFrame:
    """``zero_dte_burst`` alerts: bursts of near-the-money 0DTE packets per right and side."""
    c = settings.classifiers
    moneyness = (pl.col("strike") / pl.col("underlying_price") - 1).abs()
    near = packets.filter(
        (pl.col("expiration") == trade_date)
        & pl.col("side").is_in(["buy", "sell"])
        & (moneyness <= c.zero_dte_max_atm_pct).fill_null(False)
    )
    closeness = 1 - moneyness / c.zero_dte_max_atm_pct if c.zero_dte_max_atm_pct > 0 else pl.lit(1.0)
    return _burst_alerts(
        near, ["right", "side"], window_s=c.zero_dte_window_seconds, min_count=c.zero_dte_min_packets,
        min_premium=c.zero_dte_min_premium, min_size=c.zero_dte_min_size, classifier="zero_dte_burst",
        extra_factor=closeness, reason=f"0DTE, |strike/S - 1| <= {c.zero_dte_max_atm_pct:.2%}", settings=settings,
    )


def spikes(prints: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """``spike`` alerts: prints whose premium or size z-score against their contract's own
    prior prints passes the thresholds (:func:`spike_baselines`)."""
    c = settings.classifiers
    if prints.height == 0:
        return _empty_alerts()
    base = spike_baselines(prints, settings)
    frame = pl.concat([prints, base], how="horizontal")
    enough = pl.col("baseline_n") >= c.spike_min_samples
    prem_hit = (pl.col("premium") >= c.spike_min_premium) & (pl.col("premium_z") >= c.spike_min_premium_z)
    size_hit = (pl.col("size") >= c.spike_min_size) & (pl.col("size_z") >= c.spike_min_size_z)
    hits = frame.filter(enough & (prem_hit | size_hit).fill_null(False))
    if hits.height == 0:
        return _empty_alerts()
    margin = pl.max_horizontal(
        pl.when(prem_hit).then(1 - c.spike_min_premium_z / pl.col("premium_z")).otherwise(0.0),
        pl.when(size_hit).then(1 - c.spike_min_size_z / pl.col("size_z")).otherwise(0.0),
    )
    ok = pl.col("nbbo_ok").cast(pl.Float64)
    return _finish(
        hits.with_columns(
            pl.col("ts_ns").alias("start_ts_ns"),
            _mean_factors(margin, pl.col("side_confidence"), ok).alias("confidence"),
            pl.concat_list(
                pl.format("premium {} z={} vs mean {} of {} prior prints", _dollars(pl.col("premium")),
                          _fmt(pl.col("premium_z")), _dollars(pl.col("baseline_premium_mean")), pl.col("baseline_n")),
                pl.format("size {} z={} vs mean {}", pl.col("size"), _fmt(pl.col("size_z")),
                          _fmt(pl.col("baseline_size_mean"), 1)),
                pl.lit(f"thresholds: premium >= ${c.spike_min_premium:,.0f} and z >= {c.spike_min_premium_z:g}, "
                       f"or size >= {c.spike_min_size:,} and z >= {c.spike_min_size_z:g}"),
                pl.format("factor z_margin={}", _fmt(margin)),
                pl.format("factor side_confidence={}", _fmt(pl.col("side_confidence"))),
                pl.format("factor nbbo_usable={}", _fmt(ok)),
            ).alias("reasons"),
            pl.concat_list(pl.col("evidence_id")).alias("evidence_trade_ids"),
            pl.col("iso").alias("is_sweep"),
            (~pl.col("nbbo_fresh")).alias("nbbo_stale"),
        ),
        "spike",
    )


def _structure(legs: list[dict]) -> tuple[str, float, str] | None:
    """(classifier, side-pattern factor, side) of one same-timestamp group, or None."""
    n = len(legs)
    sizes = [leg["size"] for leg in legs]
    equal = min(sizes) == max(sizes)
    flagged = any(leg["leg_condition"] for leg in legs)
    one_expiry = len({leg["expiration"] for leg in legs}) == 1
    sides = [leg["side"] for leg in legs]
    known = all(s in ("buy", "sell") for s in sides)
    kind = None
    if n == 2 and equal and one_expiry:
        a, b = legs
        if a["right"] == b["right"] and a["strike"] != b["strike"]:
            kind = "vertical"
        elif a["right"] != b["right"]:
            kind = "straddle" if a["strike"] == b["strike"] else "strangle"
    if kind is None:
        if flagged or (n >= 3 and equal) or (n == 2 and equal and not one_expiry):
            kind = "multi_leg"
        else:
            return None
    if kind == "vertical":
        pattern = 0.5 if not known else (1.0 if sides[0] != sides[1] else 0.0)
        # the spread's direction is the side of its dearer leg (a debit spread is bought)
        side = max(legs, key=lambda leg: leg["premium"])["side"]
    elif kind in ("straddle", "strangle"):
        pattern = 0.5 if not known else (1.0 if sides[0] == sides[1] else 0.0)
        side = sides[0] if len(set(sides)) == 1 else "mixed"
    else:
        pattern = 0.5
        side = sides[0] if len(set(sides)) == 1 else "mixed"
    return kind, pattern, side


def multi_leg_structures(prints: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """``vertical`` / ``straddle`` / ``strangle`` / ``multi_leg`` alerts from prints of
    different contracts at (nearly) the same timestamp (see module docstring)."""
    c = settings.classifiers
    if prints.height < 2:
        return _empty_alerts()
    tol = int(round(c.multi_leg_tolerance_ms * 1_000_000))
    legs_cond = list(c.multi_leg_conditions)
    ordered = prints.sort(["ts_ns", "sequence"], maintain_order=True).with_columns(
        (pl.col("ts_ns").diff().fill_null(tol + 1) > tol).cum_sum().alias("_group"),
        pl.col("conditions").list.eval(pl.element().is_in(legs_cond)).list.any().fill_null(False).alias("_leg"),
    )
    groups = ordered.filter(pl.col("option_symbol").n_unique().over("_group").is_between(2, c.multi_leg_max_legs))
    if groups.height == 0:
        return _empty_alerts()
    per_leg = groups.group_by(["_group", "option_symbol"], maintain_order=True).agg(
        *[pl.col(k).first() for k in ("underlying", "root", "expiration", "strike", "right")],
        pl.col("ts_ns").min().alias("_start"), pl.col("ts_ns").max().alias("_end"),
        pl.col("size").sum(), ordered_sum(pl.col("premium")).alias("premium"),
        pl.col("buy_volume").sum(), pl.col("sell_volume").sum(),
        pl.col("nbbo_ok").cast(pl.Float64).sum().alias("_ok"), pl.len().alias("_prints"),
        pl.col("nbbo_fresh").cast(pl.Float64).sum().alias("_fresh"),
        pl.col("_leg").any().alias("leg_condition"),
        pl.col("evidence_id").alias("_evidence"),
        pl.col("iso").any().alias("_iso"),
        most_common(pl.col("placement")).alias("_placement"),
    ).with_columns(
        pl.when(pl.col("buy_volume") >= c.min_aggressor_ratio * pl.col("size")).then(pl.lit("buy"))
        .when(pl.col("sell_volume") >= c.min_aggressor_ratio * pl.col("size")).then(pl.lit("sell"))
        .otherwise(pl.lit("unknown")).alias("side")
    )
    out = []
    for _, legs in per_leg.group_by("_group", maintain_order=True):
        rows = legs.sort(["expiration", "right", "strike", "option_symbol"], maintain_order=True).to_dicts()
        found = _structure(rows)
        if found is None:
            continue
        kind, pattern, side = found
        sizes = [r["size"] for r in rows]
        coverage = sum(r["_ok"] for r in rows) / sum(r["_prints"] for r in rows)
        size_match = min(sizes) / max(sizes)
        flagged = 1.0 if any(r["leg_condition"] for r in rows) else 0.5
        confidence = float(np.mean([size_match, pattern, flagged, coverage]))
        first = rows[0]
        desc = ", ".join(f"{r['side']} {r['size']} {r['strike']:g}{r['right']} {r['expiration']}" for r in rows)
        out.append({
            "ts_ns": max(r["_end"] for r in rows), "start_ts_ns": min(r["_start"] for r in rows),
            **{k: first[k] for k in _IDENTITY},
            "side": side, "confidence": confidence,
            "reasons": [
                f"{len(rows)} contracts at one timestamp (tolerance {c.multi_leg_tolerance_ms:g} ms): {desc}",
                f"factor size_match={size_match:.2f}", f"factor side_pattern={pattern:.2f}",
                f"factor multi_leg_condition={flagged:.2f}", f"factor nbbo_coverage={coverage:.2f}",
            ],
            "evidence_trade_ids": [e for r in rows for e in r["_evidence"]],
            "legs": [r["option_symbol"] for r in rows],
            "premium": float(sum(r["premium"] for r in rows)), "size": int(sum(sizes)),
            "placement": first["_placement"], "is_sweep": any(r["_iso"] for r in rows),
            "nbbo_stale": sum(r["_fresh"] for r in rows) / sum(r["_prints"] for r in rows) < c.min_nbbo_coverage,
            "_kind": kind,
        })
    if not out:
        return _empty_alerts()
    frame = pl.DataFrame(out, schema_overrides={"expiration": pl.Date, "legs": pl.List(pl.String),
                                                "evidence_trade_ids": pl.List(pl.String), "reasons": pl.List(pl.String)})
    return pl.concat(
        [_finish(part.drop("_kind"), kind) for (kind,), part in frame.group_by("_kind", maintain_order=True)],
        how="vertical_relaxed",
    )


def classifier_prints(prints: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """``prints`` with what the print-level classifiers read: per-side volumes
    (:func:`.windows.print_flows`) and ``iso`` (:func:`.packets.iso_flag`), added when absent."""
    if "buy_volume" not in prints.columns:
        prints = print_flows(prints, settings)
    if "iso" not in prints.columns:
        prints = prints.with_columns(iso_flag(settings))
    return prints


def flow_alerts(prints: pl.DataFrame, packets: pl.DataFrame, trade_date: dt.date,
                settings: Settings = DEFAULT) -> pl.DataFrame:
    """The ``flow_alerts`` rows of a partition: every classifier's hits, with ids and presets.

    Parameters
    ----------
    prints : polars.DataFrame
        :func:`.prints.option_flow_prints` output, with ``iso`` (:func:`.packets.iso_flag`)
        and the per-side volumes of :func:`.windows.print_flows`.
    packets : polars.DataFrame
        :func:`.packets.packet_table` output.
    trade_date : datetime.date
        The partition's trade date (0DTE = expiring on it).
    settings : Settings

    Returns
    -------
    polars.DataFrame
        Columns of :data:`m17_platform.schemas.FLOW_ALERTS`, sorted by (ts_ns,
        classifier, alert_id); ``alert_id`` is ``classifier:option_symbol:start_ts_ns``
        with ``:k`` appended to the k-th repeat (k >= 1).
    """
    prints = classifier_prints(prints, settings)
    parts = [
        sweeps(packets, settings),
        blocks(prints, settings),
        repeated_hits(packets, settings),
        spikes(prints, settings),
        zero_dte_bursts(packets, trade_date, settings),
        multi_leg_structures(prints, settings),
    ]
    alerts = pl.concat(parts, how="vertical_relaxed")
    if alerts.height == 0:
        return pl.from_arrow(FLOW_ALERTS.schema.empty_table())
    presets = signal_presets(alerts, settings)
    base = pl.format("{}:{}:{}", pl.col("classifier"), pl.col("option_symbol"), pl.col("start_ts_ns"))
    alerts = alerts.with_columns(presets).with_columns(base.alias("_base")).with_columns(
        pl.when(pl.int_range(pl.len()).over("_base") == 0).then(pl.col("_base"))
        .otherwise(pl.format("{}:{}", pl.col("_base"), pl.int_range(pl.len()).over("_base"))).alias("alert_id")
    )
    return alerts.select(FLOW_ALERTS.columns).sort(["ts_ns", "classifier", "alert_id"])
