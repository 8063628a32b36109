"""Deterministic, seeded generator of a synthetic options day for the benchmarks.

:func:`generate_day` builds one regular session (2025-11-10, 09:30-16:00 ET) of SPY
option quotes and trades over a grid of contracts (expirations x strikes x right):

* activity is concentrated near the money and in the nearest expirations (weights
  ``exp(-|ln K/S| / width(T))``), split by a seeded multinomial;
* quote updates are clustered: 60 % of the gaps come from a burst regime (mean 0.2 %
  of the ordinary gap), timestamps are strictly increasing within a contract;
* quotes are on a one-cent grid, spreads of one to a few cents (wider for dearer
  options), with rare locked (0.05 %) and crossed (0.02 %) quotes and zero bids on
  the cheapest contracts;
* 10 % of the trades print at exactly a quote's timestamp (exercises the ``<=``
  edge); prices relative to the prevailing quote: 33 % at the ask, 33 % at the bid,
  22 % inside (a tick strictly inside, or the half-cent mid of a one-cent spread),
  12 % outside by one to three cents.

Both tables are sorted by ``(contract, ts_ns, sequence)``; ``sequence`` is the row
number. The instrument is given twice: ``contract`` (OCC-like string,
``O:SPY251110C00685000``) and ``contract_id`` (the same values dictionary-encoded as
a polars ``Enum`` whose categories are the sorted contract names, so the physical
code order equals the string order). Dtypes are tight: int64 ts / sequence, float64
prices, int32 sizes.

:func:`generate_options` builds the IV / greeks benchmark input: ``n`` European
options with T from 5 minutes to 60 days and BSM prices from known vols.
"""

from __future__ import annotations

import datetime as dt
import math

import numba
import numpy as np
import polars as pl

SIZES = {"small": (5_000_000, 200_000), "full": (50_000_000, 2_000_000)}
"""size name -> (quotes, trades)."""

N_CONTRACTS = 2_000
SEED = 20251110
TRADE_DATE = dt.date(2025, 11, 10)
SPOT = 680.0
_OPEN_NS = int(dt.datetime(2025, 11, 10, 14, 30, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000_000
_SESSION_NS = 390 * 60 * 1_000_000_000
_EXPIRIES = (
    dt.date(2025, 11, 10), dt.date(2025, 11, 11), dt.date(2025, 11, 12), dt.date(2025, 11, 14),
    dt.date(2025, 11, 21), dt.date(2025, 11, 28), dt.date(2025, 12, 19), dt.date(2026, 1, 16),
    dt.date(2026, 3, 20), dt.date(2026, 6, 18),
)


def contracts(n_contracts: int = N_CONTRACTS) -> pl.DataFrame:
    """The contract grid, sorted by OCC symbol.

    Returns
    -------
    polars.DataFrame
        ``contract`` (str), ``expiration`` (date), ``strike`` (float64 dollars),
        ``right`` ('C'/'P'), ``t_years`` (float64, from the open to 16:00 ET of expiry).
    """
    per_exp = n_contracts // len(_EXPIRIES)
    n_strikes = max(1, per_exp // 2)
    rows = []
    for exp in _EXPIRIES:
        for k in range(n_strikes):
            strike = SPOT - n_strikes // 2 + k
            for right in ("C", "P"):
                sym = f"O:SPY{exp:%y%m%d}{right}{int(round(strike * 1000)):08d}"
                rows.append((sym, exp, float(strike), right, ((exp - TRADE_DATE).days + 6.5 / 24) / 365.0))
    frame = pl.DataFrame(rows, schema=["contract", "expiration", "strike", "right", "t_years"], orient="row")
    return frame.sort("contract")


@numba.njit(cache=True)
def _generate(q_counts, t_counts, mid0, open_ns, session_ns, seed):
    np.random.seed(seed)
    nq = q_counts.sum()
    nt = t_counts.sum()
    q_ts = np.empty(nq, np.int64)
    bid = np.empty(nq, np.float64)
    ask = np.empty(nq, np.float64)
    bsz = np.empty(nq, np.int32)
    asz = np.empty(nq, np.int32)
    t_ts = np.empty(nt, np.int64)
    price = np.empty(nt, np.float64)
    tsz = np.empty(nt, np.int32)
    qo = 0
    to = 0
    for c in range(q_counts.shape[0]):
        m = q_counts[c]
        # clustered arrival times, rescaled into the session, strictly increasing
        cum = np.empty(m, np.float64)
        acc = 0.0
        for k in range(m):
            gap = np.random.exponential(0.002) if np.random.random() < 0.6 else np.random.exponential(1.0)
            acc += gap
            cum[k] = acc
        last = acc + np.random.exponential(1.0)
        prev = open_ns - 1
        for k in range(m):
            t = open_ns + np.int64(cum[k] / last * (session_ns - m - 1))
            if t <= prev:
                t = prev + 1
            q_ts[qo + k] = t
            prev = t
        # mid random walk on a cent grid with spreads of a few cents
        mid = mid0[c]
        for k in range(m):
            mid = max(0.01, mid * math.exp(np.random.normal(0.0, 0.002)))
            ticks = max(1, int(round(mid * 0.004 / 0.01))) + np.random.randint(0, 3)
            b = round((mid - 0.005 * ticks) * 100.0) / 100.0
            if b < 0.0:
                b = 0.0
            u = np.random.random()
            if u < 0.0002:
                a = round((b - 0.01) * 100.0) / 100.0  # crossed
            elif u < 0.0007:
                a = b  # locked
            else:
                a = round((b + 0.01 * ticks) * 100.0) / 100.0
            bid[qo + k] = b
            ask[qo + k] = a
            bsz[qo + k] = 1 + np.int32(np.random.exponential(50.0))
            asz[qo + k] = 1 + np.int32(np.random.exponential(50.0))
        # trades: 10 % at a quote's exact timestamp, the rest uniform in the session
        n = t_counts[c]
        tt = np.empty(n, np.int64)
        for k in range(n):
            if m > 0 and np.random.random() < 0.1:
                tt[k] = q_ts[qo + np.random.randint(0, m)]
            else:
                tt[k] = open_ns + np.int64(np.random.random() * session_ns)
        tt.sort()
        j = qo
        for k in range(n):
            t = tt[k]
            while j < qo + m and q_ts[j] <= t:
                j += 1
            t_ts[to + k] = t
            tsz[to + k] = 1 + np.int32(np.random.exponential(10.0))
            if j == qo:
                price[to + k] = max(0.01, round(mid0[c] * 100.0) / 100.0)
                continue
            b = bid[j - 1]
            a = ask[j - 1]
            u = np.random.random()
            if u < 0.33:
                p = a
            elif u < 0.66:
                p = b
            elif u < 0.88:
                inside = int(round((a - b) * 100.0)) - 1
                if inside >= 1:
                    p = round((b + 0.01 * (1 + np.random.randint(0, inside))) * 100.0) / 100.0
                else:
                    p = round((a + b) * 100.0) / 200.0
            elif u < 0.94:
                p = round((a + 0.01 * (1 + np.random.randint(0, 3))) * 100.0) / 100.0
            else:
                p = round((b - 0.01 * (1 + np.random.randint(0, 3))) * 100.0) / 100.0
            price[to + k] = max(0.01, p)
        qo += m
        to += n
    return q_ts, bid, ask, bsz, asz, t_ts, price, tsz


def generate_day(size: str = "full", *, n_quotes: int | None = None, n_trades: int | None = None,
                 n_contracts: int = N_CONTRACTS, seed: int = SEED) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One generated session of option quotes and trades.

    Parameters
    ----------
    size : {'small', 'full'}
        5M quotes / 200k trades, or 50M quotes / 2M trades (:data:`SIZES`).
    n_quotes, n_trades : int, optional
        Override the size's counts (tests use a tiny day).
    n_contracts : int
        Number of contracts (2,000).
    seed : int
        Seed; the same arguments give the same frames.

    Returns
    -------
    (trades, quotes) : tuple of polars.DataFrame
        trades: ``contract`` (str), ``contract_id`` (Enum), ``ts_ns`` (int64 ns UTC),
        ``sequence`` (int64), ``price`` (float64 $), ``size`` (int32).
        quotes: ``contract``, ``contract_id``, ``ts_ns``, ``sequence``, ``bid``,
        ``ask`` (float64 $), ``bid_size``, ``ask_size`` (int32). Both sorted by
        ``(contract, ts_ns, sequence)``.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    nq, nt = SIZES[size]
    nq = nq if n_quotes is None else n_quotes
    nt = nt if n_trades is None else n_trades
    grid = contracts(n_contracts)
    k = grid.get_column("strike").to_numpy()
    t = grid.get_column("t_years").to_numpy()
    call = (grid.get_column("right") == "C").to_numpy()
    width = 0.01 + 0.05 * np.sqrt(t)
    w = np.exp(-np.abs(np.log(k / SPOT)) / width) / (1.0 + 20.0 * t)
    w /= w.sum()
    rng = np.random.default_rng(seed)
    q_counts = rng.multinomial(nq, w).astype(np.int64)
    t_counts = rng.multinomial(nt, w).astype(np.int64)
    vol_t = 0.15 * np.sqrt(t)
    intrinsic = np.where(call, np.maximum(SPOT - k, 0.0), np.maximum(k - SPOT, 0.0))
    mid0 = intrinsic + SPOT * vol_t * 0.4 * np.exp(-0.5 * (np.log(k / SPOT) / vol_t) ** 2) + 0.02
    q_ts, bid, ask, bsz, asz, t_ts, price, tsz = _generate(
        q_counts, t_counts, mid0.astype(np.float64), _OPEN_NS, _SESSION_NS, seed % (2**31)
    )
    names = grid.get_column("contract")
    enum = pl.Enum(names.to_list())
    cat_series = names.cast(enum)

    def instrument(counts: np.ndarray) -> tuple[pl.Series, pl.Series]:
        codes = pl.Series(np.repeat(np.arange(len(counts), dtype=np.uint32), counts))
        return names.gather(codes).alias("contract"), cat_series.gather(codes).alias("contract_id")

    qs, qc = instrument(q_counts)
    quotes = pl.DataFrame([
        qs, qc,
        pl.Series("ts_ns", q_ts), pl.Series("sequence", np.arange(nq, dtype=np.int64)),
        pl.Series("bid", bid), pl.Series("ask", ask),
        pl.Series("bid_size", bsz), pl.Series("ask_size", asz),
    ])
    ts_, tc = instrument(t_counts)
    trades = pl.DataFrame([
        ts_, tc,
        pl.Series("ts_ns", t_ts), pl.Series("sequence", np.arange(nt, dtype=np.int64)),
        pl.Series("price", price), pl.Series("size", tsz),
    ])
    return trades, quotes


def generate_options(n: int, *, seed: int = SEED) -> pl.DataFrame:
    """``n`` European options on one underlying with known vols and their BSM prices.

    T is log-uniform from 5 minutes to 60 days (ACT/365); strikes put |ln K/S| up to
    3 standard deviations of the terminal log price; vols 8 %-120 %; r = 4.5 %,
    q = 1.3 %; calls and puts alike.

    Returns
    -------
    polars.DataFrame
        ``S``, ``K``, ``T`` (years), ``r``, ``q``, ``sigma`` (true vol), ``is_call``
        (bool), ``price`` (float64, BSM price at ``sigma`` from
        :func:`m17_platform.greeks.bsm_price`).
    """
    from m17_platform.greeks import bsm_price

    rng = np.random.default_rng(seed)
    year = 365.0 * 24 * 60
    T = np.exp(rng.uniform(np.log(5.0 / year), np.log(60.0 * 24 * 60 / year), n))
    sigma = rng.uniform(0.08, 1.2, n)
    S = np.full(n, SPOT)
    K = np.round(S * np.exp(rng.uniform(-3.0, 3.0, n) * sigma * np.sqrt(T)), 2)
    r = np.full(n, 0.045)
    q = np.full(n, 0.013)
    is_call = rng.random(n) < 0.5
    price = bsm_price(S, K, T, r, q, sigma, is_call)
    return pl.DataFrame({"S": S, "K": K, "T": T, "r": r, "q": q, "sigma": sigma, "is_call": is_call, "price": price})
