"""Off-exchange stock prints and the inferred events of seed 004.

Off-exchange flag
-----------------
A stock print is off-exchange when it was reported to a FINRA trade reporting facility
(TRF) or the Alternative Display Facility (ADF): its ``exchange`` is one of the codes
``OffExchangeSettings.off_exchange_codes`` lists for its source (the ``source`` column's
prefix), because every source writes ``exchange`` in its own code space: Polygon id 4
(its TRFs and the ADF share that id), Databento venues FINN / FINC / FINY / XADF, Cboe
DataShop ids 2 / 57 / 59 / 118 / 119, the synthetic source's tape letter D. LOBSTER is
Nasdaq's own book, so none of its prints (hidden executions included, which are on
exchange) is off-exchange; the bundled samples therefore have no off-exchange prints.

Inferred events (seed 004's "dark-style inferred events")
-------------------------------------------------------
Only non-canceled off-exchange prints count. A print's quote is usable when it is
two-sided (0 < bid <= ask), no older than ``quote_max_age_ms`` and no wider than
``max_spread_pct`` of its mid.

``absorbed_block``
    One print of at least ``min_block_size`` shares with a usable quote, after which the
    NBBO mid ``window_ms`` later is still within the print's bid..ask: the size was
    absorbed without moving the market. Known at print time + ``window_ms``. Factors:
    stability ``1 - |mid after - mid at| / half spread``, quote freshness ``1 - age /
    quote_max_age_ms``.
``stealth_accumulation`` / ``stealth_distribution``
    At least ``min_accum_count`` prints of ``min_print_size`` to ``min_block_size`` shares
    on one side (buy: accumulation, sell: distribution; the platform's aggressor) within
    ``window_ms``, ``min_accum_size`` shares together, and that side at least
    ``min_side_share`` of every off-exchange share of the symbol in the span. Known at
    the last print. Factors: side share, share of the prints with a usable quote.
Cooldown
    After an event of one kind and symbol, candidates of the same kind starting within
    ``cooldown_ms`` of it are suppressed (counted, not written).

Evidence: the prints' ``evidence_id`` (trade id, else ``symbol@ts_ns:sequence``), at most
``max_evidence`` of them, ``evidence_count`` the total.
"""

from __future__ import annotations

import numba
import numpy as np
import polars as pl

from m17_platform.flow.classifiers import bursts
from m17_platform.flow.prints import evidence_id, run_codes
from m17_platform.ordered import ordered_sum
from m17_platform.schemas import OFF_EXCHANGE_EVENTS, OFF_EXCHANGE_PRINTS
from m17_platform.settings import DEFAULT, OffExchangeSettings, Settings

EVENT_DTYPES: dict[str, pl.DataType] = dict(pl.from_arrow(OFF_EXCHANGE_EVENTS.schema.empty_table()).schema)
"""Polars dtypes of the off_exchange_events columns."""


def off_exchange_flag(settings: OffExchangeSettings = DEFAULT.off_exchange) -> pl.Expr:
    """True where ``exchange`` is a TRF / ADF code of the print's source, named ``off_exchange``.

    Parameters
    ----------
    settings : OffExchangeSettings
        ``off_exchange_codes``: source prefix -> codes.

    Returns
    -------
    polars.Expr
        Boolean, never null (a null exchange or an unlisted source is on-exchange).
    """
    flag = pl.lit(False)
    for prefix, codes in settings.off_exchange_codes.items():
        flag = flag | (pl.col("source").str.starts_with(prefix) & pl.col("exchange").is_in(list(codes)))
    return flag.fill_null(False).alias("off_exchange")


def off_exchange_prints(stock_enriched: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """The ``off_exchange_prints`` rows: every stock print with its off-exchange flag.

    Parameters
    ----------
    stock_enriched : polars.DataFrame
        ``stock_trades_enriched`` rows.

    Returns
    -------
    polars.DataFrame
        Columns of :data:`m17_platform.schemas.OFF_EXCHANGE_PRINTS`, one row per print
        (canceled prints kept, flagged).
    """
    return stock_enriched.with_columns(
        evidence_id("symbol"), off_exchange_flag(settings.off_exchange)
    ).select(OFF_EXCHANGE_PRINTS.columns)


@numba.njit(cache=True)
def _cooldown_kernel(group, ts, cooldown_ns):
    n = ts.shape[0]
    keep = np.zeros(n, dtype=np.bool_)
    last = np.int64(0)
    for i in range(n):
        if i == 0 or group[i] != group[i - 1] or ts[i] - last >= cooldown_ns:
            keep[i] = True
            last = ts[i]
    return keep


def cooldown(group: np.ndarray, ts: np.ndarray, cooldown_ns: int) -> np.ndarray:
    """Which candidates survive a cooldown: rows sorted by (group, ts); a row is kept when
    it is its group's first or starts at least ``cooldown_ns`` after the last kept one.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
    """
    return _cooldown_kernel(np.ascontiguousarray(group, dtype=np.int64), np.ascontiguousarray(ts, dtype=np.int64),
                            np.int64(cooldown_ns))


def _usable_quote(settings: OffExchangeSettings) -> pl.Expr:
    mid = (pl.col("bid") + pl.col("ask")) / 2
    max_age = int(settings.quote_max_age_ms * 1_000_000)
    return (
        (pl.col("bid") > 0) & (pl.col("ask") >= pl.col("bid")) & (pl.col("quote_age_ns") <= max_age)
        & ((pl.col("ask") - pl.col("bid")) / mid <= settings.max_spread_pct)
    ).fill_null(False)


def _mid_after(candidates: pl.DataFrame, quotes: pl.DataFrame, after_ns: int) -> pl.Series:
    """NBBO mid of each candidate's symbol at ``ts_ns + after_ns`` (latest quote at or before)."""
    # of quotes at one instant the as-of join takes the last: the latest sequence (a stable sort)
    order = ["ts_ns", "sequence"] if "sequence" in quotes.columns else ["ts_ns"]
    q = quotes.filter((pl.col("bid") > 0) & (pl.col("ask") >= pl.col("bid"))).sort(order, maintain_order=True).select(
        "symbol", "ts_ns", ((pl.col("bid") + pl.col("ask")) / 2).alias("mid_after"))
    keys = candidates.with_row_index("_row").select("_row", "symbol", (pl.col("ts_ns") + after_ns).alias("ts_ns"))
    got = keys.sort("ts_ns").join_asof(q, on="ts_ns", by="symbol", strategy="backward", check_sortedness=False)
    return got.sort("_row").get_column("mid_after")


def _finish(frame: pl.DataFrame, kind: str, settings: OffExchangeSettings) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(kind).alias("kind"),
        pl.format("{}:{}:{}", pl.lit(kind), pl.col("symbol"), pl.col("ts_ns")).alias("event_id"),
        pl.col("evidence_trade_ids").list.len().cast(pl.Int64).alias("evidence_count"),
    ).with_columns(pl.col("evidence_trade_ids").list.head(settings.max_evidence)).select(
        [pl.col(c).cast(EVENT_DTYPES[c]) for c in OFF_EXCHANGE_EVENTS.columns]
    )


def _empty() -> pl.DataFrame:
    return pl.from_arrow(OFF_EXCHANGE_EVENTS.schema.empty_table())


def absorbed_blocks(prints: pl.DataFrame, quotes: pl.DataFrame, settings: OffExchangeSettings) -> pl.DataFrame:
    """``absorbed_block`` candidates (before the cooldown) from off-exchange prints."""
    window = int(settings.window_ms * 1_000_000)
    cands = prints.filter((pl.col("size") >= settings.min_block_size) & _usable_quote(settings))
    if cands.height == 0:
        return _empty()
    cands = cands.with_columns(_mid_after(cands, quotes, window))
    mid = (pl.col("bid") + pl.col("ask")) / 2
    half = (pl.col("ask") - pl.col("bid")) / 2
    hits = cands.filter(pl.col("mid_after").is_between(pl.col("bid"), pl.col("ask")).fill_null(False))
    if hits.height == 0:
        return _empty()
    stability = pl.when(half > 0).then(1 - (pl.col("mid_after") - mid).abs() / half).otherwise(1.0)
    freshness = 1 - pl.col("quote_age_ns") / (settings.quote_max_age_ms * 1_000_000)
    frame = hits.with_columns(
        (pl.col("ts_ns") + window).alias("known_ts_ns"),
        (pl.col("price") * pl.col("size")).alias("notional"),
        pl.lit(1, dtype=pl.Int64).alias("prints"),
        pl.col("price").alias("vwap"),
        pl.mean_horizontal(stability.clip(0, 1), freshness.clip(0, 1)).alias("confidence"),
        pl.concat_list(
            pl.format("off-exchange print of {} shares >= {} at {} (bid {} / ask {}) on {}", pl.col("size"),
                      pl.lit(f"{settings.min_block_size:,}"), pl.col("price"), pl.col("bid"), pl.col("ask"), pl.col("exchange")),
            pl.format("mid {} ms later {} stayed within bid..ask", pl.lit(f"{settings.window_ms:g}"),
                      pl.col("mid_after").round(4)),
            pl.format("factor stability={}", stability.clip(0, 1).round(2)),
            pl.format("factor quote_freshness={}", freshness.clip(0, 1).round(2)),
        ).alias("reasons"),
        pl.concat_list(pl.col("evidence_id")).alias("evidence_trade_ids"),
    )
    return _finish(frame, "absorbed_block", settings)


def stealth_events(prints: pl.DataFrame, settings: OffExchangeSettings) -> pl.DataFrame:
    """``stealth_accumulation`` / ``stealth_distribution`` candidates (before the cooldown)."""
    window = int(settings.window_ms * 1_000_000)
    sided = prints.filter(
        pl.col("size").is_between(settings.min_print_size, settings.min_block_size, closed="left")
        & pl.col("side").is_in(["buy", "sell"])
    ).sort(["symbol", "side", "ts_ns", "sequence"], maintain_order=True)
    if sided.height == 0:
        return _empty()
    code = run_codes(sided, ["symbol", "side"])
    starts, ends = bursts(code, sided.get_column("ts_ns").to_numpy(), np.zeros(sided.height),
                          sided.get_column("size").to_numpy(), window_ns=window, min_count=settings.min_accum_count,
                          min_premium=0.0, min_size=settings.min_accum_size)
    if starts.size == 0:
        return _empty()
    label = np.full(sided.height, -1, dtype=np.int64)
    for b, (s, e) in enumerate(zip(starts, ends)):
        label[s:e + 1] = b
    rows = sided.with_columns(pl.Series("_event", label), _usable_quote(settings).alias("_usable")).filter(
        pl.col("_event") >= 0)
    agg = rows.group_by("_event", maintain_order=True).agg(
        pl.col("ts_ns").first(), pl.col("ts_ns").last().alias("known_ts_ns"),
        pl.col("symbol").first(), pl.col("underlying").first(), pl.col("side").first(),
        pl.col("size").sum(), ordered_sum(pl.col("price") * pl.col("size")).alias("notional"),
        pl.len().cast(pl.Int64).alias("prints"), pl.col("bid").first(), pl.col("ask").first(),
        pl.col("_usable").cast(pl.Float64).mean().alias("_usable_share"),
        pl.col("evidence_id").alias("evidence_trade_ids"),
    ).with_columns((pl.col("notional") / pl.col("size")).alias("vwap"))
    # every off-exchange share of the symbol in each event's span, for the side share
    spans = agg.select("_event", "symbol", "ts_ns", "known_ts_ns")
    total = []
    for sym, part in spans.group_by("symbol", maintain_order=True):
        p = prints.filter(pl.col("symbol") == sym[0]).sort("ts_ns")
        ts = p.get_column("ts_ns").to_numpy()
        cum = np.r_[0, np.cumsum(p.get_column("size").to_numpy())]
        lo = np.searchsorted(ts, part.get_column("ts_ns").to_numpy(), side="left")
        hi = np.searchsorted(ts, part.get_column("known_ts_ns").to_numpy(), side="right")
        total.append(pl.DataFrame({"_event": part.get_column("_event"), "_span_size": cum[hi] - cum[lo]}))
    agg = agg.join(pl.concat(total), on="_event", how="left").with_columns(
        (pl.col("size") / pl.col("_span_size")).alias("_side_share"))
    agg = agg.filter(pl.col("_side_share") >= settings.min_side_share)
    if agg.height == 0:
        return _empty()
    agg = agg.with_columns(
        pl.lit(None, dtype=pl.Float64).alias("mid_after"),
        pl.mean_horizontal(pl.col("_side_share"), pl.col("_usable_share")).alias("confidence"),
        pl.concat_list(
            pl.format("{} off-exchange {} prints of {}..{} shares, {} shares within {} ms", pl.col("prints"),
                      pl.col("side"), pl.lit(f"{settings.min_print_size:,}"), pl.lit(f"{settings.min_block_size - 1:,}"),
                      pl.col("size"), pl.lit(f"{settings.window_ms:g}")),
            pl.lit(f"thresholds: >= {settings.min_accum_count} prints, >= {settings.min_accum_size:,} shares, "
                   f"side share >= {settings.min_side_share:.0%}"),
            pl.format("factor side_share={}", pl.col("_side_share").round(2)),
            pl.format("factor usable_quote_share={}", pl.col("_usable_share").round(2)),
        ).alias("reasons"),
    )
    acc = _finish(agg.filter(pl.col("side") == "buy"), "stealth_accumulation", settings)
    dist = _finish(agg.filter(pl.col("side") == "sell"), "stealth_distribution", settings)
    return pl.concat([acc, dist])


def off_exchange_events(
    prints: pl.DataFrame, quotes: pl.DataFrame, settings: Settings = DEFAULT
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The ``off_exchange_events`` rows of a partition.

    Parameters
    ----------
    prints : polars.DataFrame
        :func:`off_exchange_prints` output (all prints; only non-canceled off-exchange
        ones are used).
    quotes : polars.DataFrame
        ``stock_quotes`` rows (symbol, ts_ns, bid, ask), for the mid after a block.
    settings : Settings
        ``off_exchange`` thresholds.

    Returns
    -------
    events : polars.DataFrame
        Columns of :data:`m17_platform.schemas.OFF_EXCHANGE_EVENTS`, sorted by (symbol,
        ts_ns, kind).
    stats : dict[str, int]
        ``off_exchange_prints``, ``candidates`` and ``suppressed_by_cooldown``.
    """
    s = settings.off_exchange
    dark = prints.filter(pl.col("off_exchange") & ~pl.col("canceled")).sort(["symbol", "ts_ns", "sequence"],
                                                                            maintain_order=True)
    stats = {"off_exchange_prints": dark.height, "candidates": 0, "suppressed_by_cooldown": 0}
    if dark.height == 0:
        return _empty(), stats
    # stable sorts: candidates of one kind at one instant keep the prints' order, so the
    # cooldown keeps the same one on every run
    cands = pl.concat([absorbed_blocks(dark, quotes, s), stealth_events(dark, s)]).sort(
        ["symbol", "kind", "ts_ns"], maintain_order=True)
    stats["candidates"] = cands.height
    if cands.height == 0:
        return cands, stats
    code = run_codes(cands, ["symbol", "kind"])
    keep = cooldown(code, cands.get_column("ts_ns").to_numpy(), int(s.cooldown_ms * 1_000_000))
    stats["suppressed_by_cooldown"] = int((~keep).sum())
    return cands.filter(pl.Series(keep)).sort(["symbol", "ts_ns", "kind"], maintain_order=True), stats
