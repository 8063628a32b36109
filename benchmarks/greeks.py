"""Benchmark: implied volatility + greeks, ours vs py_vollib_vectorized.

Input (:func:`benchmarks.data.generate_options`): ``n`` European options on one
underlying (S = 680, r = 4.5 %, q = 1.3 %), T log-uniform from 5 minutes to 60 days,
vols 8-120 %, strikes up to 3 standard deviations from the money, calls and puts;
prices are BSM prices at the known vol. Both engines get the same float64 NumPy arrays
(the layout both are best at).

* ``ours``: :func:`m17_platform.greeks.implied_vol` then :func:`m17_platform.greeks.greeks`
  at the solved vol (numba; status per row).
* ``py_vollib_vectorized``: ``vectorized_implied_volatility(model="black_scholes_merton",
  return_as="numpy")`` then its ``delta``, ``gamma``, ``vega``, ``theta``, ``rho``
  (``return_as="numpy"``) at its vol.

Timing: one warm-up run (numba compilation), then the best of ``repeats``, wall clock.

Correctness, same run. A row is *well-conditioned* when the out-of-the-money time value
is at least $0.01 and the strike is within 2 standard deviations (|ln(F/K)| <= 2 sigma
sqrt(T)): there a price rounding error of one ulp moves the vol by far less than 1e-10.
On those rows we report max |iv - sigma_true| for both engines and max |ours - peer|
for iv, delta, gamma, vega (theta and rho follow different conventions in py_vollib:
reported but not required to agree). On the other rows (*ill-conditioned*: the price
carries too little time value to pin the vol) the prices are rounded to the cent, as
quotes are, and solved again outside the timing: a "silent wrong answer" is a vol
returned without a failure status that does not reprice the rounded input (relative
error above 1e-6), e.g. a vol for a price below intrinsic.
"""

from __future__ import annotations

import gc
import os
import resource
import time
import warnings

import numba
import numpy as np

from benchmarks.cli import bench_main
from benchmarks.data import generate_options
from m17_platform.greeks import IVStatus, bsm_price, greeks, implied_vol

SIZES = {"small": 100_000, "full": 1_000_000}
REPEATS = 3
TARGET = 2.5
IV_TOLERANCE = 1e-10
WRONG_TOLERANCE = 1e-6
GREEKS = ("delta", "gamma", "vega", "theta", "rho")


def _inputs(n: int) -> dict[str, np.ndarray]:
    frame = generate_options(n)
    return {c: frame.get_column(c).to_numpy() for c in frame.columns}


def _ours(x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    iv, status = implied_vol(x["price"], x["S"], x["K"], x["T"], x["r"], x["q"], x["is_call"])
    g = greeks(x["S"], x["K"], x["T"], x["r"], x["q"], iv, x["is_call"])
    return {"iv": iv, "status": status, **g}


def _peer(x: dict[str, np.ndarray], flag: np.ndarray) -> dict[str, np.ndarray]:
    import py_vollib_vectorized as pv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns per batch of rows it cannot solve
        iv = pv.vectorized_implied_volatility(
            x["price"], x["S"], x["K"], x["T"], x["r"], flag, q=x["q"],
            model="black_scholes_merton", return_as="numpy", on_error="ignore",
        )
        iv = np.asarray(iv, dtype=np.float64).ravel()
        out = {"iv": iv}
        for name in GREEKS:
            fn = getattr(pv, f"vectorized_{name}")
            out[name] = np.asarray(
                fn(flag, x["S"], x["K"], x["T"], x["r"], iv, q=x["q"], model="black_scholes_merton", return_as="numpy"),
                dtype=np.float64,
            ).ravel()
    return out


def _best_of(fn, repeats: int):
    out = fn()
    times = []
    for _ in range(repeats):
        del out
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, out


def well_conditioned(x: dict[str, np.ndarray]) -> np.ndarray:
    """Rows whose price pins the vol (see the module docstring)."""
    F = x["S"] * np.exp((x["r"] - x["q"]) * x["T"])
    D = np.exp(-x["r"] * x["T"])
    und = x["price"] / D
    intrinsic = np.where(x["is_call"], np.maximum(F - x["K"], 0.0), np.maximum(x["K"] - F, 0.0))
    tv = und - intrinsic
    moneyness = np.abs(np.log(F / x["K"])) / (x["sigma"] * np.sqrt(x["T"]))
    return (tv >= 0.01) & (moneyness <= 2.0)


def _silent_wrong(x: dict[str, np.ndarray], ill: np.ndarray, flag: np.ndarray) -> dict:
    """Cent-rounded ill-conditioned prices: answers without a failure status that do not
    reprice their input, for ours and the peer."""
    y = {k: v[ill] for k, v in x.items()}
    y["price"] = np.round(y["price"], 2)
    ours = _ours(y)
    peer = _peer(y, flag[ill])

    def wrong(iv: np.ndarray, answered: np.ndarray) -> int:
        model = bsm_price(y["S"], y["K"], y["T"], y["r"], y["q"], np.where(answered, iv, 0.2), y["is_call"])
        rel = np.abs(model - y["price"]) / np.maximum(y["price"], 1e-12)
        return int((answered & ~(rel <= WRONG_TOLERANCE)).sum())

    ok = ours["status"] == IVStatus.OK
    peer_found = np.isfinite(peer["iv"]) & (peer["iv"] > 0)
    return {
        "rounded_ill_conditioned_rows": int(ill.sum()),
        "ours_status_on_rounded": {
            IVStatus(int(k)).name: int(v) for k, v in zip(*np.unique(ours["status"], return_counts=True))
        },
        "peer_answered_on_rounded": int(peer_found.sum()),
        "silent_wrong_ours": wrong(ours["iv"], ok),
        "silent_wrong_peer": wrong(peer["iv"], peer_found),
    }


def _max_abs(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(np.abs(a).max()) if a.size else float("nan")


def run(size: str = "full", *, repeats: int = REPEATS, n: int | None = None) -> dict:
    """Run the IV + greeks benchmark; returns the figures (see the module docstring)."""
    n = SIZES[size] if n is None else n
    x = _inputs(n)
    flag = np.where(x["is_call"], "c", "p")
    ours_s, ours_runs, ours = _best_of(lambda: _ours(x), repeats)
    peer_s, peer_runs, peer = _best_of(lambda: _peer(x, flag), repeats)

    good = well_conditioned(x)
    ok = ours["status"] == IVStatus.OK
    truth = x["sigma"]
    statuses = {IVStatus(int(k)).name: int(v) for k, v in zip(*np.unique(ours["status"], return_counts=True))}
    ill = ~good
    peer_found = np.isfinite(peer["iv"]) & (peer["iv"] > 0)
    checks = {
        "well_conditioned_rows": int(good.sum()),
        "ours_ok_on_well_conditioned": int((ok & good).sum()),
        "peer_solved_on_well_conditioned": int((peer_found & good).sum()),
        "max_abs_iv_error_ours": _max_abs(np.where(good, ours["iv"] - truth, np.nan)),
        "max_abs_iv_error_peer": _max_abs(np.where(good, peer["iv"] - truth, np.nan)),
        "max_abs_iv_diff_ours_vs_peer": _max_abs(np.where(good, ours["iv"] - peer["iv"], np.nan)),
        **{f"max_abs_{g}_diff_ours_vs_peer": _max_abs(np.where(good, ours[g] - peer[g], np.nan)) for g in GREEKS},
        "ill_conditioned_rows": int(ill.sum()),
        "ours_status_on_ill_conditioned": {
            IVStatus(int(k)).name: int(v) for k, v in zip(*np.unique(ours["status"][ill], return_counts=True))
        },
        **_silent_wrong(x, ill, flag),
        "ours_ok_reprices": "an OK status implies the vol reprices the time value to reprice_rtol (1e-9)",
    }
    checks["iv_within_tolerance"] = bool(
        checks["ours_ok_on_well_conditioned"] == checks["well_conditioned_rows"]
        and checks["max_abs_iv_error_ours"] <= IV_TOLERANCE
    )
    return {
        "benchmark": "greeks",
        "size": size if n == SIZES.get(size) else "custom",
        "options": n,
        "repeats": repeats,
        "threads": {"numba": numba.get_num_threads(), "cpus": os.cpu_count()},
        "engines": {
            "ours": {"seconds": ours_s, "runs": ours_runs, "options_per_second": n / ours_s},
            "py_vollib_vectorized": {"seconds": peer_s, "runs": peer_runs, "options_per_second": n / peer_s},
        },
        "ours_status_counts": statuses,
        "checks": checks,
        "ratio": {"py_vollib_vectorized": peer_s / ours_s},
        "target": TARGET,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "notes": [
            "IV then delta, gamma, vega, theta, rho at the solved vol, same NumPy float64 inputs for both",
            "ratio = py_vollib_vectorized seconds / ours seconds (throughput ratio)",
        ],
    }


def _print(res: dict) -> None:
    print(f"IV + greeks: {res['options']:,} options, T 5 min to 60 days (size {res['size']}, "
          f"best of {res['repeats']}, warm-up excluded); threads {res['threads']}")
    print(f"{'engine':22} {'seconds':>9} {'Moptions/s':>11} {'runs':>24}")
    for e, r in res["engines"].items():
        runs = " ".join(f"{t:.3f}" for t in r["runs"])
        print(f"{e:22} {r['seconds']:9.3f} {r['options_per_second'] / 1e6:11.2f} {runs:>24}")
    c = res["checks"]
    print(f"well-conditioned rows: {c['well_conditioned_rows']:,} (ours OK on {c['ours_ok_on_well_conditioned']:,}, "
          f"peer solved {c['peer_solved_on_well_conditioned']:,})")
    print(f"  max |iv - true|: ours {c['max_abs_iv_error_ours']:.3g}, peer {c['max_abs_iv_error_peer']:.3g} "
          f"(target <= {IV_TOLERANCE:g}); ours vs peer {c['max_abs_iv_diff_ours_vs_peer']:.3g}")
    print("  max |ours - peer|: " + ", ".join(f"{g} {c[f'max_abs_{g}_diff_ours_vs_peer']:.3g}" for g in GREEKS)
          + " (theta, rho: different conventions)")
    print(f"ill-conditioned rows: {c['ill_conditioned_rows']:,}; ours statuses {c['ours_status_on_ill_conditioned']}")
    print(f"  prices rounded to the cent: ours statuses {c['ours_status_on_rounded']}, "
          f"peer answered {c['peer_answered_on_rounded']:,}")
    print(f"  silent wrong answers (a vol without a failure status that does not reprice the input to "
          f"{WRONG_TOLERANCE:g}): ours {c['silent_wrong_ours']:,}, peer {c['silent_wrong_peer']:,}")
    print(f"iv within tolerance: {c['iv_within_tolerance']}; peak RSS {res['peak_rss_gib']:.2f} GiB; target >= {TARGET}x")
    print(f"ratio: py_vollib_vectorized={res['ratio']['py_vollib_vectorized']:.2f}")


def main(argv: list[str] | None = None) -> int:
    """``m17 bench greeks [--size small|full] [--json] [--repeats N]``."""
    return bench_main("greeks", __doc__, SIZES, REPEATS, run, _print, argv)


if __name__ == "__main__":
    raise SystemExit(main())
