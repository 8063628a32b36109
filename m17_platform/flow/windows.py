"""Flow windows: option flow per time window, per contract, strike/right and underlying.

Definitions
-----------
Per window of length ``L`` (``FlowSettings.window_seconds``; 1 min and 10 min by
default, the latter M17's SPY aggregation windows, seed 000), the window of a print is
``[floor(ts_ns / L) L, floor(ts_ns / L) L + L)``. With ``side`` the platform's aggressor
as a sign (+1 buy, -1 sell, 0 unknown), ``size`` in contracts, ``m`` the multiplier
(shares per contract), ``delta`` and ``gamma`` the print's greeks and ``S`` the
underlying price they were computed at (``option_trade_greeks``):

* premium = sum of price x size x m (dollars), and per side;
* net premium = buy premium - sell premium (dollars);
* delta flow = sum of side x size x m x delta x S (dollars of underlying bought (+) or
  sold (-) by the aggressors' delta);
* gamma flow = sum of side x size x m x gamma x S^2 x ``gamma_move`` (dollars of delta
  change per 1% move).

The SPYMASTER monitor (seed 002) accumulated delta unsigned; unsigned delta flow mixes
buying and selling and cannot net, so the flows here are signed by the aggressor, as the
issue asks. Prints without greeks count in ``greeks_missing`` and add nothing to the
greek flows; canceled prints are excluded upstream (:func:`.prints.option_flow_prints`).

Roll-ups: ``contract`` (one OCC symbol), ``strike`` (one strike and right, all
expirations, the strike grid of a flow monitor) and ``underlying``. Only windows with
prints are rows; the ``cum_*`` columns run over a series' windows in time order, so the
last window's cumulative value is the day's total.

The plain-text artifact (seed 000: "a plain-text artifact for each finished window ...
operators can tail") is :func:`window_artifact`: one summary line per finished window of
``FlowSettings.artifact_window_seconds``, written beside the Parquet by the asset.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl

from m17_platform.calendar import NS_PER_SECOND
from m17_platform.ordered import group_sums
from m17_platform.schemas import FLOW_WINDOWS
from m17_platform.settings import DEFAULT, Settings

GRAINS: dict[str, tuple[str, ...]] = {
    "contract": ("option_symbol", "root", "expiration", "strike", "right"),
    "strike": ("strike", "right"),
    "underlying": (),
}
"""Roll-up -> the columns that identify one series of it (besides ``underlying``)."""

MEASURES = (
    "trades", "volume", "premium", "buy_volume", "sell_volume", "unknown_volume",
    "buy_premium", "sell_premium", "unknown_premium", "net_premium", "delta_flow", "gamma_flow", "greeks_missing",
)
"""Additive measures of a window: summing them over windows gives the day's totals."""

FLOW_WINDOWS_DTYPES: dict[str, pl.DataType] = dict(pl.from_arrow(FLOW_WINDOWS.schema.empty_table()).schema)
"""Polars dtypes of the flow_windows columns."""

CUMULATIVE = ("trades", "volume", "premium", "net_premium", "delta_flow", "gamma_flow")
"""Measures with a ``cum_`` column."""


def print_flows(prints: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """Per-print contributions to the window measures.

    Parameters
    ----------
    prints : polars.DataFrame
        Output of :func:`.prints.option_flow_prints` (needs ``sign``, ``size``,
        ``premium``, ``multiplier``, ``delta``, ``gamma``, ``underlying_price``).

    Returns
    -------
    polars.DataFrame
        ``prints`` plus ``buy_volume`` / ``sell_volume`` / ``unknown_volume`` (contracts),
        ``buy_premium`` / ``sell_premium`` / ``unknown_premium`` / ``net_premium``
        (dollars), ``delta_flow`` (dollars), ``gamma_flow`` (dollars per 1% move) and
        ``greeks_missing`` (0/1), all zero-filled, never null.
    """
    sign = pl.col("sign")
    qty = pl.col("size") * pl.col("multiplier")
    s = pl.col("underlying_price")
    missing = pl.col("delta").is_null() | pl.col("gamma").is_null() | s.is_null()
    return prints.with_columns(
        pl.when(sign == 1).then(pl.col("size")).otherwise(0).alias("buy_volume"),
        pl.when(sign == -1).then(pl.col("size")).otherwise(0).alias("sell_volume"),
        pl.when(sign == 0).then(pl.col("size")).otherwise(0).alias("unknown_volume"),
        pl.when(sign == 1).then(pl.col("premium")).otherwise(0.0).alias("buy_premium"),
        pl.when(sign == -1).then(pl.col("premium")).otherwise(0.0).alias("sell_premium"),
        pl.when(sign == 0).then(pl.col("premium")).otherwise(0.0).alias("unknown_premium"),
        (sign.cast(pl.Float64) * pl.col("premium")).alias("net_premium"),
        (sign.cast(pl.Float64) * qty * pl.col("delta") * s).fill_null(0.0).alias("delta_flow"),
        (sign.cast(pl.Float64) * qty * pl.col("gamma") * s * s * settings.flow.gamma_move).fill_null(0.0).alias("gamma_flow"),
        missing.cast(pl.Int64).alias("greeks_missing"),
    )


def flow_windows(prints: pl.DataFrame, settings: Settings = DEFAULT) -> pl.DataFrame:
    """The ``flow_windows`` rows of a partition.

    Parameters
    ----------
    prints : polars.DataFrame
        Output of :func:`.prints.option_flow_prints` (one underlying).
    settings : Settings
        ``flow.window_seconds`` (seconds) and ``flow.gamma_move`` (fraction).

    Returns
    -------
    polars.DataFrame
        Columns of :data:`m17_platform.schemas.FLOW_WINDOWS`: one row per (grain, window
        length, series, window with prints); zero rows when there are no prints.

    Raises
    ------
    ValueError
        If a window length is not a positive whole number of seconds.
    """
    lengths = settings.flow.window_seconds
    if any(int(w) != w or w <= 0 for w in lengths):
        raise ValueError(f"FlowSettings.window_seconds must be positive whole seconds, got {lengths}")
    if prints.height == 0:
        return pl.from_arrow(FLOW_WINDOWS.schema.empty_table())
    flows = print_flows(prints, settings)
    parts = []
    for seconds in lengths:
        length = int(seconds) * NS_PER_SECOND
        framed = flows.with_columns((pl.col("ts_ns") // length * length).alias("window_start_ns"))
        contract_keys = ["underlying", *GRAINS["contract"], "window_start_ns"]
        # sums in a fixed order, the same bits on every run (m17_platform.ordered): a contract
        # window adds its prints in (ts_ns, sequence) order, a coarser window its contract
        # windows in contract order
        contract = group_sums(framed.rename({"size": "volume"}), contract_keys, MEASURES[1:],
                              order=["ts_ns", "sequence"], count="trades")
        for grain, keys in GRAINS.items():
            series = ["underlying", *keys]
            agg = contract if grain == "contract" else group_sums(
                contract, [*series, "window_start_ns"], MEASURES, order=contract_keys)
            agg = agg.sort([*series, "window_start_ns"], nulls_last=True).with_columns(
                *[pl.col(m).cum_sum().over(series).alias(f"cum_{m}") for m in CUMULATIVE]
            )
            nulls = [pl.lit(None, dtype=FLOW_WINDOWS_DTYPES[c]).alias(c) for c in GRAINS["contract"] if c not in keys]
            parts.append(
                agg.with_columns(
                    pl.lit(grain).alias("grain"),
                    pl.lit(length, dtype=pl.Int64).alias("window_ns"),
                    (pl.col("window_start_ns") + length).alias("window_end_ns"),
                    *nulls,
                ).select(FLOW_WINDOWS.columns)
            )
    return pl.concat(parts, how="vertical_relaxed")


def _money(value: float) -> str:
    return f"${value:,.0f}"


def _signed(value: float) -> str:
    return f"{'+' if value >= 0 else '-'}${abs(value):,.0f}"


def window_artifact(windows: pl.DataFrame, settings: Settings = DEFAULT, *, now_ns: int | None = None) -> str:
    """M17's plain-text window artifact: one summary line per finished window.

    Parameters
    ----------
    windows : polars.DataFrame
        ``flow_windows`` rows (:func:`flow_windows`).
    settings : Settings
        ``flow.artifact_window_seconds`` (the window length summarised) and
        ``sessions.timezone`` (the wall clock of the lines).
    now_ns : int, optional
        ns since epoch UTC; windows ending after it are not finished and are left out
        (a live partition). ``None``: every window is finished (a past day).

    Returns
    -------
    str
        Lines like ``2016-06-01 10:20-10:30 EDT VIX 10m trades=12 volume=340
        premium=$41,200 buy=$30,000 sell=$9,000 net=+$21,000 delta_flow=+$150,000
        gamma_flow=-$2,100 cum_net=+$80,000 cum_delta_flow=+$1,200,000``, ordered by
        window, each ending in a newline; empty when there are no such windows.
    """
    length = int(settings.flow.artifact_window_seconds) * NS_PER_SECOND
    rows = windows.filter((pl.col("grain") == "underlying") & (pl.col("window_ns") == length))
    if now_ns is not None:
        rows = rows.filter(pl.col("window_end_ns") <= now_ns)
    tz = ZoneInfo(settings.sessions.timezone)
    label = f"{settings.flow.artifact_window_seconds // 60}m" if length % (60 * NS_PER_SECOND) == 0 \
        else f"{settings.flow.artifact_window_seconds}s"
    lines = []
    for r in rows.sort("window_start_ns").iter_rows(named=True):
        start = dt.datetime.fromtimestamp(r["window_start_ns"] / NS_PER_SECOND, tz)
        end = dt.datetime.fromtimestamp(r["window_end_ns"] / NS_PER_SECOND, tz)
        lines.append(
            f"{start:%Y-%m-%d %H:%M}-{end:%H:%M} {start.tzname()} {r['underlying']} {label} "
            f"trades={r['trades']} volume={r['volume']} premium={_money(r['premium'])} "
            f"buy={_money(r['buy_premium'])} sell={_money(r['sell_premium'])} net={_signed(r['net_premium'])} "
            f"delta_flow={_signed(r['delta_flow'])} gamma_flow={_signed(r['gamma_flow'])} "
            f"cum_net={_signed(r['cum_net_premium'])} cum_delta_flow={_signed(r['cum_delta_flow'])}\n"
        )
    return "".join(lines)
