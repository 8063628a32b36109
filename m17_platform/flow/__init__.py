"""Flow analytics, the gold layer: what traders open the platform for.

Modules
-------
prints
    The enriched option prints with their greeks, aggressor sign and evidence ids
    (the common input of every flow table; canceled prints left out).
windows
    ``flow_windows``: volume, premium by aggressor, signed delta and gamma flow per
    1-min / 10-min window per contract, strike/right and underlying, cumulative series,
    and M17's plain-text window artifact (seeds 000, 002).
packets
    ``flow_packets``: prints of one contract within 500 ms clustered (seed 004).
classifiers
    ``flow_alerts``: sweep, block, repeated hits, spike, 0DTE burst, multi-leg
    structures, with confidence, reasons and evidence; signal presets ``smart-money``,
    ``balanced``, ``all`` (seed 004).
gamma
    ``gamma_exposure``: dealer gamma per strike and in total from customer flow and from
    open interest, call wall, put wall and gamma flip over the day, without look-ahead.
offexchange
    ``off_exchange_prints`` (TRF / ADF flag) and ``off_exchange_events`` (absorbed block,
    stealth accumulation / distribution, cooldown; seed 004).
bars
    ``bars``: 1-minute OHLCV and VWAP of the underlying, futures (also on the
    underlying's scale) and option contracts.
gold
    One builder per table (what the assets call) and :func:`~.gold.gold_tables` for all.
checks
    The gold tables' checks (:data:`~.checks.CHECKS`, :func:`~.checks.check_table`).

Every threshold and window comes from :mod:`m17_platform.settings` (``FlowSettings``,
``ClassifierSettings``, ``SignalFilterSettings``, ``GammaSettings``,
``OffExchangeSettings``, ``BarSettings``). No Dagster here.
"""

from m17_platform.flow.checks import CHECKS, check_table
from m17_platform.flow.gold import GoldResult, gold_tables

__all__ = ["CHECKS", "GoldResult", "check_table", "gold_tables"]
