"""``levels``: the level universe of each 1-minute bar, known at the bar's start.

For the bar starting at ``t`` every level is computed from data known at ``t``: bars
that ended at or before ``t``, rows strictly before ``t``. Its ``known_from_ts_ns`` is
the first instant whose earlier data determine it (a bar-derived level: the end of the
bar that set it; a row-derived one: the row's ``ts_ns`` + 1 ns).

=============  =====================================================================
kind           value (computed in ES points for the ES-derived kinds, then converted)
=============  =====================================================================
STRIKE         strikes with prints so far of the nearest expiration (>= the trade date)
               with prints so far; within ``grid_range`` of the bar; absent without options
ROUND          multiples of ``round_step`` within ``grid_range`` of the bar (a constant:
               known_from is the bar start)
PM_HIGH / LOW  extremes of the bars in [premarket_start ET, regular open); from the open
OR_HIGH / LOW  extremes of the bars in [open, open + opening_range_minutes); from its end
SESSION_HIGH   running extremes of the earlier bars of the same session segment
/ LOW          (before the open, the regular session, after the close)
VWAP           running sum(vwap x volume) / sum(volume) of those bars
SMA_200        mean of the last ``sma_length`` ``sma_bar_seconds`` closes ended by ``t``
               (SPY scale, each close converted at its bar end; earlier partitions'
               closes from ``sma_history``); null until warm
CALL_WALL /    ``gamma_exposure`` total row of the first source in ``gamma_sources``
PUT_WALL /     with a row strictly before ``t``: its call wall, put wall, gamma flip
GAMMA_FLIP
=============  =====================================================================

Session extremes, walls and VWAP computed over the whole day would put the future into
the features; here each is the running value known at the bar's start.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numba
import numpy as np
import polars as pl

from m17_platform.errors import SchemaError
from m17_platform.levels.convert import convert, es_mid, measured_ratios, spy_mid
from m17_platform.levels.partition import Partition
from m17_platform.levels.schemas import LEVELS
from m17_platform.levels.settings import LevelSettings
from m17_platform.schemas import empty_frame

NS_PER_MINUTE = 60_000_000_000
_LEVEL_COLS = ["bar_start_ns", "level_kind", "level_es", "level_spy", "known_from_ts_ns"]
SMA_HISTORY_SCHEMA = {"bar_end_ns": pl.Int64, "close": pl.Float64}
"""``sma_history``: earlier partitions' ``sma_bar_seconds`` closes on the SPY scale."""


def es_bars(bars: pl.DataFrame | None, symbol: str | None, lvl: LevelSettings) -> pl.DataFrame:
    """The proxy contract's 1-minute bars (``gold.bars`` kind ``futures``), sorted.

    Raises
    ------
    SchemaError
        If a bar is not ``LevelSettings.bar_seconds`` long.
    """
    cols = ["bar_start_ns", "bar_end_ns", "open", "high", "low", "close", "volume", "vwap"]
    if bars is None or symbol is None or bars.height == 0:
        return empty_frame_bars(cols)
    out = bars.filter((pl.col("kind") == "futures") & (pl.col("symbol") == symbol)).select(cols).sort("bar_start_ns")
    bad = out.filter(pl.col("bar_end_ns") - pl.col("bar_start_ns") != lvl.bar_ns)
    if bad.height:
        raise SchemaError(
            "bars",
            "levels input",
            f"bar of {symbol} at bar_start_ns={bad.item(0, 'bar_start_ns')} is not "
            f"{lvl.bar_seconds} s long (LevelSettings.bar_seconds)",
        )
    return out


def empty_frame_bars(cols: list[str]) -> pl.DataFrame:
    types = {"bar_start_ns": pl.Int64, "bar_end_ns": pl.Int64, "volume": pl.Int64}
    return pl.DataFrame(schema={c: types.get(c, pl.Float64) for c in cols})


@numba.njit(cache=True)
def _running(seg, be, hi, lo, pv, vol):
    n = seg.shape[0]
    out = np.full((n, 3), np.nan)
    known = np.full((n, 3), -1, dtype=np.int64)
    cur = -1
    best_hi = best_lo = np.nan
    t_hi = t_lo = t_last = -1
    s_pv = 0.0
    s_vol = 0
    for i in range(n):
        if seg[i] != cur:
            cur = seg[i]
            best_hi = best_lo = np.nan
            t_hi = t_lo = t_last = -1
            s_pv = 0.0
            s_vol = 0
        out[i, 0], known[i, 0] = best_hi, t_hi
        out[i, 1], known[i, 1] = best_lo, t_lo
        if s_vol > 0:
            out[i, 2], known[i, 2] = s_pv / s_vol, t_last
        if not hi[i] <= best_hi:
            best_hi, t_hi = hi[i], be[i]
        if not lo[i] >= best_lo:
            best_lo, t_lo = lo[i], be[i]
        s_pv += pv[i]
        s_vol += vol[i]
        t_last = be[i]
    return out, known


def _session_levels(es: pl.DataFrame, part: Partition, lvl: LevelSettings) -> pl.DataFrame:
    """SESSION_HIGH / SESSION_LOW / VWAP (running), PM_* and OR_* (ES points)."""
    bs = es.get_column("bar_start_ns").to_numpy()
    seg = np.where(bs < part.open_ns, 0, np.where(bs < part.close_ns, 1, 2)).astype(np.int64)
    vol = es.get_column("volume").to_numpy().astype(np.int64)
    pv = es.get_column("vwap").to_numpy() * vol
    out, known = _running(
        seg,
        es.get_column("bar_end_ns").to_numpy(),
        es.get_column("high").to_numpy(),
        es.get_column("low").to_numpy(),
        pv,
        vol,
    )
    parts = [
        pl.DataFrame({"bar_start_ns": bs, "level_kind": kind, "level_es": out[:, k], "known_from_ts_ns": known[:, k]})
        for k, kind in enumerate(("SESSION_HIGH", "SESSION_LOW", "VWAP"))
    ]
    pm_start = _et_instant(part, lvl)
    or_end = part.open_ns + int(lvl.opening_range_minutes) * NS_PER_MINUTE
    for name, lo_ns, hi_ns in (("PM", pm_start, part.open_ns), ("OR", part.open_ns, or_end)):
        window = es.filter((pl.col("bar_start_ns") >= lo_ns) & (pl.col("bar_start_ns") < hi_ns))
        if window.height == 0:
            continue
        after = bs[bs >= hi_ns]
        for kind, value in (
            (f"{name}_HIGH", window.get_column("high").max()),
            (f"{name}_LOW", window.get_column("low").min()),
        ):
            parts.append(
                pl.DataFrame(
                    {
                        "bar_start_ns": after,
                        "level_kind": kind,
                        "level_es": float(value),
                        "known_from_ts_ns": int(hi_ns),
                    }
                )
            )
    frame = pl.concat(
        [p.with_columns(pl.col("level_es").cast(pl.Float64), pl.col("known_from_ts_ns").cast(pl.Int64)) for p in parts]
    )
    return frame.filter(pl.col("level_es").is_not_nan()).with_columns(pl.lit(None, dtype=pl.Float64).alias("level_spy"))


def _et_instant(part: Partition, lvl: LevelSettings) -> int:
    """``premarket_start`` (New York wall clock) on the trade date, ns UTC."""
    local = dt.datetime.combine(part.trade_date, lvl.premarket_start, tzinfo=ZoneInfo(part.timezone))
    return int(local.timestamp()) * 1_000_000_000


def sma_closes(es: pl.DataFrame, ratios: pl.DataFrame, lvl: LevelSettings) -> pl.DataFrame:
    """The partition's ``sma_bar_seconds`` closes on the SPY scale (``bar_end_ns``,
    ``close``): the last 1-minute close of each bar, converted at the ratio of the bar's
    end (``ratios``: :func:`.convert.measured_ratios` at those ends). What the next
    partition takes as ``sma_history``."""
    length = int(lvl.sma_bar_seconds) * 1_000_000_000
    if es.height == 0:
        return pl.DataFrame(schema=SMA_HISTORY_SCHEMA)
    two = es.group_by((pl.col("bar_start_ns") // length).alias("_k"), maintain_order=True).agg(pl.col("close").last())
    two = two.with_columns(((pl.col("_k") + 1) * length).alias("bar_end_ns")).join(
        ratios.rename({"ts_ns": "bar_end_ns"}), on="bar_end_ns", how="left"
    )
    return two.select("bar_end_ns", convert(pl.col("close"), pl.col("es_spy_ratio"), to="spy").alias("close"))


def _sma_levels(
    es: pl.DataFrame, closes: pl.DataFrame, history: pl.DataFrame | None, lvl: LevelSettings
) -> pl.DataFrame:
    bs = es.get_column("bar_start_ns").to_numpy()
    frames = [closes]
    if history is not None and history.height and bs.size:
        frames.insert(
            0,
            history.select(list(SMA_HISTORY_SCHEMA))
            .cast(SMA_HISTORY_SCHEMA)
            .filter(pl.col("bar_end_ns") <= int(bs[0])),
        )
    allc = pl.concat(frames).sort("bar_end_ns", maintain_order=True)
    ends, vals = allc.get_column("bar_end_ns").to_numpy(), allc.get_column("close").to_numpy()
    idx = np.searchsorted(ends, bs, side="right")
    n = int(lvl.sma_length)
    value = np.full(bs.size, np.nan)
    known = np.full(bs.size, -1, dtype=np.int64)
    for i in np.flatnonzero(idx >= n):
        value[i] = float(np.mean(vals[idx[i] - n : idx[i]]))
        known[i] = ends[idx[i] - 1]
    out = pl.DataFrame(
        {"bar_start_ns": bs, "level_kind": "SMA_200", "level_spy": value, "known_from_ts_ns": known},
        schema={
            "bar_start_ns": pl.Int64,
            "level_kind": pl.String,
            "level_spy": pl.Float64,
            "known_from_ts_ns": pl.Int64,
        },
    )
    return out.filter(pl.col("level_spy").is_not_nan()).with_columns(pl.lit(None, dtype=pl.Float64).alias("level_es"))


LEVEL_ROWS_SCHEMA = {
    "bar_start_ns": pl.Int64,
    "level_kind": pl.String,
    "level_spy": pl.Float64,
    "known_from_ts_ns": pl.Int64,
    "level_es": pl.Float64,
}
"""The level rows each kind's builder returns before they are joined into ``levels``."""


def _gamma_levels(bs: np.ndarray, gamma: pl.DataFrame | None, lvl: LevelSettings) -> pl.DataFrame:
    """CALL_WALL / PUT_WALL / GAMMA_FLIP from the preferred source's last total row before each bar."""
    empty = pl.DataFrame(schema=LEVEL_ROWS_SCHEMA)
    if gamma is None or gamma.height == 0 or bs.size == 0:
        return empty
    chosen_ts = np.full(bs.size, -1, dtype=np.int64)
    values = np.full((bs.size, 3), np.nan)
    for source in lvl.gamma_sources:
        rows = gamma.filter((pl.col("source") == source) & (pl.col("grain") == "total")).sort("ts_ns")
        if rows.height == 0:
            continue
        ts = rows.get_column("ts_ns").to_numpy()
        idx = np.searchsorted(ts, bs, side="left") - 1
        take = (chosen_ts < 0) & (idx >= 0)
        cols = np.column_stack(
            [
                rows.get_column(c).cast(pl.Float64).fill_null(np.nan).to_numpy()
                for c in ("call_wall", "put_wall", "gamma_flip")
            ]
        )
        values[take] = cols[idx[take]]
        chosen_ts[take] = ts[idx[take]]
    parts = [
        pl.DataFrame(
            {"bar_start_ns": bs, "level_kind": kind, "level_spy": values[:, k], "known_from_ts_ns": chosen_ts + 1}
        )
        for k, kind in enumerate(("CALL_WALL", "PUT_WALL", "GAMMA_FLIP"))
    ]
    out = pl.concat(parts).filter(pl.col("level_spy").is_not_nan() & (pl.col("known_from_ts_ns") > 0))
    return out.with_columns(pl.lit(None, dtype=pl.Float64).alias("level_es")).cast(empty.schema)


def _strike_levels(
    spy_bars: pl.DataFrame, options: pl.DataFrame | None, part: Partition, lvl: LevelSettings
) -> pl.DataFrame:
    """STRIKE rows: strikes of the nearest expiration with prints before the bar start."""
    empty = pl.DataFrame(schema=LEVEL_ROWS_SCHEMA)
    if options is None or options.height == 0 or spy_bars.height == 0:
        return empty
    first = (
        options.filter(
            ~pl.col("canceled") & (pl.col("underlying") == part.underlying) & (pl.col("expiration") >= part.trade_date)
        )
        .group_by("expiration", "strike")
        .agg(pl.col("ts_ns").min().alias("_first"))
    )
    if first.height == 0:
        return empty
    expiries = first.group_by("expiration").agg(pl.col("_first").min()).sort("expiration")
    bs = spy_bars.get_column("bar_start_ns").to_numpy()
    nearest = np.full(bs.size, None, dtype=object)
    for exp, t0 in reversed(expiries.rows()):  # the nearest listed last wins
        nearest[bs > t0] = exp
    bars = spy_bars.with_columns(pl.Series("expiration", nearest.tolist(), dtype=pl.Date))
    out = bars.join(first, on="expiration", how="inner").filter(
        (pl.col("_first") < pl.col("bar_start_ns"))
        & (pl.col("strike") >= pl.col("low") - lvl.grid_range)
        & (pl.col("strike") <= pl.col("high") + lvl.grid_range)
    )
    return out.select(
        "bar_start_ns",
        pl.lit("STRIKE").alias("level_kind"),
        pl.col("strike").alias("level_spy"),
        (pl.col("_first") + 1).alias("known_from_ts_ns"),
        pl.lit(None, dtype=pl.Float64).alias("level_es"),
    )


def _round_levels(spy_bars: pl.DataFrame, lvl: LevelSettings) -> pl.DataFrame:
    step = float(lvl.round_step)
    k = (
        spy_bars.select(
            "bar_start_ns",
            ((pl.col("low") - lvl.grid_range) / step).ceil().cast(pl.Int64).alias("_lo"),
            ((pl.col("high") + lvl.grid_range) / step).floor().cast(pl.Int64).alias("_hi"),
        )
        .with_columns(pl.int_ranges("_lo", pl.col("_hi") + 1).alias("_k"))
        .explode("_k")
        .drop_nulls("_k")
    )
    return k.select(
        "bar_start_ns",
        pl.lit("ROUND").alias("level_kind"),
        (pl.col("_k") * step).alias("level_spy"),
        pl.col("bar_start_ns").alias("known_from_ts_ns"),
        pl.lit(None, dtype=pl.Float64).alias("level_es"),
    )


def bar_ratios(
    es: pl.DataFrame, book: pl.DataFrame | None, quotes: pl.DataFrame | None, part: Partition, lvl: LevelSettings
) -> pl.DataFrame:
    """:func:`.convert.measured_ratios` at every bar start and every ``sma_bar_seconds`` bar end."""
    sma_len = int(lvl.sma_bar_seconds) * 1_000_000_000
    bs = es.get_column("bar_start_ns").to_numpy()
    ends = (np.unique(bs // sma_len) + 1) * sma_len
    return measured_ratios(
        np.concatenate([bs, ends]),
        es_mid(book, part.symbol),
        spy_mid(quotes, part.underlying),
        part.fallback_ratio,
        lvl,
    )


def build_levels(
    bars: pl.DataFrame | None,
    book: pl.DataFrame | None,
    stock_quotes: pl.DataFrame | None,
    option_trades: pl.DataFrame | None,
    gamma_exposure: pl.DataFrame | None,
    part: Partition | None,
    settings: LevelSettings,
    *,
    sma_history: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict]:
    """The ``levels`` rows of a partition.

    Parameters
    ----------
    bars : ``gold.bars`` (kind ``futures`` of the proxy contract is used)
    book : ``raw.futures_mbp10`` (ES mid for the ratio)
    stock_quotes : ``raw.stock_quotes`` (SPY mid for the ratio)
    option_trades : ``enriched.option_trades_enriched`` (STRIKE), optional
    gamma_exposure : ``gold.gamma_exposure`` (walls, flip), optional
    part : :class:`.partition.Partition` (None: zero rows)
    settings : LevelSettings
    sma_history : earlier partitions' closes (:data:`SMA_HISTORY_SCHEMA`), optional

    Returns
    -------
    (polars.DataFrame with the columns of :data:`.schemas.LEVELS`, counts)

    Raises
    ------
    SchemaError
        If a bar is not ``bar_seconds`` long.
    """
    lvl = settings
    es = es_bars(bars, part.symbol if part else None, lvl)
    if part is None or es.height == 0:
        return empty_frame(LEVELS), {"bars": 0, "levels": 0}
    ratios = bar_ratios(es, book, stock_quotes, part, lvl)
    r = es.join(ratios.rename({"ts_ns": "bar_start_ns"}), on="bar_start_ns", how="left")
    spy = r.select(
        "bar_start_ns",
        *[convert(pl.col(c), pl.col("es_spy_ratio"), to="spy").alias(c) for c in ("open", "high", "low", "close")],
    )
    parts = [
        _session_levels(es, part, lvl).select(_LEVEL_COLS),
        _sma_levels(es, sma_closes(es, ratios, lvl), sma_history, lvl).select(_LEVEL_COLS),
        _gamma_levels(es.get_column("bar_start_ns").to_numpy(), gamma_exposure, lvl).select(_LEVEL_COLS),
        _strike_levels(spy, option_trades, part, lvl).select(_LEVEL_COLS),
        _round_levels(spy, lvl).select(_LEVEL_COLS),
    ]
    ratio = pl.col("es_spy_ratio")
    frame = pl.concat(parts, how="vertical_relaxed").join(
        r.select("bar_start_ns", "bar_end_ns", "es_spy_ratio", "ratio_source"), on="bar_start_ns", how="left"
    )
    frame = (
        frame.with_columns(
            pl.coalesce(pl.col("level_spy"), convert(pl.col("level_es"), ratio, to="spy")).alias("level_price"),
            pl.coalesce(pl.col("level_es"), convert(pl.col("level_spy"), ratio, to="es")).alias("level_price_es"),
            pl.lit(part.underlying).alias("underlying"),
            pl.lit(part.symbol).alias("symbol"),
        )
        .select(LEVELS.columns)
        .sort(list(LEVELS.sort_key))
    )
    counts = frame.get_column("level_kind").value_counts()
    stats = {
        "bars": es.height,
        "levels": frame.height,
        **{f"kind/{k}": int(v) for k, v in counts.iter_rows()},
        **{f"ratio/{k}": int(v) for k, v in r.get_column("ratio_source").value_counts().iter_rows()},
    }
    return frame, stats
