"""European option prices, implied volatility and greeks (numba kernels + a polars helper).

Models
------
* ``bsm`` — Black & Scholes (1973) with Merton's (1973) continuous dividend yield ``q``:
  ``C = S e^{-qT} N(d1) - K e^{-rT} N(d2)``, ``P = K e^{-rT} N(-d2) - S e^{-qT} N(-d1)``,
  ``d1 = (ln(S/K) + (r - q + sigma^2/2) T) / (sigma sqrt(T))``, ``d2 = d1 - sigma sqrt(T)``.
* ``black76`` — Black (1976) on a forward / futures price ``F``, discounted at ``e^{-rT}``:
  ``C = e^{-rT} (F N(d1) - K N(d2))``, ``P = e^{-rT} (K N(-d2) - F N(-d1))``,
  ``d1 = (ln(F/K) + sigma^2 T/2) / (sigma sqrt(T))``.

Greeks are the closed forms in Hull, *Options, Futures and Other Derivatives* (chapter
"The Greek Letters", and the Black-76 section of "Futures options"), in the platform's
units: per contract-share (not multiplied by the contract multiplier), theta per calendar
day, vega per vol point (0.01 sigma), rho per rate point (0.01 r). For ``black76`` the
underlying is the forward: delta and gamma are w.r.t. ``F``, and theta and rho hold ``F``
fixed (only the discount factor and the time in ``d1``/``d2`` move).

Implied volatility uses the standard reduction to an undiscounted, out-of-the-money price
(put-call parity, so deep in-the-money quotes are solved through their time value) and a
safeguarded Newton iteration on the log of that price, with a bracket kept at every step
and geometric bisection whenever Newton leaves it — the ``rtsafe`` scheme of Press et al.,
*Numerical Recipes* (3rd ed., section 9.4), applied to ``ln(price)`` as in Jäckel, "Let's
be rational" (2015, Wilmott). Every result carries an :class:`IVStatus`; an ``OK`` IV
always reprices the input time value to ``GreeksSettings.reprice_rtol``.
"""

from __future__ import annotations

import math

from enum import IntEnum

import numba
import numpy as np
import polars as pl

from m17_platform import calendar
from m17_platform.settings import DEFAULT, GreeksSettings, SessionSettings


GREEKS_DEFAULT = GreeksSettings()


class IVStatus(IntEnum):
    """Outcome of one implied-volatility solve (``iv`` is NaN unless ``OK``)."""

    OK = 0
    NO_QUOTE = 1  # price NaN or <= 0
    EXPIRED = 2  # T <= 0
    BELOW_INTRINSIC = 3  # price < discounted intrinsic (minus intrinsic_tolerance)
    NO_TIME_VALUE = 4  # time value <= min_time_value
    ABOVE_UPPER_BOUND = 5  # call >= S e^{-qT} (F e^{-rT}); put >= K e^{-rT}
    NOT_CONVERGED = 6  # solver did not reprice within reprice_rtol
    BELOW_MIN_VOL = 7  # time value below the price at min_vol
    ABOVE_MAX_VOL = 8  # time value above the price at max_vol
    INVALID_INPUT = 9  # underlying / strike / discount not finite and > 0, or T NaN


class Model(IntEnum):
    """Pricing model code used by the kernels."""

    BSM = 0
    BLACK76 = 1


_MODEL_NAMES = {"bsm": Model.BSM, "black76": Model.BLACK76}
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# --- scalar kernels ---------------------------------------------------------------------------


@numba.njit(cache=False, inline="always")
def _ncdf(x):
    return 0.5 * math.erfc(-x * _INV_SQRT2)


@numba.njit(cache=False, inline="always")
def _npdf(x):
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


@numba.njit(cache=False)
def _forward_discount(u, T, r, q, model):
    """(F, D) from the underlying ``u``: BSM F = S e^{(r-q)T}; Black-76 F = u. D = e^{-rT}."""
    D = math.exp(-r * T)
    if model == 0:
        return u * math.exp((r - q) * T), D
    return u, D


@numba.njit(cache=False)
def _otm_undiscounted(F, K, s, call):
    """Undiscounted Black price with total vol ``s = sigma sqrt(T) > 0``."""
    d1 = math.log(F / K) / s + 0.5 * s
    d2 = d1 - s
    if call:
        return F * _ncdf(d1) - K * _ncdf(d2)
    return K * _ncdf(-d2) - F * _ncdf(-d1)


@numba.njit(cache=False)
def _price_one(u, K, T, r, q, sigma, call, model):
    if not (u > 0.0 and K > 0.0 and T >= 0.0 and sigma >= 0.0 and r == r and q == q):
        return np.nan
    F, D = _forward_discount(u, T, r, q, model)
    s = sigma * math.sqrt(T)
    if s == 0.0:
        return D * (max(F - K, 0.0) if call else max(K - F, 0.0))
    return D * _otm_undiscounted(F, K, s, call)


@numba.njit(cache=False)
def _price_kernel(u, K, T, r, q, sigma, call, model):
    n = u.shape[0]
    out = np.empty(n)
    for i in range(n):
        out[i] = _price_one(u[i], K[i], T[i], r[i], q[i], sigma[i], call[i], model[i])
    return out


@numba.njit(cache=False)
def _iv_one(price, u, K, T, r, q, call, model, tol, max_iter, vol_lo, vol_hi, min_tv, intr_tol, rtol):
    nan = np.nan
    if not (price > 0.0):
        return nan, 1  # NO_QUOTE (also NaN)
    if T != T:
        return nan, 9
    if T <= 0.0:
        return nan, 2  # EXPIRED
    if not (u > 0.0 and K > 0.0 and r == r and q == q and u < np.inf and K < np.inf):
        return nan, 9
    F, D = _forward_discount(u, T, r, q, model)
    if not (F > 0.0 and F < np.inf and D > 0.0):
        return nan, 9
    und = price / D
    if call:
        intrinsic = max(F - K, 0.0)
        upper = F
    else:
        intrinsic = max(K - F, 0.0)
        upper = K
    if und >= upper:
        return nan, 5  # ABOVE_UPPER_BOUND
    tv = und - intrinsic
    if tv * D < -intr_tol:
        return nan, 3  # BELOW_INTRINSIC
    if tv * D <= min_tv:
        return nan, 4  # NO_TIME_VALUE
    # The out-of-the-money option (by parity its undiscounted price is the time value).
    otm_call = F < K
    sqrt_t = math.sqrt(T)
    lo = vol_lo * sqrt_t
    hi = vol_hi * sqrt_t
    if tv < _otm_undiscounted(F, K, lo, otm_call):
        return nan, 7  # BELOW_MIN_VOL
    if tv > _otm_undiscounted(F, K, hi, otm_call):
        return nan, 8  # ABOVE_MAX_VOL
    x = math.log(F / K)
    ln_tv = math.log(tv)
    # Initial guess: the larger of the ATM (Brenner-Subrahmanyam) estimate and the
    # inflection point sqrt(2|x|) of the normalised price; clamped into the bracket.
    s = max(math.sqrt(2.0 * math.pi) * tv / math.sqrt(F * K), math.sqrt(2.0 * abs(x)))
    if not (lo < s < hi):
        s = math.sqrt(lo * hi)
    tol_s = tol * sqrt_t
    for _ in range(max_iter):
        p = _otm_undiscounted(F, K, s, otm_call)
        if p > 0.0:
            g = math.log(p) - ln_tv
        else:
            g = -np.inf
        if g == 0.0:
            break
        if g < 0.0:
            lo = s
        else:
            hi = s
        d1 = x / s + 0.5 * s
        vega_s = F * _npdf(d1)
        s_new = nan
        if p > 0.0 and vega_s > 0.0:
            s_new = s - g * p / vega_s
        if not (lo < s_new < hi):
            s_new = math.sqrt(lo * hi) if lo > 0.0 else 0.5 * (lo + hi)
        if abs(s_new - s) <= tol_s or hi - lo <= tol_s:
            s = s_new
            break
        s = s_new
    p = _otm_undiscounted(F, K, s, otm_call)
    if not (abs(p - tv) <= rtol * tv):
        return nan, 6  # NOT_CONVERGED
    return s / sqrt_t, 0


@numba.njit(cache=False)
def _iv_kernel(price, u, K, T, r, q, call, model, tol, max_iter, vol_lo, vol_hi, min_tv, intr_tol, rtol):
    n = price.shape[0]
    iv = np.empty(n)
    status = np.empty(n, dtype=np.int8)
    for i in range(n):
        v, st = _iv_one(price[i], u[i], K[i], T[i], r[i], q[i], call[i], model[i], tol, max_iter,
                        vol_lo, vol_hi, min_tv, intr_tol, rtol)
        iv[i] = v
        status[i] = st
    return iv, status


@numba.njit(cache=False)
def _greeks_kernel(u, K, T, r, q, sigma, call, model, days):
    n = u.shape[0]
    delta = np.full(n, np.nan)
    gamma = np.full(n, np.nan)
    theta = np.full(n, np.nan)
    vega = np.full(n, np.nan)
    rho = np.full(n, np.nan)
    for i in range(n):
        S, k, t, rr, qq, sg = u[i], K[i], T[i], r[i], q[i], sigma[i]
        if not (S > 0.0 and k > 0.0 and t > 0.0 and sg > 0.0 and rr == rr and qq == qq):
            continue
        st = math.sqrt(t)
        disc_r = math.exp(-rr * t)
        if model[i] == 0:
            disc_q = math.exp(-qq * t)
            d1 = (math.log(S / k) + (rr - qq + 0.5 * sg * sg) * t) / (sg * st)
            d2 = d1 - sg * st
            pdf1 = _npdf(d1)
            common = -S * disc_q * pdf1 * sg / (2.0 * st)
            gamma[i] = disc_q * pdf1 / (S * sg * st)
            vega[i] = S * disc_q * pdf1 * st / 100.0
            if call[i]:
                delta[i] = disc_q * _ncdf(d1)
                th = common - rr * k * disc_r * _ncdf(d2) + qq * S * disc_q * _ncdf(d1)
                rho[i] = k * t * disc_r * _ncdf(d2) / 100.0
            else:
                delta[i] = -disc_q * _ncdf(-d1)
                th = common + rr * k * disc_r * _ncdf(-d2) - qq * S * disc_q * _ncdf(-d1)
                rho[i] = -k * t * disc_r * _ncdf(-d2) / 100.0
            theta[i] = th / days
        else:
            F = S
            d1 = (math.log(F / k) + 0.5 * sg * sg * t) / (sg * st)
            d2 = d1 - sg * st
            pdf1 = _npdf(d1)
            gamma[i] = disc_r * pdf1 / (F * sg * st)
            vega[i] = F * disc_r * pdf1 * st / 100.0
            if call[i]:
                delta[i] = disc_r * _ncdf(d1)
                price = disc_r * (F * _ncdf(d1) - k * _ncdf(d2))
            else:
                delta[i] = -disc_r * _ncdf(-d1)
                price = disc_r * (k * _ncdf(-d2) - F * _ncdf(-d1))
            theta[i] = (-F * disc_r * pdf1 * sg / (2.0 * st) + rr * price) / days
            rho[i] = -t * price / 100.0
    return delta, gamma, theta, vega, rho


# --- numpy-level API --------------------------------------------------------------------------


def _model_codes(model) -> np.ndarray:
    if isinstance(model, str):
        try:
            return np.asarray(_MODEL_NAMES[model.lower()], dtype=np.int8)
        except KeyError:
            raise ValueError(f"unknown model {model!r}; expected one of {sorted(_MODEL_NAMES)}") from None
    codes = np.asarray(model)
    if codes.dtype.kind in "UO":
        try:
            return np.vectorize(lambda m: int(_MODEL_NAMES[str(m).lower()]), otypes=[np.int8])(codes)
        except KeyError as exc:
            raise ValueError(f"unknown model {exc.args[0]!r}; expected one of {sorted(_MODEL_NAMES)}") from None
    codes = codes.astype(np.int8)
    if not np.isin(codes, [m.value for m in Model]).all():
        raise ValueError(f"model codes must be {[m.value for m in Model]}")
    return codes


def _prepare(*arrays, is_call, model):
    """Broadcast inputs; return flat contiguous arrays and the broadcast shape."""
    parts = [np.asarray(a, dtype=np.float64) for a in arrays]
    parts.append(np.asarray(is_call, dtype=np.bool_))
    parts.append(_model_codes(model))
    b = np.broadcast_arrays(*parts)
    shape = b[0].shape
    return [np.ascontiguousarray(x).ravel() for x in b], shape


def bsm_price(S, K, T, r, q, sigma, is_call):
    """Black-Scholes-Merton price of a European option with continuous dividend yield.

    Formula: Black & Scholes (1973), Merton (1973); Hull, *Options, Futures and Other
    Derivatives*, "Black-Scholes-Merton model" (dividend-yield form).

    Parameters
    ----------
    S : array_like of float64
        Spot price of the underlying, dollars.
    K : array_like of float64
        Strike, dollars.
    T : array_like of float64
        Time to expiry, years (ACT/365 in this platform).
    r, q : array_like of float64
        Continuously compounded risk-free rate and dividend yield, decimal per year.
    sigma : array_like of float64
        Volatility, decimal per sqrt(year).
    is_call : array_like of bool
        True for calls, False for puts.

    Returns
    -------
    numpy.ndarray of float64
        Price in dollars per share, shape = broadcast shape of the inputs. ``T == 0`` or
        ``sigma == 0`` give the discounted forward intrinsic value; invalid inputs
        (``S <= 0``, ``K <= 0``, ``T < 0``, ``sigma < 0``, NaN) give NaN.
    """
    flat, shape = _prepare(S, K, T, r, q, sigma, is_call=is_call, model=Model.BSM)
    return _price_kernel(*flat).reshape(shape)


def black76_price(F, K, T, r, sigma, is_call):
    """Black (1976) price of a European option on a forward / futures price.

    ``C = e^{-rT}(F N(d1) - K N(d2))``, ``P = e^{-rT}(K N(-d2) - F N(-d1))``; Black (1976),
    Hull, "Black's model". Parameters and return as :func:`bsm_price`, with ``F`` the
    forward price (dollars) in place of ``S`` and no dividend yield.
    """
    flat, shape = _prepare(F, K, T, r, 0.0, sigma, is_call=is_call, model=Model.BLACK76)
    return _price_kernel(*flat).reshape(shape)


def implied_vol(price, S, K, T, r, q, is_call, model="bsm", settings: GreeksSettings = GREEKS_DEFAULT):
    """Implied volatility of European option prices, with a status per option.

    Solver: reduce to the undiscounted out-of-the-money price (the time value, by put-call
    parity), then safeguarded Newton on ``ln(price)`` in total vol ``s = sigma sqrt(T)``
    with a bracket ``[min_vol, max_vol] x sqrt(T)`` updated at every step and geometric
    bisection whenever Newton leaves it (Press et al., *Numerical Recipes*, ``rtsafe``;
    log-price Newton as in Jäckel 2015). The result is accepted only if it reprices the
    time value to ``settings.reprice_rtol`` — otherwise ``NOT_CONVERGED``.

    Parameters
    ----------
    price : array_like of float64
        Option price, dollars per share (NaN or <= 0 -> ``NO_QUOTE``).
    S : array_like of float64
        Underlying: spot (``bsm``) or forward (``black76``), dollars.
    K, T, r, q : array_like of float64
        Strike (dollars), time to expiry (years), rate and dividend yield (decimal per
        year, continuous). ``q`` is ignored for ``black76``.
    is_call : array_like of bool
    model : str, Model, or array_like
        ``'bsm'`` / ``'black76'`` (or an array of names or :class:`Model` codes).
    settings : GreeksSettings

    Returns
    -------
    iv : numpy.ndarray of float64
        Annualised volatility (decimal), NaN unless status is ``OK``.
    status : numpy.ndarray of int8
        :class:`IVStatus` codes, same shape.

    Raises
    ------
    ValueError
        For an unknown model name or code.
    """
    flat, shape = _prepare(price, S, K, T, r, q, is_call=is_call, model=model)
    iv, status = _iv_kernel(
        *flat,
        float(settings.iv_tolerance),
        int(settings.max_iterations),
        float(settings.min_vol),
        float(settings.max_vol),
        float(settings.min_time_value),
        float(settings.intrinsic_tolerance),
        float(settings.reprice_rtol),
    )
    return iv.reshape(shape), status.reshape(shape)


def greeks(S, K, T, r, q, sigma, is_call, model="bsm", settings: GreeksSettings = GREEKS_DEFAULT):
    """Delta, gamma, theta, vega, rho of European options (Hull's closed forms).

    BSM (with dividend yield q), per share: ``delta = e^{-qT} N(d1)`` (call),
    ``-e^{-qT} N(-d1)`` (put); ``gamma = e^{-qT} phi(d1) / (S sigma sqrt(T))``;
    ``vega = S e^{-qT} phi(d1) sqrt(T)``; theta (call) ``= -S e^{-qT} phi(d1) sigma /
    (2 sqrt(T)) - r K e^{-rT} N(d2) + q S e^{-qT} N(d1)`` (put: signs of the last two
    terms flip, with N(-d2), N(-d1)); rho (call) ``= K T e^{-rT} N(d2)``, (put)
    ``-K T e^{-rT} N(-d2)``. Rho moves r with S and q fixed.

    Black-76 (``S`` is the forward ``F``): ``delta = e^{-rT} N(d1)`` / ``-e^{-rT} N(-d1)``
    **w.r.t. the forward**; ``gamma = e^{-rT} phi(d1) / (F sigma sqrt(T))``;
    ``vega = F e^{-rT} phi(d1) sqrt(T)``; ``theta = -F e^{-rT} phi(d1) sigma / (2 sqrt(T))
    + r V``; ``rho = -T V`` (F held fixed).

    Parameters
    ----------
    S, K, T, r, q, sigma, is_call, model :
        As :func:`implied_vol` (``sigma`` in place of ``price``).
    settings : GreeksSettings
        ``theta_days_per_year`` for theta per calendar day.

    Returns
    -------
    dict[str, numpy.ndarray of float64]
        ``delta`` (dollars per dollar of underlying), ``gamma`` (per dollar), ``theta``
        (dollars per calendar day: annual / 365), ``vega`` (dollars per vol point =
        0.01 sigma), ``rho`` (dollars per rate point = 0.01 r); per share, not
        multiplied by the contract multiplier. NaN where ``T <= 0``, ``sigma <= 0`` or
        inputs are invalid.

    Raises
    ------
    ValueError
        For an unknown model name or code.
    """
    flat, shape = _prepare(S, K, T, r, q, sigma, is_call=is_call, model=model)
    out = _greeks_kernel(*flat, float(settings.theta_days_per_year))
    return {name: a.reshape(shape) for name, a in zip(("delta", "gamma", "theta", "vega", "rho"), out)}


# --- polars level -----------------------------------------------------------------------------

GREEK_COLUMNS = ("delta", "gamma", "theta", "vega", "rho")


def add_time_to_expiry(
    frame: pl.DataFrame,
    *,
    ts_col: str = "ts_ns",
    expiry_col: str = "expiry_ts_ns",
    out_col: str = "t_years",
    sessions: SessionSettings = DEFAULT.sessions,
) -> pl.DataFrame:
    """Add ``out_col`` = time to expiry in years (Float64) from two int64 ns UTC columns,
    via :func:`m17_platform.calendar.time_to_expiry_years` (calendar days / ``year_days``)."""
    t = calendar.time_to_expiry_years(
        frame.get_column(ts_col).to_numpy().astype(np.int64),
        frame.get_column(expiry_col).to_numpy().astype(np.int64),
        sessions,
    )
    return frame.with_columns(pl.Series(out_col, np.asarray(t, dtype=np.float64)))


def _param(frame: pl.DataFrame, value: float | str, name: str) -> np.ndarray | float:
    if isinstance(value, str):
        if value not in frame.columns:
            raise ValueError(f"{name} column {value!r} not in frame")
        return frame.get_column(value).cast(pl.Float64).fill_null(np.nan).to_numpy()
    return float(value)


def compute_iv_greeks(
    frame: pl.DataFrame,
    *,
    price_col: str,
    underlying_col: str,
    strike_col: str = "strike",
    right_col: str = "right",
    t_col: str = "t_years",
    model: str = "bsm",
    model_col: str | None = None,
    rate: float | str = 0.0,
    dividend_yield: float | str = 0.0,
    settings: GreeksSettings = GREEKS_DEFAULT,
) -> pl.DataFrame:
    """Add ``iv``, ``iv_status``, ``delta``, ``gamma``, ``theta``, ``vega``, ``rho`` to ``frame``.

    Parameters
    ----------
    frame : polars.DataFrame
        One row per option observation.
    price_col : str
        Option price to invert (e.g. trade price or NBBO mid), dollars per share; null ->
        ``NO_QUOTE``.
    underlying_col : str
        Spot (``bsm``) or forward (``black76``) price, dollars.
    strike_col, right_col : str
        Strike (dollars) and right (``'C'`` / ``'P'``; anything else -> ValueError).
    t_col : str
        Time to expiry in years (see :func:`add_time_to_expiry`).
    model : {'bsm', 'black76'}
        Model for every row, unless ``model_col`` names a column of such names.
    rate, dividend_yield : float or str
        Continuous rate / yield (decimal per year), a constant or a column name.
    settings : GreeksSettings

    Returns
    -------
    polars.DataFrame
        ``frame`` plus ``iv`` (Float64, null unless OK), ``iv_status`` (String,
        :class:`IVStatus` name) and the greeks at ``iv`` (Float64, units as
        :func:`greeks`, null unless OK).

    Raises
    ------
    ValueError
        Missing column, unknown model, or a right other than C / P.
    """
    for col in (price_col, underlying_col, strike_col, right_col, t_col) + ((model_col,) if model_col else ()):
        if col not in frame.columns:
            raise ValueError(f"column {col!r} not in frame (columns: {frame.columns})")

    def f64(col: str) -> np.ndarray:
        return frame.get_column(col).cast(pl.Float64).fill_null(np.nan).to_numpy()

    right = frame.get_column(right_col)
    bad = right.is_null() | ~right.is_in(["C", "P"])
    if bad.any():
        raise ValueError(f"{right_col!r} must be 'C' or 'P'; found {right.filter(bad).unique().to_list()[:5]}")
    is_call = (right == "C").to_numpy()
    codes = _model_codes(frame.get_column(model_col).to_numpy() if model_col else model)
    r = _param(frame, rate, "rate")
    q = _param(frame, dividend_yield, "dividend_yield")
    S, K, T = f64(underlying_col), f64(strike_col), f64(t_col)
    iv, status = implied_vol(f64(price_col), S, K, T, r, q, is_call, codes, settings)
    g = greeks(S, K, T, r, q, iv, is_call, codes, settings)
    names = np.array([s.name for s in sorted(IVStatus)], dtype=object)
    cols = [pl.Series("iv", iv).fill_nan(None), pl.Series("iv_status", names[status], dtype=pl.String)]
    cols += [pl.Series(k, g[k]).fill_nan(None) for k in GREEK_COLUMNS]
    return frame.with_columns(cols)


def compare_to_vendor(
    frame: pl.DataFrame,
    *,
    vendor_prefix: str = "vendor_",
    columns: tuple[str, ...] = ("iv",) + GREEK_COLUMNS,
) -> dict[str, dict[str, float]]:
    """Median and 95th-percentile absolute differences between our and a vendor's values.

    Parameters
    ----------
    frame : polars.DataFrame
        Our columns (``iv``, ``delta``, ...) next to the vendor's, named
        ``vendor_prefix + column`` (e.g. ``vendor_delta``), in the same units.
    vendor_prefix : str
    columns : tuple of str
        Columns to compare; those missing on either side are skipped.

    Returns
    -------
    dict
        ``{column: {"n": rows with both values finite, "median_abs_diff": ...,
        "p95_abs_diff": ..., "max_abs_diff": ...}}``; NaN statistics when ``n == 0``.
    """
    out: dict[str, dict[str, float]] = {}
    for col in columns:
        vcol = vendor_prefix + col
        if col not in frame.columns or vcol not in frame.columns:
            continue
        diff = (frame.get_column(col).cast(pl.Float64) - frame.get_column(vcol).cast(pl.Float64)).abs()
        d = diff.fill_nan(None).drop_nulls().to_numpy()
        if d.size:
            stats = {"n": int(d.size), "median_abs_diff": float(np.median(d)),
                     "p95_abs_diff": float(np.quantile(d, 0.95)), "max_abs_diff": float(d.max())}
        else:
            stats = {"n": 0, "median_abs_diff": np.nan, "p95_abs_diff": np.nan, "max_abs_diff": np.nan}
        out[col] = stats
    return out


def parity_implied_rate(quotes: pl.DataFrame, settings=DEFAULT.rates, sessions: SessionSettings = DEFAULT.sessions):
    """The risk-free rate implied by put-call parity of European options' NBBO mids.

    For European options C - P = e^{-rT} (F - K) (Black 1976; with F the forward), so
    within one expiry and snapshot, a regression of (C_mid - P_mid) on K has slope
    -e^{-rT}: r = -ln(-slope) / T. This is the "box spread" rate the options market
    itself prices. Pairs are weighted by 1 / (call spread + put spread); the estimate is
    the median over (expiry, snapshot) groups with at least ``parity_min_pairs`` pairs
    and T >= ``parity_min_years``, used only when there are ``parity_min_groups`` such
    groups and it lies within ``parity_max_abs_rate``. Only valid for European exercise: pass quotes of
    European roots only.

    Parameters
    ----------
    quotes : polars.DataFrame
        option_quotes rows (ts_ns, expiration, strike, right, root, bid, ask).

    Returns
    -------
    (rate, groups) : tuple[float | None, int]
        Annualised continuously compounded rate (decimal) and how many groups it is the
        median of; ``(None, groups)`` when too few groups qualify or the median is
        implausible.
    """
    q = quotes.filter((pl.col("bid") > 0) & (pl.col("ask") >= pl.col("bid"))).with_columns(
        ((pl.col("bid") + pl.col("ask")) / 2).alias("mid"), (pl.col("ask") - pl.col("bid")).alias("spread")
    )
    calls = q.filter(pl.col("right") == "C").select("ts_ns", "root", "expiration", "strike", "mid", "spread")
    puts = q.filter(pl.col("right") == "P").select("ts_ns", "root", "expiration", "strike", "mid", "spread")
    pairs = calls.join(puts, on=["ts_ns", "root", "expiration", "strike"], suffix="_put")
    estimates = []
    for (expiration, ts), group in pairs.group_by(["expiration", "ts_ns"]):
        if group.height < settings.parity_min_pairs:
            continue
        t = calendar.time_to_expiry_years(ts, calendar.expiry_instant_ns(expiration, sessions), sessions)
        if t < settings.parity_min_years:
            continue
        k = group.get_column("strike").to_numpy()
        y = (group.get_column("mid") - group.get_column("mid_put")).to_numpy()
        w = 1.0 / np.maximum((group.get_column("spread") + group.get_column("spread_put")).to_numpy(), 1e-3)
        design = np.column_stack([np.ones_like(k), k]) * w[:, None]
        slope = np.linalg.lstsq(design, y * w, rcond=None)[0][1]
        if -1.0 < slope < 0.0:
            estimates.append(-math.log(-slope) / t)
    if len(estimates) < settings.parity_min_groups:
        return None, len(estimates)
    rate = float(np.median(estimates))
    if abs(rate) > settings.parity_max_abs_rate:
        return None, len(estimates)
    return rate, len(estimates)
