"""Option prints ready for flow analytics: the enriched prints with their greeks, the
aggressor as a sign, the evidence id of every print, and whether its NBBO is usable.

Every gold flow table starts from :func:`option_flow_prints`, so the windows, packets,
alerts and gamma exposure all count the same prints the same way:

* canceled prints (``canceled``) are left out, and counted;
* ``sign`` is +1 for ``side == "buy"``, -1 for ``"sell"``, 0 for ``"unknown"`` (the
  platform's aggressor, :mod:`m17_platform.aggressor`);
* ``delta``, ``gamma`` and the underlying price ``S`` (``underlying_price``: spot for
  Black-Scholes-Merton roots, the forward for Black-76 roots) come from
  ``option_trade_greeks``, the IV the greeks used as ``iv``;
* ``evidence_id`` names the print so that an alert's evidence resolves back to it:
  the vendor's ``trade_id``, or ``<instrument>@<ts_ns>:<sequence>`` when the vendor gives
  none (LOBSTER hidden executions, Databento opening prints).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from m17_platform.enrichment import USABLE_FLAGS
from m17_platform.schemas import OPTION_TRADE_GREEKS, OPTION_TRADES_ENRICHED
from m17_platform.settings import DEFAULT, Settings

SIDE_SIGN = {"buy": 1, "sell": -1, "unknown": 0}
"""Aggressor side -> sign of the flow (+1 buyer-initiated, -1 seller-initiated, 0 unknown)."""

_GREEK_KEY = ("option_symbol", "ts_ns", "sequence")
_GREEK_COLUMNS = ("delta", "gamma", "underlying_price", "model", "t_years", "rate", "dividend_yield")


def evidence_id(instrument: str) -> pl.Expr:
    """The evidence id of a print: ``trade_id``, else ``<instrument>@<ts_ns>:<sequence>``.

    Parameters
    ----------
    instrument : str
        Column naming the instrument (``option_symbol`` / ``symbol``).

    Returns
    -------
    polars.Expr
        Utf8 expression named ``evidence_id``.
    """
    fallback = pl.format("{}@{}:{}", pl.col(instrument), pl.col("ts_ns"), pl.col("sequence"))
    return pl.coalesce(pl.col("trade_id"), fallback).alias("evidence_id")


def run_codes(frame: pl.DataFrame, keys: Sequence[str]) -> np.ndarray:
    """A code per row of a frame sorted by ``keys`` that changes wherever a key changes.

    Parameters
    ----------
    frame : polars.DataFrame
        Rows sorted (grouped) by ``keys``.
    keys : sequence of str

    Returns
    -------
    numpy.ndarray of int64, shape (height,)
        Non-decreasing codes; equal codes = one run of equal keys. What the numba
        kernels take as their group column (cheaper than ranking strings).
    """
    if frame.height == 0:
        return np.empty(0, dtype=np.int64)
    changed = pl.any_horizontal([pl.col(k).ne_missing(pl.col(k).shift(1)) for k in keys])
    return frame.select(changed.cum_sum().cast(pl.Int64)).to_series().to_numpy()


def side_sign() -> pl.Expr:
    """``side`` as an Int8 sign (+1 buy, -1 sell, 0 unknown or anything else), named ``sign``."""
    return pl.col("side").replace_strict(SIDE_SIGN, default=0, return_dtype=pl.Int8).alias("sign")


def nbbo_usable() -> pl.Expr:
    """True where the print's prevailing quote is usable (``nbbo_flag`` in
    :data:`m17_platform.enrichment.USABLE_FLAGS`: the enrichment classified the print
    against it); named ``nbbo_ok``. What the classifiers' NBBO coverage counts."""
    return pl.col("nbbo_flag").cast(pl.String).is_in(list(USABLE_FLAGS)).fill_null(False).alias("nbbo_ok")


def nbbo_fresh(settings: Settings = DEFAULT) -> pl.Expr:
    """True where the quote is usable and no older than ``SignalFilterSettings.nbbo_max_age_ms``
    (seed 004's "NBBO missing or stale" is its negation); named ``nbbo_fresh``."""
    max_age_ns = int(settings.signals.nbbo_max_age_ms * 1_000_000)
    usable = pl.col("nbbo_flag").cast(pl.String).is_in(list(USABLE_FLAGS))
    return (usable & (pl.col("quote_age_ns") <= max_age_ns)).fill_null(False).alias("nbbo_fresh")


def _attach_greeks(enriched: pl.DataFrame, greeks: pl.DataFrame) -> pl.DataFrame:
    """The greeks of each enriched print: positionally when both tables hold the same
    prints in the same order (the lake writes both sorted by the same key, the greeks
    computed row for row), else by (option_symbol, ts_ns, sequence)."""
    iv = (
        pl.when(pl.col("greeks_iv_source") == "mid").then(pl.col("iv_mid"))
        .when(pl.col("greeks_iv_source") == "trade").then(pl.col("iv_trade"))
        .otherwise(None).alias("iv")
    )
    g = greeks.select(*_GREEK_KEY, *_GREEK_COLUMNS, iv)
    if g.height == enriched.height and all(
        g.get_column(k).equals(enriched.get_column(k)) for k in _GREEK_KEY
    ):
        return pl.concat([enriched, g.drop(_GREEK_KEY)], how="horizontal")
    g = g.unique(list(_GREEK_KEY), keep="first", maintain_order=True)
    return enriched.join(g, on=list(_GREEK_KEY), how="left", maintain_order="left")


def option_flow_prints(
    enriched: pl.DataFrame, greeks: pl.DataFrame, settings: Settings = DEFAULT
) -> tuple[pl.DataFrame, dict[str, int]]:
    """The non-canceled option prints of a partition with greeks, sign and evidence id.

    Parameters
    ----------
    enriched : polars.DataFrame
        ``option_trades_enriched`` rows (:data:`m17_platform.schemas.OPTION_TRADES_ENRICHED`).
    greeks : polars.DataFrame
        ``option_trade_greeks`` rows of the same prints (may be empty: greek columns are
        then null).
    settings : Settings
        ``signals.nbbo_max_age_ms`` for ``nbbo_fresh``.

    Returns
    -------
    prints : polars.DataFrame
        One row per non-canceled print, sorted by (option_symbol, ts_ns, sequence), with
        the enriched columns plus ``sign`` (Int8), ``evidence_id`` (Utf8), ``nbbo_ok`` and
        ``nbbo_fresh`` (bool), ``delta`` (per $1), ``gamma`` (per $1 per $1), ``underlying_price``
        (dollars), ``iv`` (annualised decimal), ``model``, ``t_years``, ``rate``,
        ``dividend_yield`` (null where the greeks table has no row or no value).
    stats : dict[str, int]
        ``prints_in`` (rows read), ``prints_canceled`` (left out), ``prints_used``.

    Raises
    ------
    ValueError
        If ``enriched`` lacks a column of ``option_trades_enriched``.
    """
    missing = [c for c in OPTION_TRADES_ENRICHED.columns if c not in enriched.columns]
    if missing:
        raise ValueError(f"option_trades_enriched frame lacks columns {missing}")
    if greeks.height == 0 or not set(_GREEK_KEY) <= set(greeks.columns):
        greeks = pl.from_arrow(OPTION_TRADE_GREEKS.schema.empty_table())
    canceled = int(enriched.get_column("canceled").sum() or 0)
    out = _attach_greeks(enriched, greeks).filter(~pl.col("canceled"))
    out = out.with_columns(side_sign(), evidence_id("option_symbol"), nbbo_usable(), nbbo_fresh(settings))
    out = out.sort(["option_symbol", "ts_ns", "sequence"], maintain_order=True)
    return out, {"prints_in": enriched.height, "prints_canceled": canceled, "prints_used": out.height}
