"""The ``rates`` raw table from configuration: a constant risk-free rate and dividend yield.

A Treasury curve source plugs in beside this one (issue: enrichment core); until then
every partition gets the configured constant, and the row's ``source`` says so.
"""

from __future__ import annotations

import polars as pl

from m17_platform.lake import PartitionRef
from m17_platform.settings import RatesSettings


def constant_rates(
    ref: PartitionRef, settings: RatesSettings, *, rate: float | None = None, source: str = "settings.rates.constant"
) -> pl.DataFrame:
    """One row for ``ref``: ``rate`` (default ``settings.risk_free_rate``) at ``settings.tenor_days``.

    Returns
    -------
    polars.DataFrame
        Columns of :data:`m17_platform.schemas.RATES`: date (date), tenor_days (int32,
        calendar days), rate and dividend_yield (float64, annualised continuously
        compounded decimals), underlying, source.
    """
    return pl.DataFrame(
        {
            "date": [ref.trade_date],
            "tenor_days": [settings.tenor_days],
            "rate": [float(settings.risk_free_rate if rate is None else rate)],
            "dividend_yield": [float(settings.dividend_yield.get(ref.underlying, 0.0))],
            "underlying": [ref.underlying],
            "source": [source],
        },
        schema_overrides={"tenor_days": pl.Int32},
    )
