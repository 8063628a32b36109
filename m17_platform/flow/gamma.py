"""Dealer gamma exposure per strike and in total, over the day, without look-ahead.

Dealer position
---------------
* ``customer_flow``: the dealer takes the other side of every aggressor, so its
  position in a contract is ``-sum(side x size)`` (contracts) over the prints strictly
  before the instant (side +1 buy, -1 sell, 0 unknown: unknown-side prints move nothing).
* ``open_interest``: the latest open interest at or before the instant (vendor
  snapshots, ``option_vendor_greeks``), signed by ``GammaSettings.oi_call_sign`` /
  ``oi_put_sign`` (by default dealers long calls, short puts: SqueezeMetrics, "Gauging
  GEX", 2017). Open interest cannot tell who holds the contracts; this is a convention.

Gamma of the position
---------------------
The issue's formula sums each print's gamma at its own time, ``-side x size x gamma x
multiplier``. A position's gamma moves with the underlying and with time to expiry (an
at-the-money 0DTE option's gamma at 15:30 is several times its 10:00 value), so the sum
of gammas at trade time is not the dealer's gamma later in the day. The sound measure,
used here, re-prices the accumulated position at each instant ``t``:

    dealer gamma(t) = sum over contracts of position(t) x multiplier x Gamma(U(t), K, T(t), sigma(t))

in shares per $1 of the underlying, where U is the latest underlying price known before
``t`` (spot for Black-Scholes-Merton roots, the expiration's forward for Black-76 roots,
as :mod:`m17_platform.enrichment` priced them), T the time to the expiry instant, sigma
the contract's latest implied volatility before ``t`` (the one its greeks used), and
Gamma the closed form of :func:`m17_platform.greeks.greeks`. Gamma exposure (GEX) is the
same in dollars per 1% move: ``x U^2 x gamma_move``.

Walls and flip
--------------
* call wall / put wall: the strike with the largest |call GEX| / |put GEX| at ``t``
  (SpotGamma's terms; magnitude, because customer flow can leave dealers long or short).
* gamma flip: the underlying level where the dealers' total gamma changes sign. The
  total is re-priced over underlying levels ``U x m``, ``m`` on
  ``GammaSettings.flip_grid_points`` points within ``+/- flip_range_pct`` (every
  expiration's price moved by the same factor), the zero crossing nearest ``m = 1`` is
  interpolated linearly, and the flip is reported as ``m x`` the reference price (the
  front expiration's U at ``t``). This is the "zero gamma level" of the GEX literature
  (e.g. SqueezeMetrics 2017; Perfiliev, "How to calculate gamma exposure and zero gamma
  level", 2021); the cruder "cumulative per-strike GEX changes sign" reading holds spot
  fixed and is not used. Null when the total does not change sign on the grid.

Every value at ``t`` uses only prints before ``t`` (customer flow) or snapshots at or
before ``t`` (open interest): the as-of joins never look ahead.
"""

from __future__ import annotations

import datetime as dt
import math

import numba
import numpy as np
import polars as pl

from m17_platform import calendar
from m17_platform.calendar import NS_PER_SECOND
from m17_platform.ordered import group_sums, run_starts, run_sums
from m17_platform.schemas import GAMMA_EXPOSURE
from m17_platform.settings import DEFAULT, Settings

CUSTOMER_FLOW = "customer_flow"
OPEN_INTEREST = "open_interest"

PANEL_COLUMNS = ("ts_ns", "option_symbol", "expiration", "strike", "right", "multiplier", "position",
                 "u", "sigma", "t_years", "rate", "dividend_yield", "model")
"""Columns of a position panel: one row per (instant, contract with a position)."""

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@numba.njit(cache=True, inline="always")
def _gamma_one(u, k, t, r, q, sigma, b76):
    if not (u > 0.0 and k > 0.0 and t > 0.0 and sigma > 0.0):
        return 0.0
    st = sigma * math.sqrt(t)
    if b76:
        d1 = (math.log(u / k) + 0.5 * sigma * sigma * t) / st
        disc = math.exp(-r * t)
    else:
        d1 = (math.log(u / k) + (r - q + 0.5 * sigma * sigma) * t) / st
        disc = math.exp(-q * t)
    return disc * math.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI / (u * st)


@numba.njit(cache=True)
def _gamma_kernel(u, k, t, r, q, sigma, b76):
    n = u.shape[0]
    out = np.empty(n)
    for i in range(n):
        out[i] = _gamma_one(u[i], k[i], t[i], r[i], q[i], sigma[i], b76[i])
    return out


def position_gamma(u, k, t, r, q, sigma, black76) -> np.ndarray:
    """Gamma per share (per $1 of the underlying, per $1) of European options.

    Black-Scholes-Merton ``e^{-qT} phi(d1) / (S sigma sqrt(T))`` or, where ``black76``,
    Black-76 ``e^{-rT} phi(d1) / (F sigma sqrt(T))`` (Hull; the same closed forms as
    :func:`m17_platform.greeks.greeks`). Zero where an input is missing or not positive
    (an expired contract has no gamma).

    Parameters
    ----------
    u, k, t, r, q, sigma : array-like of float64, shape (n,)
        Underlying (spot or forward, dollars), strike (dollars), years to expiry, rate
        and dividend yield (annualised continuous decimals), volatility (annualised decimal).
    black76 : array-like of bool, shape (n,)

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
    """
    arrays = [np.ascontiguousarray(np.nan_to_num(np.asarray(a, dtype=np.float64), nan=0.0)) for a in (u, k, t, r, q, sigma)]
    return _gamma_kernel(*arrays, np.ascontiguousarray(np.asarray(black76, dtype=np.bool_)))


@numba.njit(cache=True)
def _profile_kernel(offsets, qty, u, k, t, r, q, sigma, b76, m, move):
    # total GEX of each instant's rows at underlying levels u x m[j]: the closed form of
    # _gamma_one with d1 shifted by ln(m[j]) / (sigma sqrt(t)), per row terms hoisted
    g = offsets.shape[0] - 1
    p = m.shape[0]
    out = np.zeros((g, p))
    log_m = np.log(m)
    for i in range(g):
        for row in range(offsets[i], offsets[i + 1]):
            uu, kk, tt, ss = u[row], k[row], t[row], sigma[row]
            if qty[row] == 0.0 or not (uu > 0.0 and kk > 0.0 and tt > 0.0 and ss > 0.0):
                continue
            st = ss * math.sqrt(tt)
            if b76[row]:
                base = (math.log(uu / kk) + 0.5 * ss * ss * tt) / st
                disc = math.exp(-r[row] * tt)
            else:
                base = (math.log(uu / kk) + (r[row] - q[row] + 0.5 * ss * ss) * tt) / st
                disc = math.exp(-q[row] * tt)
            # qty x gamma(u m) x (u m)^2 x move = qty x disc phi(d1) / (u m st) x (u m)^2 x move
            scale = qty[row] * disc * _INV_SQRT_2PI * uu * move / st
            for j in range(p):
                d1 = base + log_m[j] / st
                out[i, j] += scale * m[j] * math.exp(-0.5 * d1 * d1)
    return out


def gamma_flip(levels: np.ndarray, total: np.ndarray, reference: float) -> float | None:
    """The level where ``total`` changes sign, nearest ``reference``, by linear interpolation.

    Parameters
    ----------
    levels : float64 (p,)
        Increasing underlying levels (dollars).
    total : float64 (p,)
        Total dealer gamma exposure at each level (any unit).
    reference : float
        Current level (dollars): of several crossings, the nearest to it is returned.

    Returns
    -------
    float or None
        The zero crossing (dollars): a level where ``total`` is exactly zero between
        nonzero neighbours of opposite sign, or the linear interpolation between two
        consecutive levels of opposite sign; ``None`` if the sign never changes.

    Raises
    ------
    ValueError
        If the arrays differ in length or ``levels`` is not increasing.
    """
    levels = np.asarray(levels, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    if levels.shape != total.shape:
        raise ValueError(f"levels and total differ in shape: {levels.shape} vs {total.shape}")
    if levels.size > 1 and np.any(np.diff(levels) <= 0):
        raise ValueError("levels must be strictly increasing")
    sign = np.sign(total)
    nz = np.flatnonzero(sign != 0)
    crossings = []
    for a, b in zip(nz[:-1], nz[1:]):
        if sign[a] == sign[b]:
            continue
        if b - a > 1:  # exact zeros in between: the middle one
            crossings.append(float(levels[(a + b) // 2]) if (b - a) % 2 == 0 else
                             float((levels[(a + b) // 2] + levels[(a + b) // 2 + 1]) / 2))
        else:
            x0, x1, y0, y1 = levels[a], levels[b], total[a], total[b]
            crossings.append(float(x0 - y0 * (x1 - x0) / (y1 - y0)))
    if not crossings:
        return None
    return min(crossings, key=lambda x: abs(x - reference))


def _with_time_to_expiry(panel: pl.DataFrame, contracts: pl.DataFrame | None, settings: Settings) -> pl.DataFrame:
    """Set ``t_years`` from each row's instant to its contract's expiry instant
    (``option_contracts.expiry_ts_ns``, else the session close of the expiration)."""
    if panel.height == 0:
        return panel.with_columns(pl.lit(None, dtype=pl.Float64).alias("t_years"))
    fallback = {d: calendar.expiry_instant_ns(d, settings.sessions)
                for d in panel.get_column("expiration").unique().drop_nulls().to_list()}
    expiry = pl.col("expiration").replace_strict(fallback, default=None, return_dtype=pl.Int64)
    if contracts is not None and contracts.height:
        known = contracts.select("option_symbol", pl.col("expiry_ts_ns").alias("_expiry")).unique(
            "option_symbol", keep="first")
        panel = panel.join(known, on="option_symbol", how="left", maintain_order="left")
        expiry = pl.coalesce(pl.col("_expiry"), expiry)
    year_ns = settings.sessions.year_days * calendar.NS_PER_DAY
    panel = panel.with_columns(((expiry - pl.col("ts_ns")) / year_ns).alias("t_years"))
    return panel.drop("_expiry") if "_expiry" in panel.columns else panel


def flow_grid(trade_date: dt.date, underlying: str, last_ts_ns: int | None, settings: Settings = DEFAULT) -> np.ndarray:
    """Instants of the customer-flow series: the option session open plus 1, 2, ... x
    ``GammaSettings.interval_seconds``, through the first instant at or after both the
    close (late close for roots that have one) and the last print.

    Returns
    -------
    numpy.ndarray of int64 (ns since epoch UTC)

    Raises
    ------
    CalendarError
        If ``trade_date`` is not a session.
    ValueError
        If ``interval_seconds`` is not positive.
    """
    if settings.gamma.interval_seconds <= 0:
        raise ValueError(f"GammaSettings.interval_seconds must be > 0, got {settings.gamma.interval_seconds}")
    open_ns, close_ns = calendar.session_window_ns("option", trade_date, root=underlying, settings=settings.sessions)
    step = int(settings.gamma.interval_seconds) * NS_PER_SECOND
    end = close_ns if last_ts_ns is None else max(close_ns, last_ts_ns + 1)
    count = max(1, -(-(end - open_ns) // step))
    return open_ns + step * np.arange(1, count + 1, dtype=np.int64)


def _last_per(frame: pl.DataFrame, keys: list[str], value: str) -> pl.DataFrame:
    """Last non-null ``value`` per (keys, ts_ns), sorted by ts_ns: the right side of an as-of join."""
    return (
        frame.filter(pl.col(value).is_not_null())
        .group_by([*keys, "ts_ns"], maintain_order=True).agg(pl.col(value).last())
        .sort("ts_ns")
    )


def _asof(left: pl.DataFrame, right: pl.DataFrame, by: str, *, strict: bool) -> pl.DataFrame:
    return left.join_asof(right, on="ts_ns", by=by, strategy="backward", allow_exact_matches=not strict,
                          check_sortedness=False)


def _pricing_key(model: pl.Expr) -> pl.Expr:
    """Contracts priced off the same underlying price: one spot for BSM, one forward per
    expiration for Black-76."""
    return pl.when(model == "black76").then(pl.col("expiration").cast(pl.String)).otherwise(pl.lit("spot")).alias("_ukey")


def customer_flow_panel(prints: pl.DataFrame, grid: np.ndarray, contracts: pl.DataFrame | None = None,
                        settings: Settings = DEFAULT) -> pl.DataFrame:
    """Dealer positions from customer flow at each grid instant, with pricing inputs.

    Parameters
    ----------
    prints : polars.DataFrame
        :func:`.prints.option_flow_prints` output (``sign``, ``size``, ``multiplier``,
        ``iv``, ``underlying_price``, ``model``, ``rate``, ``dividend_yield``).
    grid : int64 array
        Instants (ns since epoch UTC, increasing).
    contracts : polars.DataFrame, optional
        ``option_contracts`` rows, for the expiry instants.

    Returns
    -------
    polars.DataFrame
        :data:`PANEL_COLUMNS`: one row per (instant, contract) with a nonzero position
        from prints strictly before the instant; ``u``, ``sigma`` are the latest known
        strictly before it (null when none yet).
    """
    if prints.height == 0 or grid.size == 0:
        return pl.DataFrame(schema={c: pl.Float64 for c in PANEL_COLUMNS}).with_columns(
            pl.col("ts_ns").cast(pl.Int64), pl.col("option_symbol").cast(pl.String), pl.col("expiration").cast(pl.Date),
            pl.col("right").cast(pl.String), pl.col("multiplier").cast(pl.Int64), pl.col("model").cast(pl.String))
    p = prints.sort(["option_symbol", "ts_ns", "sequence"]).with_columns(
        (-pl.col("sign").cast(pl.Int64) * pl.col("size")).cum_sum().over("option_symbol").alias("position"),
        _pricing_key(pl.col("model")),
    )
    info = p.group_by("option_symbol", maintain_order=True).agg(
        *[pl.col(c).first() for c in ("expiration", "strike", "right", "multiplier", "model", "_ukey")],
        pl.col("rate").drop_nulls().first(), pl.col("dividend_yield").drop_nulls().first(),
        pl.col("ts_ns").min().alias("_first"),
    )
    left = pl.DataFrame({"ts_ns": grid}).join(info, how="cross").filter(pl.col("_first") < pl.col("ts_ns"))
    left = left.sort("ts_ns")
    left = _asof(left, _last_per(p, ["option_symbol"], "position"), "option_symbol", strict=True)
    left = left.filter(pl.col("position").fill_null(0) != 0)
    left = _asof(left, _last_per(p, ["option_symbol"], "iv").rename({"iv": "sigma"}), "option_symbol", strict=True)
    left = _asof(left, _last_per(p, ["_ukey"], "underlying_price").rename({"underlying_price": "u"}), "_ukey", strict=True)
    left = _with_time_to_expiry(left, contracts, settings)
    return left.select(PANEL_COLUMNS).with_columns(pl.col("position").cast(pl.Float64))


def open_interest_panel(vendor: pl.DataFrame, quote_greeks: pl.DataFrame, trade_date: dt.date, underlying: str,
                        contracts: pl.DataFrame | None = None, settings: Settings = DEFAULT) -> pl.DataFrame:
    """Dealer positions from open interest at each vendor snapshot, with pricing inputs.

    Parameters
    ----------
    vendor : polars.DataFrame
        ``option_vendor_greeks`` rows (``open_interest``, ``implied_volatility``,
        ``underlying_price``).
    quote_greeks : polars.DataFrame
        ``option_quote_greeks`` rows: the platform's IV, underlying price (forward for
        Black-76 roots), model, rate and dividend yield at the same quotes; the vendor's
        IV and underlying price fill in where they are null.
    contracts : polars.DataFrame, optional
        ``option_contracts`` rows (multiplier, expiry instant).

    trade_date, underlying : the partition (for the instants, :func:`flow_grid`).

    Returns
    -------
    polars.DataFrame
        :data:`PANEL_COLUMNS` at every instant of the customer-flow grid that follows a
        snapshot (a snapshot at ``s`` is first used at the first grid instant at or after
        ``s``), from the latest snapshot of each contract at or before the instant;
        positions ``oi_call_sign`` / ``oi_put_sign`` x open interest.
    """
    g = settings.gamma
    rows = vendor.filter(pl.col("open_interest").is_not_null())
    if rows.height == 0:
        return customer_flow_panel(pl.DataFrame(), np.empty(0, dtype=np.int64), None, settings)
    ours = quote_greeks.select(
        "option_symbol", "ts_ns", pl.col("iv").alias("_iv"), pl.col("underlying_price").alias("_u"), "model", "rate",
        "dividend_yield",
    ).unique(["option_symbol", "ts_ns"], keep="last") if quote_greeks.height else None
    if ours is not None:
        rows = rows.join(ours, on=["option_symbol", "ts_ns"], how="left", maintain_order="left")
    else:
        rows = rows.with_columns(pl.lit(None, dtype=pl.Float64).alias("_iv"), pl.lit(None, dtype=pl.Float64).alias("_u"),
                                 pl.lit(None, dtype=pl.String).alias("model"), pl.lit(None, dtype=pl.Float64).alias("rate"),
                                 pl.lit(None, dtype=pl.Float64).alias("dividend_yield"))
    forward = pl.col("root").is_in(list(settings.universe.forward_roots))
    rows = rows.with_columns(
        pl.coalesce("_iv", "implied_volatility").alias("sigma"),
        pl.coalesce("_u", "underlying_price").alias("u"),
        pl.coalesce(pl.col("model"), pl.when(forward).then(pl.lit("black76")).otherwise(pl.lit("bsm"))).alias("model"),
        pl.col("rate").fill_null(settings.rates.risk_free_rate),
        pl.col("dividend_yield").fill_null(0.0),
        (pl.col("open_interest").cast(pl.Float64)
         * pl.when(pl.col("right") == "C").then(pl.lit(g.oi_call_sign)).otherwise(pl.lit(g.oi_put_sign))).alias("position"),
    )
    if contracts is not None and contracts.height:
        mult = contracts.select("option_symbol", "multiplier").unique("option_symbol", keep="first")
        rows = rows.join(mult, on="option_symbol", how="left", maintain_order="left")
    else:
        rows = rows.with_columns(pl.lit(None, dtype=pl.Int64).alias("multiplier"))
    rows = rows.with_columns(pl.col("multiplier").fill_null(settings.universe.default_multiplier)).sort(
        "ts_ns", maintain_order=True)
    grid = flow_grid(trade_date, underlying, int(rows.get_column("ts_ns").max()), settings)
    step = int(settings.gamma.interval_seconds) * NS_PER_SECOND
    first_k = ((rows.get_column("ts_ns") - int(grid[0]) + step - 1) // step).clip(0, None)  # ceil to the grid
    snaps = pl.DataFrame({"ts_ns": int(grid[0]) + step * first_k.unique().sort().to_numpy()})
    info = rows.group_by("option_symbol").agg(
        *[pl.col(c).first() for c in ("expiration", "strike", "right", "multiplier")], pl.col("ts_ns").min().alias("_first"),
    )
    left = snaps.join(info, how="cross").filter(pl.col("_first") <= pl.col("ts_ns")).sort("ts_ns")
    values = rows.select("option_symbol", "ts_ns", "position", "u", "sigma", "rate", "dividend_yield", "model")
    values = values.unique(["option_symbol", "ts_ns"], keep="last", maintain_order=True).sort("ts_ns")
    left = _asof(left, values, "option_symbol", strict=False).filter(pl.col("position").fill_null(0) != 0)
    left = _with_time_to_expiry(left, contracts, settings)
    return left.select(PANEL_COLUMNS)


def exposure(panel: pl.DataFrame, underlying: str, source: str, settings: Settings = DEFAULT) -> pl.DataFrame:
    """The ``gamma_exposure`` rows of one source from a position panel.

    Parameters
    ----------
    panel : polars.DataFrame
        :data:`PANEL_COLUMNS` (:func:`customer_flow_panel` / :func:`open_interest_panel`).
    underlying : str
        The partition's underlying.
    source : {'customer_flow', 'open_interest'}

    Returns
    -------
    polars.DataFrame
        Columns of :data:`m17_platform.schemas.GAMMA_EXPOSURE`: per instant, one
        ``strike`` row per strike with a position and one ``total`` row with the walls
        and the flip (see the module docstring); zero rows for an empty panel.
    """
    if panel.height == 0:
        return pl.from_arrow(GAMMA_EXPOSURE.schema.empty_table())
    g = settings.gamma
    move = settings.flow.gamma_move
    # one row per (instant, contract): a total order, so every sum below adds in the same order
    panel = panel.sort(["ts_ns", "expiration", "strike", "right", "option_symbol"], nulls_last=True).with_columns(
        pl.col("sigma").fill_nan(None), pl.col("u").fill_nan(None))
    arrays = {c: panel.get_column(c).cast(pl.Float64).fill_null(0.0).to_numpy() for c in
              ("u", "strike", "t_years", "rate", "dividend_yield", "sigma")}
    b76 = (panel.get_column("model") == "black76").fill_null(False).to_numpy()
    gamma = position_gamma(arrays["u"], arrays["strike"], arrays["t_years"], arrays["rate"], arrays["dividend_yield"],
                           arrays["sigma"], b76)
    qty = (panel.get_column("position") * panel.get_column("multiplier")).cast(pl.Float64).to_numpy()
    panel = panel.with_columns(  # + 0.0 turns the -0.0 of a short position without gamma into 0.0
        pl.Series("_gamma", qty * gamma + 0.0),
        pl.Series("_gex", qty * gamma * arrays["u"] ** 2 * move + 0.0),
    )
    call = pl.col("right") == "C"
    split = panel.with_columns(
        *[pl.when(side).then(pl.col(f"_{v}")).otherwise(0.0).alias(f"{name}_{v}")
          for name, side in (("call", call), ("put", ~call)) for v in ("gamma", "gex")],
    )
    # sums in a fixed order, the same bits on every run (m17_platform.ordered): a strike adds
    # its contracts by expiration, right and symbol, an instant its strikes by strike
    per_strike = group_sums(split, ["ts_ns", "strike"], ["call_gamma", "put_gamma", "call_gex", "put_gex", "position"],
                            order=["expiration", "right", "option_symbol"]).with_columns(
        pl.col("position").round(0).cast(pl.Int64).alias("dealer_position"),
        (pl.col("call_gamma") + pl.col("put_gamma")).alias("net_gamma"),
        (pl.col("call_gex") + pl.col("put_gex")).alias("net_gex"),
    ).drop("position")
    reference = panel.filter(pl.col("u").is_not_null()).group_by("ts_ns", maintain_order=True).agg(
        pl.col("u").first().alias("underlying_price"))  # rows sorted by expiration: the front's price
    per_strike = per_strike.join(reference, on="ts_ns", how="left").sort(["ts_ns", "strike"])

    def wall(col: str) -> pl.Expr:
        # of strikes with equally large exposure, the lowest (a stable sort of rows sorted by strike)
        best = pl.col("strike").sort_by(pl.col(col).abs(), descending=True, maintain_order=True).first()
        return pl.when(pl.col(col).abs().max() > 0).then(best).alias(col.replace("_gex", "_wall"))

    totals = per_strike.group_by("ts_ns", maintain_order=True).agg(
        pl.col("dealer_position").sum(), pl.col("underlying_price").first(), wall("call_gex"), wall("put_gex"),
    )
    sums = ("call_gamma", "put_gamma", "net_gamma", "call_gex", "put_gex", "net_gex")
    totals = pl.concat([totals, run_sums(per_strike, run_starts(per_strike, ["ts_ns"]), sums)], how="horizontal")
    # the flip: re-price every instant's positions over a grid of underlying levels
    times = panel.get_column("ts_ns").to_numpy()
    starts = np.flatnonzero(np.r_[True, times[1:] != times[:-1]])
    offsets = np.r_[starts, times.size].astype(np.int64)
    m = 1.0 + g.flip_range_pct * np.linspace(-1.0, 1.0, max(int(g.flip_grid_points), 3))
    profile = _profile_kernel(offsets, qty, arrays["u"], arrays["strike"], arrays["t_years"], arrays["rate"],
                              arrays["dividend_yield"], arrays["sigma"], b76, m, move)
    ref = dict(zip(reference.get_column("ts_ns").to_list(), reference.get_column("underlying_price").to_list()))
    flips = []
    for i, start in enumerate(starts):
        s = ref.get(int(times[start]))
        found = gamma_flip(m, profile[i], 1.0) if s is not None else None
        flips.append(None if found is None else found * s)
    totals = totals.join(pl.DataFrame({"ts_ns": times[starts], "gamma_flip": pl.Series(flips, dtype=pl.Float64)}),
                         on="ts_ns", how="left")
    common = [pl.lit(underlying).alias("underlying"), pl.lit(source).alias("source")]
    strikes = per_strike.with_columns(
        *common, pl.lit("strike").alias("grain"),
        *[pl.lit(None, dtype=pl.Float64).alias(c) for c in ("call_wall", "put_wall", "gamma_flip")],
    ).select(GAMMA_EXPOSURE.columns)
    total = totals.with_columns(*common, pl.lit("total").alias("grain"), pl.lit(None, dtype=pl.Float64).alias("strike"))
    return pl.concat([strikes, total.select(GAMMA_EXPOSURE.columns)], how="vertical_relaxed")


def gamma_exposure(
    prints: pl.DataFrame,
    trade_date: dt.date,
    underlying: str,
    *,
    vendor: pl.DataFrame | None = None,
    quote_greeks: pl.DataFrame | None = None,
    contracts: pl.DataFrame | None = None,
    settings: Settings = DEFAULT,
) -> pl.DataFrame:
    """The ``gamma_exposure`` rows of a partition: customer flow and, where the source
    has open interest, open interest.

    Parameters
    ----------
    prints : polars.DataFrame
        :func:`.prints.option_flow_prints` output.
    trade_date : datetime.date
    underlying : str
    vendor, quote_greeks, contracts : polars.DataFrame, optional
        ``option_vendor_greeks``, ``option_quote_greeks``, ``option_contracts``.

    Returns
    -------
    polars.DataFrame
        Columns of :data:`m17_platform.schemas.GAMMA_EXPOSURE`.

    Raises
    ------
    CalendarError
        If ``trade_date`` is not a session (customer-flow grid).
    """
    parts = []
    if prints.height:
        grid = flow_grid(trade_date, underlying, int(prints.get_column("ts_ns").max()), settings)
        parts.append(exposure(customer_flow_panel(prints, grid, contracts, settings), underlying, CUSTOMER_FLOW, settings))
    if vendor is not None and vendor.height:
        qg = quote_greeks if quote_greeks is not None else pl.DataFrame()
        panel = open_interest_panel(vendor, qg, trade_date, underlying, contracts, settings)
        parts.append(exposure(panel, underlying, OPEN_INTEREST, settings))
    if not parts:
        return pl.from_arrow(GAMMA_EXPOSURE.schema.empty_table())
    return pl.concat(parts, how="vertical_relaxed")
