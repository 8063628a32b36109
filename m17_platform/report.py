"""The daily report of one partition (trade date x underlying): one self-contained HTML
file with row counts, quality-check results and intraday plots, plus a short Markdown
version for Dagster's UI.

Everything is computed from the partition's tables (polars) and drawn with matplotlib
``Figure`` objects on the Agg canvas (no ``pyplot``, no global backend state). Plots are
embedded as base64 PNG ``data:`` URIs, styles are inline, and there is no JavaScript:
the file can be mailed, archived or opened offline.

Plots, each drawn only when the data supports it (the table is present, has rows and
has the needed columns); the aggregated numbers behind every plot are exposed in
:attr:`DailyReport.series` under the plot's name:

* ``trades.<table>`` for ``option_trades``, ``stock_trades``, ``futures_trades``: trade
  count and volume (contracts / shares) per time bucket. Canceled prints are left out.
* ``spread.option_quotes``: median quoted spread (dollars) and median relative spread
  (percent of the mid) per bucket.
* ``spread.stock_quotes`` / ``spread.futures_mbp10``: median quoted spread (dollars;
  top of book ``ask_px_00 - bid_px_00`` for futures) and the number of usable quotes.
* ``premium.option_trades``: premium (price x size x multiplier, dollars) of calls and
  puts per bucket; the multiplier comes from ``option_contracts`` when it names the
  contract, else the configured default (100).

Buckets are ``ReportSettings.bucket_minutes`` wide and aligned to local midnight in
``SessionSettings.timezone`` (America/New_York, "ET"), so 5-minute buckets start at
09:30, 09:35, ... ET. A quote is usable for the spread when both sides are present and
positive and it is not crossed (ask >= bid); locked quotes (spread 0) count.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from matplotlib import dates as mdates
from matplotlib import ticker as mticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from m17_platform import schemas
from m17_platform.ordered import group_sums
from m17_platform.quality import TIMING_KEYS, CheckOutcome
from m17_platform.settings import DEFAULT, ReportSettings, SessionSettings, UniverseSettings

NS_PER_SECOND = 1_000_000_000
NS_PER_MINUTE = 60 * NS_PER_SECOND
NS_PER_DAY = 86_400 * NS_PER_SECOND

#: Size of every plot, inches (width, height); pixels = inches x ``ReportSettings.dpi``.
PLOT_SIZE_IN: tuple[float, float] = (10.0, 5.0)
#: Markdown (Dagster UI metadata) is kept below this many characters; the embedded
#: plot is left out when it would not fit.
MARKDOWN_BUDGET_CHARS = 200_000
#: At most this many failing checks are listed in the Markdown.
MARKDOWN_MAX_FAILED = 20
#: Characters of a manifest's sha256 shown in the row-count table.
SHA_PREFIX_CHARS = 12

TRADE_TABLES: tuple[str, ...] = ("option_trades", "stock_trades", "futures_trades")
#: Quote table -> (bid column, ask column).
QUOTE_TABLES: dict[str, tuple[str, str]] = {
    "option_quotes": ("bid", "ask"),
    "stock_quotes": ("bid", "ask"),
    "futures_mbp10": ("bid_px_00", "ask_px_00"),
}

_CALL_COLOR = "#2a9d8f"
_PUT_COLOR = "#e76f51"
_BAR_COLOR = "#457b9d"
_LINE_COLOR = "#1d3557"


@dataclass(frozen=True)
class DailyReport:
    """A rendered daily report of one partition.

    Attributes
    ----------
    trade_date : datetime.date
        The partition's trade date.
    underlying : str
        The partition's underlying.
    html : str
        One self-contained HTML document (inline CSS, plots as base64 PNG data URIs).
    markdown : str
        Short version for Dagster metadata (``MetadataValue.md``): row counts, check
        summary, first plot; below :data:`MARKDOWN_BUDGET_CHARS` characters.
    plots : dict[str, bytes]
        PNG bytes per plot name (``trades.option_trades``, ``spread.option_quotes``,
        ``premium.option_trades``, ...), in the order they appear in the report.
    series : dict[str, polars.DataFrame]
        The aggregated numbers behind each plot, keyed like ``plots``. Every frame has
        ``bucket_start_ns`` (int64 ns UTC), ``bucket_start_et`` (Datetime in the session
        time zone), then the plotted columns (see :func:`trades_per_bucket`,
        :func:`spread_per_bucket`, :func:`premium_per_bucket`). Only non-empty buckets.
    row_counts : dict[str, int]
        Rows per table (every table passed in, empty ones included).
    checks_passed : int
        Number of passing check outcomes.
    checks_failed : int
        Number of failing check outcomes (any severity).
    failed_checks : tuple[str, ...]
        ``table.check`` of every failing outcome.
    not_plotted : dict[str, str]
        Plot name -> why it was not drawn (no table, no rows, missing columns).
    """

    trade_date: dt.date
    underlying: str
    html: str
    markdown: str
    plots: dict[str, bytes]
    series: dict[str, pl.DataFrame] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    checks_passed: int = 0
    checks_failed: int = 0
    failed_checks: tuple[str, ...] = ()
    not_plotted: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, int | str]:
        """Scalar summary (JSON-serialisable) for asset metadata: rows per table
        (``rows.<table>``), checks passed / failed, and the plots drawn."""
        out: dict[str, int | str] = {f"rows.{name}": n for name, n in self.row_counts.items()}
        out["checks_passed"] = self.checks_passed
        out["checks_failed"] = self.checks_failed
        out["plots"] = ", ".join(self.plots)
        return out


# --- aggregation ------------------------------------------------------------------------


def _check_bucket_minutes(bucket_minutes: int) -> int:
    if isinstance(bucket_minutes, bool) or not isinstance(bucket_minutes, int) or bucket_minutes <= 0:
        raise ValueError(f"bucket_minutes must be a positive integer (minutes), got {bucket_minutes!r}")
    if bucket_minutes > 24 * 60:
        raise ValueError(f"bucket_minutes must be at most one day (1440 minutes), got {bucket_minutes}")
    return bucket_minutes


def _bucket_exprs(timezone: str, bucket_minutes: int) -> list[pl.Expr]:
    """Expressions adding ``bucket_start_ns`` to a frame with ``ts_ns``.

    The bucket start is the instant (ns UTC) whose wall-clock time in ``timezone`` is
    the event's wall-clock time floored to ``bucket_minutes`` after local midnight.
    """
    width = bucket_minutes * NS_PER_MINUTE
    local_ns = (
        pl.from_epoch(pl.col("ts_ns"), time_unit="ns")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(timezone)
        .dt.replace_time_zone(None)
        .dt.epoch("ns")
    )
    into_bucket = (local_ns % NS_PER_DAY) % width
    return [(pl.col("ts_ns") - into_bucket).alias("bucket_start_ns")]


def _with_et(frame: pl.DataFrame, timezone: str) -> pl.DataFrame:
    """Add ``bucket_start_et`` (Datetime in ``timezone``) after ``bucket_start_ns``; sort."""
    et = pl.from_epoch(pl.col("bucket_start_ns"), time_unit="ns").dt.replace_time_zone("UTC").dt.convert_time_zone(timezone)
    frame = frame.with_columns(et.alias("bucket_start_et")).sort("bucket_start_ns")
    rest = [c for c in frame.columns if c not in ("bucket_start_ns", "bucket_start_et")]
    return frame.select(["bucket_start_ns", "bucket_start_et", *rest])


def plot_columns(table: str) -> list[str]:
    """The columns of ``table`` the report's plots read (``ts_ns`` alone for a table it
    only counts): a large table need only bring these."""
    if table in TRADE_TABLES:
        extra = ["option_symbol", "right", "price"] if table == "option_trades" else []
        return ["ts_ns", "size", "canceled", *extra]
    if table in QUOTE_TABLES:
        return ["ts_ns", *QUOTE_TABLES[table]]
    if table == "option_contracts":
        return ["option_symbol", "multiplier"]
    return ["ts_ns"]


def _not_canceled(frame: pl.DataFrame) -> pl.Expr:
    if "canceled" in frame.columns:
        return pl.col("canceled").fill_null(False).not_()
    return pl.lit(True)


def trades_per_bucket(frame: pl.DataFrame, *, timezone: str, bucket_minutes: int) -> pl.DataFrame:
    """Trade count and volume per time bucket.

    Parameters
    ----------
    frame : polars.DataFrame
        A trade table with ``ts_ns`` (int64 ns UTC) and ``size`` (contracts or shares);
        rows with ``canceled`` true are left out.
    timezone : str
        IANA time zone the buckets are aligned in (America/New_York).
    bucket_minutes : int
        Bucket width, minutes.

    Returns
    -------
    polars.DataFrame
        ``bucket_start_ns`` (int64 ns UTC), ``bucket_start_et`` (Datetime, ``timezone``),
        ``trades`` (int64, prints), ``volume`` (int64, contracts or shares); one row per
        non-empty bucket, in time order.
    """
    _check_bucket_minutes(bucket_minutes)
    out = (
        frame.lazy()
        .filter(_not_canceled(frame))
        .select(["ts_ns", "size"])
        .with_columns(_bucket_exprs(timezone, bucket_minutes))
        .group_by("bucket_start_ns")
        .agg(pl.len().cast(pl.Int64).alias("trades"), pl.col("size").sum().cast(pl.Int64).alias("volume"))
        .collect()
    )
    return _with_et(out, timezone)


def _usable_quotes(frame: pl.DataFrame, bid: str, ask: str) -> pl.LazyFrame:
    return (
        frame.lazy()
        .select(["ts_ns", pl.col(bid).alias("bid"), pl.col(ask).alias("ask")])
        .filter(
            pl.col("bid").is_not_null()
            & pl.col("ask").is_not_null()
            & (pl.col("bid") > 0)
            & (pl.col("ask") > 0)
            & (pl.col("ask") >= pl.col("bid"))
        )
    )


def spread_per_bucket(
    frame: pl.DataFrame, *, bid: str, ask: str, timezone: str, bucket_minutes: int
) -> pl.DataFrame:
    """Median quoted spread per time bucket.

    A quote counts when both sides are present and positive and it is not crossed
    (ask >= bid); every instrument in the table is pooled.

    Parameters
    ----------
    frame : polars.DataFrame
        A quote table with ``ts_ns`` (int64 ns UTC) and the ``bid`` / ``ask`` columns.
    bid, ask : str
        Column names of the best bid and ask (dollars).
    timezone : str
        IANA time zone the buckets are aligned in.
    bucket_minutes : int
        Bucket width, minutes.

    Returns
    -------
    polars.DataFrame
        ``bucket_start_ns``, ``bucket_start_et``, ``quotes`` (int64, usable quotes),
        ``median_spread`` (float64, dollars, ask - bid), ``median_rel_spread_pct``
        (float64, percent of the mid (ask + bid) / 2).
    """
    _check_bucket_minutes(bucket_minutes)
    out = (
        _usable_quotes(frame, bid, ask)
        .with_columns(_bucket_exprs(timezone, bucket_minutes))
        .with_columns((pl.col("ask") - pl.col("bid")).alias("spread"))
        .with_columns((pl.col("spread") / ((pl.col("ask") + pl.col("bid")) / 2) * 100.0).alias("rel_pct"))
        .group_by("bucket_start_ns")
        .agg(
            pl.len().cast(pl.Int64).alias("quotes"),
            pl.col("spread").median().alias("median_spread"),
            pl.col("rel_pct").median().alias("median_rel_spread_pct"),
        )
        .collect()
    )
    return _with_et(out, timezone)


def premium_per_bucket(
    trades: pl.DataFrame,
    contracts: pl.DataFrame | None,
    *,
    timezone: str,
    bucket_minutes: int,
    default_multiplier: int,
) -> pl.DataFrame:
    """Option premium of calls and puts per time bucket.

    Parameters
    ----------
    trades : polars.DataFrame
        ``option_trades`` rows: ``ts_ns``, ``option_symbol``, ``right`` ('C'/'P'),
        ``price`` (dollars), ``size`` (contracts); canceled prints are left out.
    contracts : polars.DataFrame or None
        ``option_contracts`` rows (``option_symbol``, ``multiplier``), or None.
    timezone : str
        IANA time zone the buckets are aligned in.
    bucket_minutes : int
        Bucket width, minutes.
    default_multiplier : int
        Shares per contract when ``contracts`` does not name the contract (100).

    Returns
    -------
    polars.DataFrame
        ``bucket_start_ns``, ``bucket_start_et``, ``call_premium``, ``put_premium``
        (float64, dollars: price x size x multiplier), ``call_trades``, ``put_trades``
        (int64, prints).
    """
    _check_bucket_minutes(bucket_minutes)
    lf = trades.lazy().filter(_not_canceled(trades)).select(["ts_ns", "option_symbol", "right", "price", "size"])
    if contracts is not None and contracts.height and {"option_symbol", "multiplier"} <= set(contracts.columns):
        mult = (
            contracts.lazy()
            .select(["option_symbol", pl.col("multiplier").cast(pl.Int64)])
            .filter(pl.col("multiplier").is_not_null())
            .unique("option_symbol", keep="first")
        )
        lf = lf.join(mult, on="option_symbol", how="left", maintain_order="left")
    else:
        lf = lf.with_columns(pl.lit(None, dtype=pl.Int64).alias("multiplier"))
    is_call = (pl.col("right") == "C").fill_null(False)
    is_put = (pl.col("right") == "P").fill_null(False)
    premium = pl.col("price") * pl.col("size") * pl.col("multiplier").fill_null(default_multiplier)
    rows = lf.select(
        _bucket_exprs(timezone, bucket_minutes)[0],
        pl.when(is_call).then(premium).otherwise(0.0).alias("call_premium"),
        pl.when(is_put).then(premium).otherwise(0.0).alias("put_premium"),
        is_call.cast(pl.Int64).alias("call_trades"),
        is_put.cast(pl.Int64).alias("put_trades"),
    ).collect()
    # premium added up in the trades' order: the same bits on every run (m17_platform.ordered)
    out = group_sums(rows, ["bucket_start_ns"], ["call_premium", "put_premium", "call_trades", "put_trades"])
    return _with_et(out, timezone)


# --- plotting -----------------------------------------------------------------------------


def _tz_label(timezone: str) -> str:
    return "ET" if timezone == "America/New_York" else timezone


def _new_figure(settings: ReportSettings, nrows: int) -> tuple[Figure, list]:
    fig = Figure(figsize=PLOT_SIZE_IN, dpi=settings.dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, 1, sharex=True, squeeze=False)[:, 0].tolist()
    return fig, axes


def _png(fig: Figure, settings: ReportSettings) -> bytes:
    buf = io.BytesIO()
    try:
        # no software version or date in the file: the same bytes on every build
        fig.savefig(buf, format="png", dpi=settings.dpi, metadata={"Software": None, "Date": None})
    finally:
        fig.clear()
    return buf.getvalue()


def _grid(series: pl.DataFrame, bucket_minutes: int, columns: Sequence[str]) -> tuple:
    """Spread ``series`` onto a gap-free bucket grid for plotting.

    Returns
    -------
    (edges, values) : tuple[numpy.ndarray, dict[str, numpy.ndarray]]
        ``edges``: n + 1 bucket boundaries as naive wall-clock ``datetime64[ns]``;
        ``values``: per column, n floats with NaN in buckets that had no rows.
    """
    width = np.timedelta64(bucket_minutes * NS_PER_MINUTE, "ns")
    starts = series.get_column("bucket_start_et").dt.replace_time_zone(None).to_numpy().astype("datetime64[ns]")
    first = starts.min()
    n = int((starts.max() - first) // width) + 1
    edges = first + width * np.arange(n + 1)
    idx = ((starts - first) // width).astype(np.int64)
    values = {}
    for c in columns:
        v = np.full(n, np.nan)
        v[idx] = series.get_column(c).cast(pl.Float64).to_numpy()
        values[c] = v
    return edges, values


def _format_time_axis(ax, timezone: str) -> None:
    locator = mdates.AutoDateLocator(minticks=6, maxticks=14)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.set_xlabel(f"time ({_tz_label(timezone)})")


def _dollars(value: float, _pos=None) -> str:
    a = abs(value)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"${value / scale:.3g}{suffix}"
    return f"${value:.3g}"


def _style(ax) -> None:
    ax.grid(True, axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _bars(ax, edges, values, color, label=None) -> None:
    """Bucket totals as a filled step outline (one artist, not one patch per bucket);
    empty buckets are drawn as 0."""
    ax.stairs(np.nan_to_num(values), edges, fill=True, color=color, label=label)


def _line(ax, edges, values, color) -> None:
    """Bucket medians at bucket midpoints; empty buckets break the line."""
    mid = edges[:-1] + (edges[1:] - edges[:-1]) / 2
    ax.plot(mid, values, marker=".", markersize=4, color=color, linewidth=1)


def _plot_trades(series, title, unit, settings, sessions) -> bytes:
    fig, (ax_n, ax_v) = _new_figure(settings, 2)
    edges, v = _grid(series, settings.bucket_minutes, ("trades", "volume"))
    _bars(ax_n, edges, v["trades"], _BAR_COLOR)
    ax_n.set_ylabel(f"trades per {settings.bucket_minutes} min")
    _bars(ax_v, edges, v["volume"], _LINE_COLOR)
    ax_v.set_ylabel(f"volume ({unit})\nper {settings.bucket_minutes} min", parse_math=False)
    for ax in (ax_n, ax_v):
        ax.yaxis.set_major_formatter(mticker.EngFormatter(sep=""))
        _style(ax)
    _format_time_axis(ax_v, sessions.timezone)
    fig.suptitle(title, parse_math=False)
    return _png(fig, settings)


def _plot_spread(series, title, relative, settings, sessions) -> bytes:
    fig, (ax_s, ax_b) = _new_figure(settings, 2)
    cols = ("median_spread", "median_rel_spread_pct" if relative else "quotes")
    edges, v = _grid(series, settings.bucket_minutes, cols)
    _line(ax_s, edges, v["median_spread"], _LINE_COLOR)
    ax_s.set_ylabel("median spread ($)", parse_math=False)
    ax_s.yaxis.set_major_formatter(mticker.FuncFormatter(lambda val, _p: f"{val:.4g}"))
    if relative:
        _line(ax_b, edges, v["median_rel_spread_pct"], _PUT_COLOR)
        ax_b.set_ylabel("median spread (% of mid)", parse_math=False)
    else:
        _bars(ax_b, edges, v["quotes"], _BAR_COLOR)
        ax_b.set_ylabel(f"usable quotes per {settings.bucket_minutes} min")
        ax_b.yaxis.set_major_formatter(mticker.EngFormatter(sep=""))
    for ax in (ax_s, ax_b):
        _style(ax)
    _format_time_axis(ax_b, sessions.timezone)
    fig.suptitle(title, parse_math=False)
    return _png(fig, settings)


def _plot_premium(series, title, settings, sessions) -> bytes:
    fig, (ax,) = _new_figure(settings, 1)
    edges, v = _grid(series, settings.bucket_minutes, ("call_premium", "put_premium"))
    calls = np.nan_to_num(v["call_premium"])
    _bars(ax, edges, calls, _CALL_COLOR, label="calls")
    ax.stairs(calls + np.nan_to_num(v["put_premium"]), edges, baseline=calls, fill=True, color=_PUT_COLOR, label="puts")
    ax.set_ylabel(f"premium ($) per {settings.bucket_minutes} min", parse_math=False)
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(_dollars))
    ax.margins(y=0.12)  # headroom for the legend
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", ncols=2, frameon=False)
    _style(ax)
    _format_time_axis(ax, sessions.timezone)
    fig.suptitle(title, parse_math=False)
    return _png(fig, settings)


# --- HTML / Markdown ------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
p.meta{color:#666;margin-top:0}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f6f8}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.95em}
tr.fail.error td{background:#fde8e8}tr.fail.warn td{background:#fff6db}
span.pass{color:#1b7f3b;font-weight:600}span.fail{color:#b42318;font-weight:600}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
ul.notplotted{color:#666;font-size:.9em}
""".strip()


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _fmt_value(key: str, value: object) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if "rate" in key.lower() and 0.0 <= value <= 1.0:
            return f"{value * 100:.4g}%"
        return f"{value:.6g}"
    if isinstance(value, (list, tuple, dict)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fmt_metadata(metadata: Mapping, limit: int = 8) -> str:
    # what the check found, not how long it took (the same report on a rerun)
    metadata = {k: v for k, v in metadata.items() if k not in TIMING_KEYS}
    items = [f"{k}={_fmt_value(str(k), v)}" for k, v in list(metadata.items())[:limit]]
    if len(metadata) > limit:
        items.append(f"(+{len(metadata) - limit} more)")
    return ", ".join(items)


def _manifest_fields(manifest: Mapping | None) -> tuple[str, str, str]:
    """(source, sha256 prefix, written_at) from a table's manifest, '' where absent."""
    if not manifest:
        return "", "", ""
    source = manifest.get("source", manifest.get("sources", ""))
    if isinstance(source, (list, tuple, set)):
        source = ", ".join(str(s) for s in source)
    sha = str(manifest.get("sha256", manifest.get("checksum", "")) or "")
    if sha.startswith("sha256:"):
        sha = sha[len("sha256:"):]
    written = manifest.get("written_at", "")
    if isinstance(written, (dt.datetime, dt.date)):
        written = written.isoformat()
    return str(source or ""), sha[:SHA_PREFIX_CHARS], str(written or "")


def _ordered_tables(tables: Mapping[str, pl.DataFrame]) -> list[str]:
    known = [name for name in schemas.ALL_TABLES if name in tables]
    return known + sorted(name for name in tables if name not in schemas.ALL_TABLES)


def _md_cell(value: object) -> str:
    """Text for Markdown: HTML-escaped (Markdown passes raw HTML through), pipes escaped."""
    return html.escape(str(value), quote=False).replace("|", "\\|").replace("\n", " ")


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png_size(png: bytes) -> tuple[int, int]:
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


# --- the report -----------------------------------------------------------------------------


def _as_polars(frame) -> pl.DataFrame:
    if isinstance(frame, pl.DataFrame):
        return frame
    return pl.DataFrame(pl.from_arrow(frame))  # pyarrow.Table / RecordBatch


def build_daily_report(
    trade_date: dt.date,
    underlying: str,
    tables: Mapping[str, pl.DataFrame],
    checks: Mapping[str, Sequence[CheckOutcome]],
    *,
    settings: ReportSettings = DEFAULT.report,
    sessions: SessionSettings = DEFAULT.sessions,
    manifests: Mapping[str, Mapping] | None = None,
    universe: UniverseSettings = DEFAULT.universe,
    generated_at: dt.datetime | None = None,
) -> DailyReport:
    """Build the daily report of one partition.

    Parameters
    ----------
    trade_date : datetime.date
        The partition's trade date.
    underlying : str
        The partition's underlying (escaped wherever it is shown).
    tables : Mapping[str, polars.DataFrame]
        Table name -> the partition's rows (raw tables in their schemas; other tables
        are counted only). ``pyarrow.Table`` values are accepted too.
    checks : Mapping[str, Sequence[CheckOutcome]]
        Table name -> the outcomes of its quality checks.
    settings : ReportSettings
        ``bucket_minutes`` (plot bucket width, minutes) and ``dpi`` (PNG resolution);
        each plot is :data:`PLOT_SIZE_IN` inches, i.e. ``10 x dpi`` by ``5 x dpi`` pixels.
    sessions : SessionSettings
        ``timezone``: the wall clock buckets are aligned to and axes are labelled in.
    manifests : Mapping[str, Mapping], optional
        Table name -> its lake manifest; ``source`` (or ``sources``), ``sha256`` (or
        ``checksum``) and ``written_at`` are shown beside the row count when present.
    universe : UniverseSettings
        ``default_multiplier``: shares per contract when ``option_contracts`` does not
        name a contract (100).
    generated_at : datetime.datetime, optional
        Shown in the header when given; left out by default so that rebuilding a
        partition's report from the same inputs gives the same bytes.

    Returns
    -------
    DailyReport

    Raises
    ------
    ValueError
        If ``settings.bucket_minutes`` is not a positive integer of at most 1440.
    """
    _check_bucket_minutes(settings.bucket_minutes)
    tz = sessions.timezone
    tzl = _tz_label(tz)
    bm = settings.bucket_minutes
    frames = {name: _as_polars(frame) for name, frame in tables.items()}
    manifests = manifests or {}

    plots: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    series: dict[str, pl.DataFrame] = {}
    not_plotted: dict[str, str] = {}
    key_figures: list[tuple[str, str]] = []

    def usable(plot: str, table: str, columns: Sequence[str]) -> pl.DataFrame | None:
        frame = frames.get(table)
        if frame is None:
            not_plotted[plot] = f"no {table} table"
            return None
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            not_plotted[plot] = f"{table} lacks columns {missing}"
            return None
        if frame.height == 0:
            not_plotted[plot] = f"{table} has no rows"
            return None
        return frame

    # trades
    for table in TRADE_TABLES:
        name = f"trades.{table}"
        frame = usable(name, table, ("ts_ns", "size"))
        if frame is None:
            continue
        s = trades_per_bucket(frame, timezone=tz, bucket_minutes=bm)
        if s.height == 0:
            not_plotted[name] = f"{table} has only canceled prints"
            continue
        unit = schemas.table(table).unit("size") or "units"
        series[name] = s
        plots[name] = _plot_trades(
            s, f"{underlying} {trade_date.isoformat()}: {table}, trades and volume per {bm} min ({tzl})",
            unit, settings, sessions,
        )
        captions[name] = (
            f"{table}: number of prints and volume ({unit}) per {bm}-minute bucket, {tzl}; canceled prints left out."
        )
        key_figures.append((f"{table}: trades / volume ({unit})", f"{int(s['trades'].sum()):,} / {int(s['volume'].sum()):,}"))

    # premium
    name = "premium.option_trades"
    frame = usable(name, "option_trades", ("ts_ns", "option_symbol", "right", "price", "size"))
    if frame is not None:
        s = premium_per_bucket(
            frame, frames.get("option_contracts"), timezone=tz, bucket_minutes=bm,
            default_multiplier=universe.default_multiplier,
        )
        if s.height:
            series[name] = s
            plots[name] = _plot_premium(
                s, f"{underlying} {trade_date.isoformat()}: option premium per {bm} min, calls vs puts ({tzl})",
                settings, sessions,
            )
            captions[name] = (
                f"option_trades: premium in dollars (price x size x multiplier; multiplier from option_contracts, "
                f"else {universe.default_multiplier}) per {bm}-minute bucket, {tzl}, stacked calls and puts."
            )
            calls, puts = float(s["call_premium"].sum()), float(s["put_premium"].sum())
            ratio = f"{puts / calls:.2f}" if calls > 0 else "n/a"
            key_figures.append(("option premium: calls / puts ($)", f"{_dollars(calls)} / {_dollars(puts)} (put/call {ratio})"))
        else:
            not_plotted[name] = "option_trades has only canceled prints"

    # spreads
    for table, (bid, ask) in QUOTE_TABLES.items():
        name = f"spread.{table}"
        frame = usable(name, table, ("ts_ns", bid, ask))
        if frame is None:
            continue
        s = spread_per_bucket(frame, bid=bid, ask=ask, timezone=tz, bucket_minutes=bm)
        if s.height == 0:
            not_plotted[name] = f"{table} has no two-sided, positive, uncrossed quotes"
            continue
        relative = table == "option_quotes"
        if not relative:
            s = s.drop("median_rel_spread_pct")
        series[name] = s
        what = "top-of-book spread" if table == "futures_mbp10" else "quoted spread"
        plots[name] = _plot_spread(
            s,
            f"{underlying} {trade_date.isoformat()}: {table}, median {what} per {bm} min ({tzl})",
            relative, settings, sessions,
        )
        captions[name] = (
            f"{table}: median {what} ({ask} - {bid}, dollars"
            + (", and percent of the mid" if relative else "")
            + f") per {bm}-minute bucket, {tzl}; quotes with a missing or non-positive side, or crossed, left out"
            + ("." if relative else "; lower panel: usable quotes per bucket.")
        )
        key_figures.append((f"{table}: usable quotes", f"{int(s['quotes'].sum()):,} of {frame.height:,}"))

    row_counts = {name: frames[name].height for name in _ordered_tables(frames)}
    outcomes = [(table, o) for table, outs in checks.items() for o in outs]
    passed = sum(1 for _, o in outcomes if o.passed)
    failed_list = [(t, o) for t, o in outcomes if not o.passed]
    failed_errors = sum(1 for _, o in failed_list if str(o.severity).upper() == "ERROR")
    failed_warns = len(failed_list) - failed_errors
    check_summary = (
        f"{len(outcomes)} check{'' if len(outcomes) == 1 else 's'}: {passed} passed, {len(failed_list)} failed "
        f"({failed_errors} ERROR, {failed_warns} WARN)"
    )

    title = f"{underlying} daily report, {trade_date.isoformat()}"
    doc = _render_html(
        title=title, trade_date=trade_date, underlying=underlying, settings=settings, tzl=tzl,
        row_counts=row_counts, manifests=manifests, outcomes=outcomes, check_summary=check_summary,
        plots=plots, captions=captions, not_plotted=not_plotted, key_figures=key_figures,
        generated_at=generated_at,
    )
    md = _render_markdown(
        title=title, row_counts=row_counts, check_summary=check_summary, failed=failed_list,
        plots=plots, captions=captions,
    )
    return DailyReport(
        trade_date=trade_date,
        underlying=underlying,
        html=doc,
        markdown=md,
        plots=plots,
        series=series,
        row_counts=row_counts,
        checks_passed=passed,
        checks_failed=len(failed_list),
        failed_checks=tuple(f"{t}.{o.name}" for t, o in failed_list),
        not_plotted=not_plotted,
    )


def _render_html(
    *, title, trade_date, underlying, settings, tzl, row_counts, manifests, outcomes, check_summary,
    plots, captions, not_plotted, key_figures, generated_at,
) -> str:
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        f"<header><h1>{_e(title)}</h1>",
    ]
    meta = f"Trade date {_e(trade_date.isoformat())} &middot; underlying {_e(underlying)} &middot; " \
           f"times in {_e(tzl)}, {settings.bucket_minutes}-minute buckets"
    if generated_at is not None:
        meta += f" &middot; generated {_e(generated_at.isoformat(timespec='seconds'))}"
    out.append(f'<p class="meta">{meta}</p></header>')

    if key_figures:
        out.append('<section id="key-figures"><h2>Key figures</h2><table><tbody>')
        for label, value in key_figures:
            out.append(f'<tr><th scope="row">{_e(label)}</th><td class="num">{_e(value)}</td></tr>')
        out.append("</tbody></table></section>")

    with_manifest = any(manifests.get(name) for name in row_counts)
    out.append('<section id="tables"><h2>Tables (rows)</h2><table><thead><tr><th>table</th><th>rows</th>')
    if with_manifest:
        out.append("<th>source</th><th>sha256</th><th>written at</th>")
    out.append("</tr></thead><tbody>")
    for name, n in row_counts.items():
        out.append(f'<tr><td class="mono">{_e(name)}</td><td class="num">{n:,}</td>')
        if with_manifest:
            source, sha, written = _manifest_fields(manifests.get(name))
            out.append(f"<td>{_e(source)}</td><td class=\"mono\">{_e(sha)}</td><td>{_e(written)}</td>")
        out.append("</tr>")
    if not row_counts:
        out.append('<tr><td colspan="2">no tables</td></tr>')
    out.append("</tbody></table></section>")

    out.append(f'<section id="checks"><h2>Quality checks</h2><p>{_e(check_summary)}</p>')
    if outcomes:
        out.append(
            "<table><thead><tr><th>table</th><th>check</th><th>severity</th><th>result</th>"
            "<th>description</th><th>metadata</th></tr></thead><tbody>"
        )
        for table, o in outcomes:
            sev = str(o.severity).upper()
            cls = "" if o.passed else f' class="fail {"error" if sev == "ERROR" else "warn"}"'
            result = '<span class="pass">PASS</span>' if o.passed else '<span class="fail">FAIL</span>'
            out.append(
                f'<tr{cls}><td class="mono">{_e(table)}</td><td class="mono">{_e(o.name)}</td><td>{_e(sev)}</td>'
                f"<td>{result}</td><td>{_e(o.description)}</td><td class=\"mono\">{_e(_fmt_metadata(o.metadata or {}))}</td></tr>"
            )
        out.append("</tbody></table>")
    out.append("</section>")

    out.append('<section id="plots"><h2>Intraday</h2>')
    if not plots:
        out.append("<p>No plots: no table with rows supports one.</p>")
    for name, png in plots.items():
        w, h = _png_size(png)
        out.append(
            f'<figure id="{_e(name)}"><img src="{_data_uri(png)}" alt="{_e(captions[name])}" width="{w}" height="{h}">'
            f"<figcaption>{_e(captions[name])}</figcaption></figure>"
        )
    if not_plotted:
        out.append('<p>Not plotted:</p><ul class="notplotted">')
        for name, why in not_plotted.items():
            out.append(f"<li><code>{_e(name)}</code>: {_e(why)}</li>")
        out.append("</ul>")
    out.append("</section></body></html>")
    return "\n".join(out) + "\n"


def _render_markdown(*, title, row_counts, check_summary, failed, plots, captions) -> str:
    lines = [f"### {_md_cell(title)}", "", "| table | rows |", "|---|---:|"]
    lines += [f"| {_md_cell(name)} | {n:,} |" for name, n in row_counts.items()]
    if not row_counts:
        lines.append("| (no tables) | |")
    lines += ["", f"**Checks:** {_md_cell(check_summary)}"]
    if failed:
        lines += ["", "| table | check | severity | result |", "|---|---|---|---|"]
        for table, o in failed[:MARKDOWN_MAX_FAILED]:
            lines.append(f"| {_md_cell(table)} | {_md_cell(o.name)} | {_md_cell(str(o.severity).upper())} | FAIL |")
        if len(failed) > MARKDOWN_MAX_FAILED:
            lines.append(f"| ... | {len(failed) - MARKDOWN_MAX_FAILED} more | | |")
    text = "\n".join(lines) + "\n"
    if plots:
        name, png = next(iter(plots.items()))
        image = f"\n![{_md_cell(name)}]({_data_uri(png)})\n\n*{_md_cell(captions[name])}*\n"
        if len(text) + len(image) <= MARKDOWN_BUDGET_CHARS:
            text += image
        else:
            text += f"\n*(plot {_md_cell(name)} left out: over the {MARKDOWN_BUDGET_CHARS:,}-character budget; see the HTML report)*\n"
    return text


def write_report(report: DailyReport, path: Path) -> Path:
    """Write ``report.html`` to ``path`` atomically.

    The bytes go to a temporary file in the same directory, are flushed and fsynced,
    then the file is renamed over ``path`` (``os.replace``): a reader sees the old
    report or the new one, never a partial file. Parent directories are created.

    Parameters
    ----------
    report : DailyReport
        The report to write.
    path : pathlib.Path
        Destination file (``.html``).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = report.html.encode("utf-8")
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # mode honours the umask
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable (POSIX); not possible everywhere
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path
