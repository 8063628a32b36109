"""Shared pieces of the synthetic session: random streams, the intraday profile, price
grids, count allocation, heavy-tailed sizes and settings validation."""

from __future__ import annotations

import zlib
from enum import IntEnum

import numpy as np

from m17_platform.lake import PartitionRef
from m17_platform.settings import SyntheticSettings

_PROFILE_POINTS = 4097
"""Grid points of the tabulated inverse of the intraday activity CDF."""


class Stream(IntEnum):
    """Codes of the independent random streams (third key of every generator's seed)."""

    OPEN = 1
    STOCK_QUOTES = 2
    STOCK_TRADES = 3
    FUTURES_BOOK = 4
    FUTURES_TRADES = 5
    OPTION_QUOTES = 6
    OPTION_TRADES = 7


def rng(settings: SyntheticSettings, ref: PartitionRef, stream: Stream, index: int = 0) -> np.random.Generator:
    """The random stream ``(seed, trade date, underlying, stream, index)``.

    ``numpy.random.default_rng([seed, date ordinal, crc32(underlying), stream, index])``:
    PCG64 seeded through ``SeedSequence`` from the whole key, so each contract
    (``index``) of each table of each day has a stream of its own and any subset of
    contracts can be generated alone, in any order, with the same result.
    """
    key = [int(settings.seed), ref.trade_date.toordinal(), zlib.crc32(ref.underlying.encode()), int(stream), int(index)]
    return np.random.default_rng(key)


def intraday_times(u: np.ndarray, start_ns: int, end_ns: int, u_shape: float) -> np.ndarray:
    """Map uniforms in [0, 1) to instants in ``[start_ns, end_ns)`` with the U-shaped
    intraday intensity ``lambda(x) = 1 + u_shape (2x - 1)^2`` over the fraction ``x`` of
    the window (busier at the open and the close).

    The CDF ``Lambda(x) = (x + u_shape ((2x - 1)^3 + 1) / 6) / (1 + u_shape / 3)`` is
    tabulated and inverted by linear interpolation.

    Parameters
    ----------
    u : float64 array (n,)
        Uniforms in [0, 1); sorted uniforms give sorted instants.
    start_ns, end_ns : int
        Window (ns since epoch, UTC), ``end_ns > start_ns``.
    u_shape : float
        ``SyntheticSettings.intraday_u_shape`` (>= 0).

    Returns
    -------
    int64 array (n,)
        Instants (ns since epoch, UTC) in ``[start_ns, end_ns)``.
    """
    x = np.linspace(0.0, 1.0, _PROFILE_POINTS)
    cdf = (x + u_shape * ((2.0 * x - 1.0) ** 3 + 1.0) / 6.0) / (1.0 + u_shape / 3.0)
    frac = np.interp(u, cdf, x)
    span = end_ns - start_ns
    out = start_ns + np.floor(frac * span).astype(np.int64)
    return np.minimum(out, end_ns - 1)


def ticks_to_price(ticks: np.ndarray, tick: float) -> np.ndarray:
    """Integer ticks -> float64 dollars, as the nearest double of the decimal price.

    Divides by ``1 / tick`` when that is an integer (0.01 -> / 100, so 68_000 ticks give
    exactly ``680.0`` and 1 tick ``0.01``), else multiplies (0.25 is exact in binary).
    """
    inverse = round(1.0 / tick)
    if inverse > 0 and abs(inverse * tick - 1.0) < 1e-12:
        return np.asarray(ticks, dtype=np.float64) / inverse
    return np.asarray(ticks, dtype=np.float64) * tick


def allocate(total: int, weights: np.ndarray, minimum: int = 0) -> np.ndarray:
    """Split ``total`` into integer counts proportional to ``weights`` (largest remainder).

    Parameters
    ----------
    total : int
        Count to split (>= ``minimum * len(weights)``).
    weights : float64 array (n,)
        Non-negative weights, not all zero.
    minimum : int
        Count every entry gets before the proportional split.

    Returns
    -------
    int64 array (n,)
        Counts summing to exactly ``total``; ties in the remainders go to the lower index.

    Raises
    ------
    ValueError
        If ``total`` is smaller than ``minimum * n`` or the weights are not usable.
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.shape[0]
    rest = total - minimum * n
    if rest < 0:
        raise ValueError(f"cannot give {n} entries at least {minimum} each out of {total}")
    if n == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("allocation weights must be finite, non-negative and not all zero")
    raw = rest * w / w.sum()
    base = np.floor(raw).astype(np.int64)
    left = rest - int(base.sum())
    if left:
        order = np.lexsort((np.arange(n), -(raw - base)))
        base[order[:left]] += 1
    return base + minimum


def pareto_sizes(u: np.ndarray, minimum: int, alpha: float, maximum: int) -> np.ndarray:
    """Heavy-tailed integer sizes ``floor(minimum * u^(-1/alpha))`` capped at ``maximum``.

    The discrete Pareto (power-law) tail of trade sizes (Gopikrishnan et al. 2000 find
    tail indices near 1.5 for stock trade sizes). ``u`` uniforms in (0, 1]; int64 result
    in ``[minimum, maximum]``.
    """
    x = minimum * np.power(np.maximum(u, 1e-300), -1.0 / alpha)
    return np.minimum(np.floor(x), maximum).astype(np.int64)


def ratio_units(value: float, unit: float, what: str) -> int:
    """``value / unit`` as an integer, or ``ValueError`` naming ``what`` if it is not one."""
    k = round(value / unit)
    if k < 1 or abs(k * unit - value) > 1e-9 * max(1.0, abs(value)):
        raise ValueError(f"{what} ({value}) must be a positive whole multiple of {unit}")
    return int(k)


def validate(settings: SyntheticSettings) -> None:
    """Check the settings before generating anything.

    Raises
    ------
    ValueError
        Naming the first field out of range: negative counts, shares outside [0, 1],
        probability vectors that do not sum to 1, grids that do not nest, an SSVI
        parameter set that admits butterfly arbitrage, mismatched exchange weights.
    """
    s = settings
    if s.seed < 0:
        raise ValueError(f"seed must be >= 0, got {s.seed}")
    for name in ("option_quotes", "option_trades", "stock_quotes", "stock_trades", "futures_mbp10", "futures_trades"):
        if getattr(s, name) < 0:
            raise ValueError(f"SyntheticSettings.{name} must be >= 0, got {getattr(s, name)}")
    if s.stock_quotes < 1:
        raise ValueError("SyntheticSettings.stock_quotes must be >= 1: every table is priced off the underlying's quotes")
    for name in (
        "buy_share", "stock_trade_mid_share", "stock_trade_improve_share", "stock_odd_lot_share",
        "option_quote_move_share", "option_trade_inside_share", "option_trade_mid_share", "sweep_share",
        "block_share", "canceled_share", "quote_activity_floor", "trade_activity_floor", "futures_noise_add_share",
    ):
        v = getattr(s, name)
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"SyntheticSettings.{name} must be in [0, 1], got {v}")
    if s.stock_trade_mid_share + s.stock_trade_improve_share > 1.0:
        raise ValueError("stock_trade_mid_share + stock_trade_improve_share must be <= 1")
    if s.option_trade_inside_share + s.option_trade_mid_share > 1.0:
        raise ValueError("option_trade_inside_share + option_trade_mid_share must be <= 1")
    if s.sweep_share + s.block_share > 1.0:
        raise ValueError("sweep_share + block_share must be <= 1")
    probs = np.asarray(s.stock_spread_tick_probs, dtype=np.float64)
    if probs.size == 0 or np.any(probs < 0) or abs(probs.sum() - 1.0) > 1e-9:
        raise ValueError(f"stock_spread_tick_probs must be non-negative and sum to 1, got {s.stock_spread_tick_probs}")
    for name in ("annual_vol", "trading_days_per_year", "stock_tick", "futures_tick", "strike_step",
                 "option_tick_small", "option_tick_large", "option_tick_break", "atm_vol_short", "atm_vol_long",
                 "atm_vol_decay_years", "ssvi_eta", "futures_level_size_mean", "futures_order_size_mean",
                 "futures_noise_level_decay", "option_quote_size_mean", "stock_quote_size_mean_lots",
                 "quote_activity_z_scale", "trade_activity_z_scale", "option_trade_size_alpha",
                 "stock_trade_size_alpha", "futures_trade_size_alpha", "block_size_alpha"):
        if not getattr(s, name) > 0:
            raise ValueError(f"SyntheticSettings.{name} must be > 0, got {getattr(s, name)}")
    for name in ("stock_quote_min_gap_ns", "option_quote_min_gap_ns"):
        if getattr(s, name) < 2:  # a print fits strictly between two quotes
            raise ValueError(f"SyntheticSettings.{name} must be >= 2 ns, got {getattr(s, name)}")
    for name in ("futures_fill_latency_ns", "stock_lot_size",
                 "option_trade_max_size", "stock_trade_max_lots", "futures_trade_max_size", "block_min_size"):
        if getattr(s, name) < 1:
            raise ValueError(f"SyntheticSettings.{name} must be >= 1, got {getattr(s, name)}")
    large = ratio_units(s.option_tick_large, s.option_tick_small, "option_tick_large")
    ratio_units(s.option_tick_break, s.option_tick_small * large, "option_tick_break")
    if not -1.0 < s.ssvi_rho < 1.0:
        raise ValueError(f"ssvi_rho must be in (-1, 1), got {s.ssvi_rho}")
    if not 0.0 < s.ssvi_gamma <= 0.5:
        raise ValueError(f"ssvi_gamma must be in (0, 1/2], got {s.ssvi_gamma}")
    if s.ssvi_eta * (1.0 + abs(s.ssvi_rho)) > 2.0:
        raise ValueError(
            f"ssvi_eta * (1 + |ssvi_rho|) = {s.ssvi_eta * (1 + abs(s.ssvi_rho)):.3f} > 2: the SSVI surface "
            "would admit butterfly arbitrage (Gatheral & Jacquier 2014)"
        )
    if len(s.option_exchanges) != len(s.option_exchange_weights) or not s.option_exchanges:
        raise ValueError("option_exchanges and option_exchange_weights must be non-empty and of the same length")
    if any(w < 0 for w in s.option_exchange_weights) or sum(s.option_exchange_weights) <= 0:
        raise ValueError("option_exchange_weights must be non-negative and not all zero")
    if not 2 <= s.sweep_max_legs <= len(s.option_exchanges):
        raise ValueError(f"sweep_max_legs must be between 2 and the number of option exchanges, got {s.sweep_max_legs}")
    if not s.stock_exchanges:
        raise ValueError("stock_exchanges must not be empty")
    if not s.expiry_activity or any(w <= 0 for w in s.expiry_activity):
        raise ValueError("expiry_activity must be non-empty and positive")
    if s.weekly_expirations < 0 or s.strikes_each_side < 0:
        raise ValueError("weekly_expirations and strikes_each_side must be >= 0")
    if not s.daily_expiration and s.weekly_expirations == 0:
        raise ValueError("the chain needs an expiration: set daily_expiration or weekly_expirations > 0")
    if not s.futures_contract_months or any(not 1 <= m <= 12 for m in s.futures_contract_months):
        raise ValueError(f"futures_contract_months must be months 1-12, got {s.futures_contract_months}")
    if (s.futures_mbp10 or s.futures_trades) and s.futures_mbp10 < 1 + 2 * s.futures_trades:
        raise ValueError("futures_mbp10 must be at least 1 + 2 * futures_trades (opening book, each print and its fill)")
