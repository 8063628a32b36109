"""The enriched layer: raw trades and quotes -> NBBO-joined aggressor tables, IV and greeks.

Composes :mod:`m17_platform.nbbo`, :mod:`m17_platform.aggressor` and
:mod:`m17_platform.greeks` into the enriched tables of :mod:`m17_platform.schemas`;
the Dagster assets and ``m17 eval`` both call these functions, so what the CLI
measures is what the lake holds.

Join modes. A quote that shares a trade's (ts_ns, sequence) means different things by
source: Cboe's NBBO at a trade is the quote *in force* at it (join at or before in
(ts_ns, sequence)), while a book rebuilt from LOBSTER messages or Databento MBO is the
book *after* the event that printed (join strictly before).
``NbboSettings.at_trade_quote_sources`` and ``post_event_quote_sources`` name them by
their ``source`` prefix; other quotes join at or before ts_ns.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import numpy as np
import polars as pl

from m17_platform import calendar
from m17_platform.aggressor import classify
from m17_platform.greeks import IVStatus, add_time_to_expiry, black76_price, bsm_price, compute_iv_greeks
from m17_platform.nbbo import asof_join_quotes, join_quality
from m17_platform.quality import ERROR, WARN, CheckOutcome
from m17_platform.schemas import (
    FUTURES_TRADES_ENRICHED,
    OPTION_QUOTE_GREEKS,
    OPTION_TRADE_GREEKS,
    OPTION_TRADES_ENRICHED,
    STOCK_TRADES_ENRICHED,
)
from m17_platform.settings import DEFAULT, Settings

USABLE_FLAGS = ("ok", "stale", "locked", "zero_bid")
GREEK_COLUMNS = ("delta", "gamma", "theta", "vega", "rho")
_SIDE_OF_VENDOR = {"B": "buy", "S": "sell"}


# --- NBBO join + aggressor ---------------------------------------------------------------


def _sources_match(quotes: pl.DataFrame, patterns: tuple[str, ...]) -> bool:
    """Whether any quote's ``source`` matches one of the glob ``patterns`` (fnmatch)."""
    if quotes.height == 0 or "source" not in quotes.columns:
        return False
    sources = quotes.get_column("source").unique().to_list()
    return any(fnmatch.fnmatchcase(str(s), p) for s in sources for p in patterns)


def join_and_classify(
    trades: pl.DataFrame, quotes: pl.DataFrame, *, instrument: str, settings: Settings = DEFAULT
) -> pl.DataFrame:
    """Join each trade to the prevailing quote of its instrument and classify its aggressor.

    Parameters
    ----------
    trades : polars.DataFrame
        Raw trades sorted by (instrument, ts_ns, sequence) as the lake stores them.
    quotes : polars.DataFrame
        Quotes with ``instrument``, ts_ns, sequence, bid, ask, bid_size, ask_size,
        source; sorted likewise.
    instrument : str
        Column naming the instrument in both frames (``option_symbol`` / ``symbol``).

    Returns
    -------
    polars.DataFrame
        ``trades`` plus bid, ask, bid_size, ask_size, quote_ts_ns, quote_age_ns,
        nbbo_flag (see :func:`m17_platform.nbbo.asof_join_quotes`) and side, side_rule,
        side_confidence, placement (rule ``settings.aggressor.default_rule``).

    Raises
    ------
    ValueError
        From the join: unsorted input (naming the table and row) or missing columns.
    """
    q = quotes.select([instrument, "ts_ns", "sequence", "bid", "ask", "bid_size", "ask_size"])
    at_trade = _sources_match(quotes, settings.nbbo.at_trade_quote_sources)
    joined = asof_join_quotes(
        trades,
        q,
        instrument=instrument,
        settings=settings.nbbo,
        strict_sequence=not at_trade and _sources_match(quotes, settings.nbbo.post_event_quote_sources),
        sequence_tiebreak=at_trade,
    )
    return classify(joined, settings.aggressor.default_rule, instrument=instrument, settings=settings.aggressor)


def _asof_backward(left: pl.DataFrame, right: pl.DataFrame, by: str) -> pl.DataFrame:
    """Polars backward as-of join on ts_ns within ``by`` (both sides sorted here). Of
    right rows at one instant the join takes the last; the sorts are stable, so that is
    the last in the order given (the latest sequence, for rows in the lake's order)."""
    return left.sort("ts_ns", maintain_order=True).join_asof(
        right.sort("ts_ns", maintain_order=True), on="ts_ns", by=by, strategy="backward", check_sortedness=False
    )


def enrich_option_trades(
    trades: pl.DataFrame,
    quotes: pl.DataFrame,
    stock_quotes: pl.DataFrame,
    stock_trades: pl.DataFrame,
    contracts: pl.DataFrame,
    settings: Settings = DEFAULT,
) -> pl.DataFrame:
    """The ``option_trades_enriched`` rows of one partition.

    Each print gets its contract's NBBO and aggressor (:func:`join_and_classify`), the
    underlying's prevailing quote and last print at the same instant (at or before),
    the contract multiplier and the premium = price x size x multiplier (dollars).
    """
    out = join_and_classify(trades, quotes, instrument="option_symbol", settings=settings)
    keys = out.with_row_index("_row").select(["_row", "underlying", "ts_ns"])
    uq = stock_quotes.filter(pl.col("symbol") == pl.col("underlying")).select(
        "underlying",
        "ts_ns",
        pl.col("bid").alias("underlying_bid"),
        pl.col("ask").alias("underlying_ask"),
        pl.col("ts_ns").alias("_uq_ts"),
    )
    ut = stock_trades.filter((pl.col("symbol") == pl.col("underlying")) & ~pl.col("canceled")).select(
        "underlying", "ts_ns", pl.col("price").alias("underlying_last"), pl.col("ts_ns").alias("underlying_last_ts_ns")
    )
    keys = _asof_backward(_asof_backward(keys, uq, "underlying"), ut, "underlying").sort("_row")
    two_sided = (pl.col("underlying_bid") > 0) & (pl.col("underlying_ask") >= pl.col("underlying_bid"))
    under = keys.select(
        "underlying_bid",
        "underlying_ask",
        pl.when(two_sided).then((pl.col("underlying_bid") + pl.col("underlying_ask")) / 2).alias("underlying_mid"),
        (pl.col("ts_ns") - pl.col("_uq_ts")).alias("underlying_quote_age_ns"),
        "underlying_last",
        "underlying_last_ts_ns",
    )
    mult = contracts.select("option_symbol", "multiplier").unique("option_symbol", keep="first")
    out = pl.concat([out, under], how="horizontal").join(mult, on="option_symbol", how="left", maintain_order="left")
    out = out.with_columns(pl.col("multiplier").fill_null(settings.universe.default_multiplier))
    out = out.with_columns((pl.col("price") * pl.col("size") * pl.col("multiplier")).alias("premium"))
    return out.select(OPTION_TRADES_ENRICHED.columns)


def enrich_stock_trades(trades: pl.DataFrame, quotes: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """The ``stock_trades_enriched`` rows: each print with its prevailing quote and aggressor."""
    return join_and_classify(trades, quotes, instrument="symbol", settings=settings).select(STOCK_TRADES_ENRICHED.columns)


def enrich_futures_trades(trades: pl.DataFrame, mbp10: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """The ``futures_trades_enriched`` rows: each print with the top of book before it
    (level 0 of the MBP-10 book rebuilt from MBO) and its aggressor."""
    top = mbp10.select(
        "symbol",
        "ts_ns",
        "sequence",
        pl.col("bid_px_00").alias("bid"),
        pl.col("ask_px_00").alias("ask"),
        pl.col("bid_sz_00").alias("bid_size"),
        pl.col("ask_sz_00").alias("ask_size"),
        "source",
    )
    return join_and_classify(trades, top, instrument="symbol", settings=settings).select(FUTURES_TRADES_ENRICHED.columns)


# --- greeks ----------------------------------------------------------------------------------


def rate_inputs(rates: pl.DataFrame, settings: Settings = DEFAULT) -> tuple[float, float]:
    """(rate, dividend_yield) of the partition: the shortest tenor of the rates table, or
    the configured constant when the table is empty."""
    if rates.height == 0:
        return settings.rates.risk_free_rate, 0.0
    row = rates.sort("tenor_days").row(0, named=True)
    return float(row["rate"]), float(row["dividend_yield"])


def _with_expiry(frame: pl.DataFrame, contracts: pl.DataFrame, settings: Settings) -> pl.DataFrame:
    exp = contracts.select("option_symbol", "expiry_ts_ns").unique("option_symbol", keep="first")
    frame = frame.join(exp, on="option_symbol", how="left", maintain_order="left")
    missing = frame.filter(pl.col("expiry_ts_ns").is_null()).get_column("expiration").unique().to_list()
    if missing:
        fill = {d: calendar.expiry_instant_ns(d, settings.sessions) for d in missing}
        frame = frame.with_columns(
            pl.coalesce(pl.col("expiry_ts_ns"), pl.col("expiration").replace_strict(fill, default=None, return_dtype=pl.Int64))
        )
    return add_time_to_expiry(frame, sessions=settings.sessions)


def parity_forwards(quotes: pl.DataFrame, contracts: pl.DataFrame, rate: float, settings: Settings = DEFAULT) -> pl.DataFrame:
    """Put-call-parity forwards per expiration and time window, from NBBO mids.

    In each ``forward_window_minutes`` window and expiration, the last two-sided mid of
    each call and put is taken; at the strike where |call - put| is smallest,
    F = K + e^{rT} (C - P), the forward selection of the Cboe VIX White Paper (2019,
    "Determine the forward index level"). The forward is available from the later of
    the two quotes' times.

    Returns
    -------
    polars.DataFrame
        expiration (date), ts_ns (int64 ns UTC, when the forward is known), forward
        (float64 dollars), sorted by ts_ns.
    """
    window = settings.greeks.forward_window_minutes * 60 * calendar.NS_PER_SECOND
    q = quotes.filter((pl.col("bid") > 0) & (pl.col("ask") >= pl.col("bid"))).with_columns(
        ((pl.col("bid") + pl.col("ask")) / 2).alias("mid"), (pl.col("ts_ns") // window).alias("_bucket")
    )
    if q.height == 0:
        return pl.DataFrame(schema={"expiration": pl.Date, "ts_ns": pl.Int64, "forward": pl.Float64})
    # stable sorts and ordered groups: of quotes at one instant the last in the order given
    # wins, and of strikes with equal |C - P| the lowest, on every run
    last = q.sort("ts_ns", maintain_order=True).group_by(
        ["expiration", "strike", "right", "_bucket"], maintain_order=True
    ).agg(pl.col("mid").last(), pl.col("ts_ns").last())
    calls = last.filter(pl.col("right") == "C").drop("right")
    puts = last.filter(pl.col("right") == "P").drop("right")
    pairs = calls.join(puts, on=["expiration", "strike", "_bucket"], suffix="_put")
    if pairs.height == 0:
        return pl.DataFrame(schema={"expiration": pl.Date, "ts_ns": pl.Int64, "forward": pl.Float64})
    pairs = pairs.with_columns(
        pl.max_horizontal("ts_ns", "ts_ns_put").alias("ts_ns"), (pl.col("mid") - pl.col("mid_put")).alias("_cp")
    )
    best = pairs.sort([pl.col("_cp").abs(), pl.col("strike")], maintain_order=True).group_by(
        ["expiration", "_bucket"], maintain_order=True).first()
    expiry = {d: calendar.expiry_instant_ns(d, settings.sessions) for d in best.get_column("expiration").unique().to_list()}
    t = calendar.time_to_expiry_years(
        best.get_column("ts_ns").to_numpy(),
        best.get_column("expiration").replace_strict(expiry, return_dtype=pl.Int64).to_numpy(),
        settings.sessions,
    )
    fwd = best.get_column("strike").to_numpy() + np.exp(rate * np.maximum(t, 0.0)) * best.get_column("_cp").to_numpy()
    return best.select("expiration", "ts_ns").with_columns(pl.Series("forward", fwd)).sort(
        ["ts_ns", "expiration", "forward"])


def _underlying_for_model(
    frame: pl.DataFrame, spot: pl.Expr, spot_source: str, forward_cols: list[tuple[str, str]], settings: Settings
) -> pl.DataFrame:
    """Set model, underlying_price and underlying_price_source per row."""
    is_fwd = pl.col("root").is_in(list(settings.universe.forward_roots))
    price = pl.when(~is_fwd).then(spot)
    source = pl.when(~is_fwd & spot.is_not_null()).then(pl.lit(spot_source))
    fwd_price = pl.lit(None, dtype=pl.Float64)
    fwd_source = pl.lit(None, dtype=pl.String)
    for col_name, label in reversed(forward_cols):
        fwd_price = pl.when(pl.col(col_name).is_not_null()).then(pl.col(col_name)).otherwise(fwd_price)
        fwd_source = pl.when(pl.col(col_name).is_not_null()).then(pl.lit(label)).otherwise(fwd_source)
    return frame.with_columns(
        pl.when(is_fwd).then(pl.lit("black76")).otherwise(pl.lit("bsm")).alias("model"),
        price.otherwise(fwd_price).alias("underlying_price"),
        source.when(is_fwd).then(fwd_source).otherwise(pl.lit(None)).fill_null("none").alias("underlying_price_source"),
    )


def _spot(settings: Settings, prefix: str) -> tuple[pl.Expr, str]:
    choice = settings.greeks.underlying_price_source
    cols = {"mid": f"{prefix}mid", "trade": f"{prefix}last", "bid": f"{prefix}bid", "ask": f"{prefix}ask"}
    if choice not in cols:
        raise ValueError(f"GreeksSettings.underlying_price_source must be one of {sorted(cols)}, got {choice!r}")
    return pl.col(cols[choice]), choice


def _mid(bid: str = "bid", ask: str = "ask") -> pl.Expr:
    return pl.when((pl.col(bid) > 0) & (pl.col(ask) >= pl.col(bid))).then((pl.col(bid) + pl.col(ask)) / 2)


def _attach_forward(frame: pl.DataFrame, forwards: pl.DataFrame) -> pl.DataFrame:
    keyed = frame.with_row_index("_row").select("_row", "expiration", "ts_ns")
    if forwards.height == 0:
        return frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("parity_forward"))
    got = _asof_backward(keyed, forwards.rename({"forward": "parity_forward"}), "expiration").sort("_row")
    return frame.with_columns(got.get_column("parity_forward"))


def option_trade_greeks(
    enriched: pl.DataFrame,
    forwards: pl.DataFrame,
    contracts: pl.DataFrame,
    rates: pl.DataFrame,
    settings: Settings = DEFAULT,
) -> pl.DataFrame:
    """The ``option_trade_greeks`` rows: IV from the trade price and from the NBBO mid,
    greeks at the mid IV (or the trade IV when the mid's fails), per print.

    Spot-priced roots use Black-Scholes-Merton on the underlying price chosen by
    ``GreeksSettings.underlying_price_source``; forward-priced roots
    (``UniverseSettings.forward_roots``, e.g. VIX) use Black-76 on the put-call-parity
    forward ``forwards`` (:func:`parity_forwards` of the partition's option quotes,
    computed per expiry group for a large partition). Every row says which.
    """
    rate, q = rate_inputs(rates, settings)
    frame = _with_expiry(enriched.with_columns(_mid().alias("mid")), contracts, settings)
    frame = _attach_forward(frame, forwards)
    spot, label = _spot(settings, "underlying_")
    frame = _underlying_for_model(frame, spot, label, [("parity_forward", "parity_forward")], settings)
    frame = frame.with_columns(pl.lit(rate).alias("rate"), pl.lit(q).alias("dividend_yield"))
    args = dict(underlying_col="underlying_price", model_col="model", rate="rate", dividend_yield="dividend_yield",
                settings=settings.greeks)
    by_mid = compute_iv_greeks(frame, price_col="mid", **args)
    by_trade = compute_iv_greeks(frame, price_col="price", **args)
    mid_ok = by_mid.get_column("iv_status") == IVStatus.OK.name
    trade_ok = by_trade.get_column("iv_status") == IVStatus.OK.name
    out = frame.with_columns(
        by_trade.get_column("iv").alias("iv_trade"),
        by_trade.get_column("iv_status").alias("iv_trade_status"),
        by_mid.get_column("iv").alias("iv_mid"),
        by_mid.get_column("iv_status").alias("iv_mid_status"),
        pl.Series("greeks_iv_source", np.where(mid_ok, "mid", np.where(trade_ok, "trade", "none"))),
        *[pl.Series(g, np.where(mid_ok, by_mid.get_column(g).to_numpy(), by_trade.get_column(g).to_numpy())).fill_nan(None)
          for g in GREEK_COLUMNS],
    )
    return out.select(OPTION_TRADE_GREEKS.columns)


def option_quote_greeks(
    quotes: pl.DataFrame,
    contracts: pl.DataFrame,
    stock_quotes: pl.DataFrame,
    vendor: pl.DataFrame,
    rates: pl.DataFrame,
    settings: Settings = DEFAULT,
    *,
    forwards: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The ``option_quote_greeks`` rows: IV and greeks of every option quote from its mid,
    beside the vendor's values at the same quote where the source has them.

    Spot for BSM roots: the underlying's prevailing quote (``underlying_price_source``)
    at or before the option quote, else the vendor's underlying price at that quote.
    Forward for Black-76 roots: the vendor's implied forward (Cboe's
    ``implied_underlying_price``), else the put-call-parity forward: ``forwards`` when
    given (:func:`parity_forwards` of the whole partition, for a batch of its quotes),
    else computed from ``quotes``.
    """
    rate, q = rate_inputs(rates, settings)
    frame = _with_expiry(quotes.with_columns(_mid().alias("mid")), contracts, settings)
    keys = frame.with_row_index("_row").select("_row", "underlying", "ts_ns")
    uq = stock_quotes.filter(pl.col("symbol") == pl.col("underlying")).select(
        "underlying", "ts_ns", pl.col("bid").alias("u_bid"), pl.col("ask").alias("u_ask")
    ).with_columns(_mid("u_bid", "u_ask").alias("u_mid"), pl.lit(None, dtype=pl.Float64).alias("u_last"))
    frame = pl.concat(
        [frame, _asof_backward(keys, uq, "underlying").sort("_row").select("u_bid", "u_ask", "u_mid", "u_last")],
        how="horizontal",
    )
    v = vendor.select(
        "option_symbol", "ts_ns",
        pl.col("underlying_price").alias("_v_spot"), pl.col("implied_underlying_price").alias("_v_forward"),
        pl.col("implied_volatility").alias("vendor_iv"), *[pl.col(g).alias(f"vendor_{g}") for g in GREEK_COLUMNS[:4]],
    ).unique(["option_symbol", "ts_ns"], keep="last")
    frame = frame.join(v, on=["option_symbol", "ts_ns"], how="left", maintain_order="left")
    frame = _attach_forward(frame, parity_forwards(quotes, contracts, rate, settings) if forwards is None else forwards)
    spot, label = _spot(settings, "u_")
    frame = _underlying_for_model(
        frame.with_columns(pl.coalesce(spot, pl.col("_v_spot")).alias("_spot"),
                           pl.when(spot.is_null() & pl.col("_v_spot").is_not_null()).then(pl.lit("vendor"))
                           .otherwise(pl.lit(label)).alias("_spot_source")),
        pl.col("_spot"), label, [("_v_forward", "vendor_forward"), ("parity_forward", "parity_forward")], settings,
    )
    frame = frame.with_columns(
        pl.when(pl.col("model") == "bsm").then(pl.col("_spot_source")).otherwise(pl.col("underlying_price_source"))
        .alias("underlying_price_source"),
        pl.lit(rate).alias("rate"), pl.lit(q).alias("dividend_yield"),
    ).with_columns(
        pl.when(pl.col("underlying_price").is_null()).then(pl.lit("none")).otherwise(pl.col("underlying_price_source"))
        .alias("underlying_price_source")
    )
    out = compute_iv_greeks(frame, price_col="mid", underlying_col="underlying_price", model_col="model",
                            rate="rate", dividend_yield="dividend_yield", settings=settings.greeks)
    return out.select(OPTION_QUOTE_GREEKS.columns)


# --- checks of the enriched tables ----------------------------------------------------------


def nbbo_checks(frame: pl.DataFrame, settings: Settings = DEFAULT) -> list[CheckOutcome]:
    """``nbbo_coverage`` (usable prevailing quote share >= ``min_nbbo_coverage``) and, when
    the source reports the aggressor, ``aggressor_vs_vendor`` (accuracy of ``side``
    against it >= ``min_aggressor_accuracy``, the Lee-Ready baseline)."""
    quality = settings.quality
    rows = frame.height
    stats = join_quality(frame) if rows else {}
    usable = int(frame.filter(pl.col("nbbo_flag").is_in(list(USABLE_FLAGS))).height) if rows else 0
    coverage = usable / rows if rows else 1.0
    meta = {"rows": rows, "usable_quote_rows": usable, "usable_coverage": coverage,
            "min_nbbo_coverage": quality.min_nbbo_coverage, "rule": settings.aggressor.default_rule}
    meta.update({k: (float(v) if isinstance(v, float) else v) for k, v in stats.items() if v is not None and not isinstance(v, dict)})
    out = [CheckOutcome("nbbo_coverage", coverage >= quality.min_nbbo_coverage, WARN,
                        f"a usable prevailing quote for at least {quality.min_nbbo_coverage:.0%} of prints", meta)]
    if "aggressor_side" in frame.columns:
        truth = frame.filter(pl.col("aggressor_side").is_in(list(_SIDE_OF_VENDOR)))
        n = truth.height
        right = int((truth.get_column("side") == truth.get_column("aggressor_side").replace_strict(_SIDE_OF_VENDOR)).sum()) if n else 0
        acc = right / n if n else 1.0
        out.append(CheckOutcome(
            "aggressor_vs_vendor", acc >= quality.min_aggressor_accuracy, WARN,
            f"side agrees with the vendor's aggressor on at least {quality.min_aggressor_accuracy:.0%} of prints",
            {"n": n, "correct": right, "accuracy": acc, "min_aggressor_accuracy": quality.min_aggressor_accuracy,
             "rule": settings.aggressor.default_rule},
        ))
    return out


def premium_check(frame: pl.DataFrame) -> CheckOutcome:
    """``premium``: premium equals price x size x multiplier on every row (dollars)."""
    diff = (frame.get_column("premium") - frame.get_column("price") * frame.get_column("size") * frame.get_column("multiplier")).abs()
    bad = int((diff > 0).sum()) if frame.height else 0
    return CheckOutcome("premium", bad == 0, ERROR, "premium = price x size x multiplier on every print",
                        {"rows": frame.height, "mismatches": bad, "premium_total": float(frame.get_column("premium").sum() or 0.0)})


def _reprice_error(frame: pl.DataFrame, price_col: str, iv_col: str, status_col: str) -> tuple[int, float]:
    ok = frame.filter(pl.col(status_col) == IVStatus.OK.name)
    if ok.height == 0:
        return 0, 0.0
    a = {c: ok.get_column(c).cast(pl.Float64).to_numpy() for c in (price_col, iv_col, "underlying_price", "strike",
                                                                       "t_years", "rate", "dividend_yield")}
    call = (ok.get_column("right") == "C").to_numpy()
    fwd = (ok.get_column("model") == "black76").to_numpy()
    model = np.where(
        fwd,
        black76_price(a["underlying_price"], a["strike"], a["t_years"], a["rate"], a[iv_col], call),
        bsm_price(a["underlying_price"], a["strike"], a["t_years"], a["rate"], a["dividend_yield"], a[iv_col], call),
    )
    rel = np.abs(model - a[price_col]) / a[price_col]
    return ok.height, float(np.max(rel))


def greeks_checks(frame: pl.DataFrame, iv_pairs: list[tuple[str, str, str]], settings: Settings = DEFAULT) -> list[CheckOutcome]:
    """``reprice`` (every OK IV reprices its input within ``max_reprice_error``, ERROR),
    ``iv_status`` (no NOT_CONVERGED solve; status counts as metadata, WARN) and, where
    vendor greeks exist, ``vendor_delta`` (median |delta - vendor delta| within
    ``max_vendor_delta_median``, WARN). The one-batch case of :func:`greeks_checks_batches`."""
    return greeks_checks_batches([frame], iv_pairs, settings)


def greeks_checks_batches(
    batches: Iterable[pl.DataFrame], iv_pairs: list[tuple[str, str, str]], settings: Settings = DEFAULT
) -> list[CheckOutcome]:
    """:func:`greeks_checks` over a partition given in batches, in bounded memory: the
    worst repricing error is the largest of the batches', status counts are summed, and
    the vendor-delta median is taken over every batch's differences (8 bytes per row)."""
    quality = settings.quality
    reprice_meta: dict = {"max_reprice_error": quality.max_reprice_error}
    status_meta: dict = {"rows": 0}
    ok_rows = {iv_col: 0 for _, iv_col, _ in iv_pairs}
    errors = {iv_col: 0.0 for _, iv_col, _ in iv_pairs}
    diffs: list[pl.Series] = []
    has_vendor = False
    for frame in batches:
        status_meta["rows"] += frame.height
        for price_col, iv_col, status_col in iv_pairs:
            n, err = _reprice_error(frame, price_col, iv_col, status_col)
            ok_rows[iv_col] += n
            errors[iv_col] = max(errors[iv_col], err)
            for status, count in frame.get_column(status_col).value_counts().iter_rows():
                key = f"{status_col}.{status}"
                status_meta[key] = status_meta.get(key, 0) + int(count)
        if "vendor_delta" in frame.columns:
            has_vendor = True
            both = frame.filter(pl.col("delta").is_not_null() & pl.col("vendor_delta").is_not_null())
            diffs.append((both.get_column("delta") - both.get_column("vendor_delta")).abs())
    for _, iv_col, _ in iv_pairs:
        reprice_meta[f"{iv_col}_ok_rows"] = ok_rows[iv_col]
        reprice_meta[f"{iv_col}_max_rel_error"] = errors[iv_col]
    worst = max(errors.values(), default=0.0)
    not_converged = sum(v for k, v in status_meta.items() if k.endswith("." + IVStatus.NOT_CONVERGED.name))
    out = [
        CheckOutcome("reprice", worst <= quality.max_reprice_error, ERROR,
                     "every OK implied volatility reprices its input price", reprice_meta),
        # the counts in a fixed order (value_counts lists them in any order): the same metadata on a rerun
        CheckOutcome("iv_status", not_converged == 0, WARN, "no implied-volatility solve ends NOT_CONVERGED",
                     {"rows": status_meta.pop("rows"), **dict(sorted(status_meta.items()))}),
    ]
    if has_vendor:
        d = pl.concat(diffs) if diffs else pl.Series([], dtype=pl.Float64)
        med = float(d.median()) if len(d) else 0.0
        p95 = float(d.quantile(0.95)) if len(d) else 0.0
        out.append(CheckOutcome(
            "vendor_delta", med <= quality.max_vendor_delta_median, WARN,
            f"median |delta - vendor delta| at most {quality.max_vendor_delta_median}",
            {"n": len(d), "median_abs_diff": med, "p95_abs_diff": p95,
             "max_vendor_delta_median": quality.max_vendor_delta_median},
        ))
    return out


CHECKS: dict[str, tuple[tuple[str, str], ...]] = {
    OPTION_TRADES_ENRICHED.name: (
        ("nbbo_coverage", "share of prints with a usable prevailing quote; join quality as metadata"),
        ("premium", "premium = price x size x multiplier on every print"),
    ),
    STOCK_TRADES_ENRICHED.name: (
        ("nbbo_coverage", "share of prints with a usable prevailing quote; join quality as metadata"),
        ("aggressor_vs_vendor", "accuracy of the platform's aggressor against the vendor's (LOBSTER)"),
    ),
    FUTURES_TRADES_ENRICHED.name: (
        ("nbbo_coverage", "share of prints with a usable top of book before them; join quality as metadata"),
        ("aggressor_vs_vendor", "accuracy of the platform's aggressor against the exchange's (CME)"),
    ),
    OPTION_TRADE_GREEKS.name: (
        ("reprice", "every OK implied volatility reprices its input price"),
        ("iv_status", "no solve ends NOT_CONVERGED; counts of every status as metadata"),
    ),
    OPTION_QUOTE_GREEKS.name: (
        ("reprice", "every OK implied volatility reprices its input price"),
        ("iv_status", "no solve ends NOT_CONVERGED; counts of every status as metadata"),
        ("vendor_delta", "median |delta - vendor delta| where the source publishes greeks"),
    ),
}
"""The checks of each enriched table: (name, description), declared before any data exists."""


def check_table_batches(name: str, batches: Iterable[pl.DataFrame], settings: Settings = DEFAULT) -> list[CheckOutcome]:
    """:func:`check_table` over a partition given in batches: the greeks tables are
    checked batch by batch (:func:`greeks_checks_batches`, bounded memory); the trade
    tables, one row per print, are checked whole.

    Raises
    ------
    KeyError
        If ``name`` is not an enriched table.
    """
    if name == OPTION_TRADE_GREEKS.name:
        return greeks_checks_batches(batches, [("price", "iv_trade", "iv_trade_status"), ("mid", "iv_mid", "iv_mid_status")], settings)
    if name == OPTION_QUOTE_GREEKS.name:
        return greeks_checks_batches(batches, [("mid", "iv", "iv_status")], settings)
    frames = list(batches)
    return check_table(name, pl.concat(frames) if len(frames) > 1 else frames[0], settings)


def check_table(name: str, frame: pl.DataFrame, settings: Settings = DEFAULT) -> list[CheckOutcome]:
    """Run the checks of enriched table ``name`` (see :data:`CHECKS`) on one partition.

    Raises
    ------
    KeyError
        If ``name`` is not an enriched table.
    """
    if name == OPTION_TRADES_ENRICHED.name:
        return nbbo_checks(frame, settings) + [premium_check(frame)]
    if name in (STOCK_TRADES_ENRICHED.name, FUTURES_TRADES_ENRICHED.name):
        return nbbo_checks(frame, settings)
    if name == OPTION_TRADE_GREEKS.name:
        return greeks_checks(frame, [("price", "iv_trade", "iv_trade_status"), ("mid", "iv_mid", "iv_mid_status")], settings)
    if name == OPTION_QUOTE_GREEKS.name:
        return greeks_checks(frame, [("mid", "iv", "iv_status")], settings)
    raise KeyError(f"{name!r} is not an enriched table; known: {sorted(CHECKS)}")
