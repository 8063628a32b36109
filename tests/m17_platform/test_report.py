"""Tests of the daily report: numbers behind the plots against an independent count,
embedded PNGs, escaping, empty tables, Markdown budget and the atomic write."""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import re
import statistics
from collections import defaultdict
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from matplotlib import image as mpimg

from m17_platform import report as report_mod
from m17_platform import schemas
from m17_platform.quality import CheckOutcome
from m17_platform.report import DailyReport, build_daily_report, write_report
from m17_platform.settings import ReportSettings

ET = ZoneInfo("America/New_York")
DAY = dt.date(2016, 6, 1)
NS = 1_000_000_000
OPEN_NS = int(dt.datetime(2016, 6, 1, 9, 30, tzinfo=ET).timestamp()) * NS
CLOSE_NS = int(dt.datetime(2016, 6, 1, 16, 0, tzinfo=ET).timestamp()) * NS
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DATA_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")

# contract -> multiplier in option_contracts (None: not listed, the default 100 applies)
CONTRACTS = {
    "O:SPY160601C00210000": 100,
    "O:SPY160601P00209000": 100,
    "O:SPY160601C00211000": 10,  # a mini option
    "O:SPY160601P00208000": None,
}


# --- building schema-conformant frames ------------------------------------------------


def _default(field, n: int):
    import pyarrow as pa

    if field.nullable:
        return [None] * n
    t = field.type
    if pa.types.is_string(t):
        return ["SPY" if field.name == "underlying" else "test"] * n
    if pa.types.is_integer(t):
        return np.zeros(n, dtype=np.int64)
    if pa.types.is_floating(t):
        return np.ones(n)
    if pa.types.is_boolean(t):
        return [False] * n
    if pa.types.is_date(t):
        return [DAY] * n
    raise TypeError(f"no default for {field}")


def make_table(spec: schemas.TableSchema, n: int, **columns) -> pl.DataFrame:
    """``n`` rows of ``spec`` with the given columns, defaults elsewhere; checked by
    ``schemas.conform`` so the frame has exactly the lake schema."""
    empty = schemas.empty_frame(spec)
    unknown = set(columns) - set(empty.columns)
    assert not unknown, unknown
    data = {f.name: columns.get(f.name, _default(f, n)) for f in spec.schema}
    frame = pl.DataFrame(data, schema=empty.schema)
    return pl.from_arrow(schemas.conform(frame, spec, origin="test"))


def _session_times(rng, n: int) -> np.ndarray:
    # whole milliseconds inside 09:30-16:00 ET
    return np.sort(rng.integers(OPEN_NS // 1_000_000, CLOSE_NS // 1_000_000, n)) * 1_000_000


def build_tables(seed: int = 7) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    symbols = list(CONTRACTS)

    n = 300
    sym = rng.choice(symbols, n)
    canceled = np.zeros(n, dtype=bool)
    canceled[rng.choice(n, 5, replace=False)] = True
    option_trades = make_table(
        schemas.OPTION_TRADES, n,
        ts_ns=_session_times(rng, n), sequence=np.arange(n), option_symbol=list(sym),
        root=["SPY"] * n, expiration=[DAY] * n,
        strike=[float(s[-8:]) / 1000 for s in sym], right=[s[11] for s in sym],
        price=np.round(rng.uniform(0.05, 3.0, n), 2), size=rng.integers(1, 60, n),
        canceled=list(canceled),
    )

    n = 1200
    sym = rng.choice(symbols, n)
    bid = np.round(rng.uniform(0.05, 3.0, n), 2)
    ask = bid + 0.01 * rng.integers(0, 6, n)
    bid_l: list = list(bid)
    ask_l: list = list(ask)
    for i in rng.choice(n, 30, replace=False):  # one side missing, zero or crossed
        kind = i % 3
        if kind == 0:
            bid_l[i] = None
        elif kind == 1:
            bid_l[i] = 0.0
        else:
            bid_l[i], ask_l[i] = ask_l[i] + 0.05, bid_l[i]
    option_quotes = make_table(
        schemas.OPTION_QUOTES, n,
        ts_ns=_session_times(rng, n), sequence=np.arange(n), option_symbol=list(sym),
        root=["SPY"] * n, expiration=[DAY] * n,
        strike=[float(s[-8:]) / 1000 for s in sym], right=[s[11] for s in sym],
        bid=bid_l, ask=ask_l, bid_size=rng.integers(1, 100, n), ask_size=rng.integers(1, 100, n),
    )

    n = 400
    stock_trades = make_table(
        schemas.STOCK_TRADES, n,
        ts_ns=_session_times(rng, n), sequence=np.arange(n), symbol=["SPY"] * n,
        price=np.round(rng.uniform(209.0, 211.0, n), 2), size=rng.integers(1, 500, n),
    )

    n = 500
    sbid = np.round(rng.uniform(209.0, 211.0, n), 2)
    sask: list = list(sbid + 0.01 * rng.integers(1, 4, n))
    sbid_l: list = list(sbid)
    sask[3] = None
    sbid_l[10] = -1.0
    stock_quotes = make_table(
        schemas.STOCK_QUOTES, n,
        ts_ns=_session_times(rng, n), sequence=np.arange(n), symbol=["SPY"] * n, bid=sbid_l, ask=sask,
    )

    n = 200
    fbid = np.round(rng.uniform(2090.0, 2110.0, n) * 4) / 4
    futures_mbp10 = make_table(
        schemas.FUTURES_MBP10, n,
        ts_ns=_session_times(rng, n), sequence=np.arange(n), symbol=["ESM6"] * n, instrument_id=[1] * n,
        action=["A"] * n, side=["B"] * n, bid_px_00=list(fbid), ask_px_00=list(fbid + 0.25 * rng.integers(1, 3, n)),
    )

    listed = [s for s, m in CONTRACTS.items() if m is not None]
    option_contracts = make_table(
        schemas.OPTION_CONTRACTS, len(listed),
        option_symbol=listed, root=["SPY"] * len(listed), expiration=[DAY] * len(listed),
        strike=[float(s[-8:]) / 1000 for s in listed], right=[s[11] for s in listed],
        multiplier=[CONTRACTS[s] for s in listed], expiry_ts_ns=[CLOSE_NS] * len(listed),
    )
    return {
        "option_trades": option_trades,
        "option_quotes": option_quotes,
        "stock_trades": stock_trades,
        "stock_quotes": stock_quotes,
        "futures_trades": schemas.empty_frame(schemas.FUTURES_TRADES),
        "futures_mbp10": futures_mbp10,
        "option_contracts": option_contracts,
    }


CHECKS = {
    "option_quotes": [
        CheckOutcome("schema", True, "ERROR", "columns and dtypes match the schema", {"rows": 1200}),
        CheckOutcome(
            "bid_le_ask", False, "ERROR", "share of two-sided quotes with bid <= ask >= 99.9%",
            {"rate": 0.9917, "violations": 10, "threshold": 0.999},
        ),
    ],
    "stock_trades": [CheckOutcome("duplicates", True, "WARN", "duplicate rate <= 0.1%", {"rate": 0.0})],
}


@pytest.fixture(scope="module")
def tables() -> dict[str, pl.DataFrame]:
    return build_tables()


@pytest.fixture(scope="module")
def report(tables) -> DailyReport:
    manifests = {
        "option_trades": {
            "source": "polygon.flat_files",
            "sha256": "ab" * 32,
            "written_at": "2016-06-02T01:00:00+00:00",
        }
    }
    return build_daily_report(DAY, "SPY", tables, CHECKS, manifests=manifests)


# --- independent reference computations (pure python) ----------------------------------


def bucket_start(ts_ns: int, minutes: int) -> dt.datetime:
    t = dt.datetime.fromtimestamp(ts_ns // NS, ET)
    m = t.hour * 60 + t.minute
    m -= m % minutes
    return t.replace(hour=m // 60, minute=m % 60, second=0, microsecond=0)


def _ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * NS


def series_dict(frame: pl.DataFrame, *cols: str) -> dict[int, tuple]:
    return {row[0]: tuple(row[1:]) for row in frame.select(["bucket_start_ns", *cols]).iter_rows()}


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG_SIGNATURE
    assert png[12:16] == b"IHDR"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


# --- tests -------------------------------------------------------------------------------


def test_trades_per_bucket_matches_independent_count(report, tables):
    for minutes in (5,):
        expected: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for ts, size, canceled in tables["option_trades"].select(["ts_ns", "size", "canceled"]).iter_rows():
            if canceled:
                continue
            b = _ns(bucket_start(ts, minutes))
            expected[b][0] += 1
            expected[b][1] += size
        got = series_dict(report.series["trades.option_trades"], "trades", "volume")
        assert got == {k: tuple(v) for k, v in expected.items()}
        assert sum(v[0] for v in got.values()) == 295  # 300 prints, 5 canceled


def test_bucket_start_et_is_wall_clock_aligned(report):
    s = report.series["trades.stock_trades"]
    starts = s["bucket_start_et"].to_list()
    assert starts == sorted(starts)
    assert all(t.tzinfo is not None and t.utcoffset() == dt.timedelta(hours=-4) for t in starts)  # EDT
    assert all(t.minute % 5 == 0 and t.second == 0 for t in starts)
    assert starts[0] >= dt.datetime(2016, 6, 1, 9, 30, tzinfo=ET)
    assert starts[-1] <= dt.datetime(2016, 6, 1, 15, 55, tzinfo=ET)
    assert [_ns(t) for t in starts] == s["bucket_start_ns"].to_list()


@pytest.mark.parametrize(("minutes", "n_buckets", "first"), [(15, 26, dt.time(9, 30)), (7, 57, dt.time(9, 27))])
def test_other_bucket_widths_align_to_local_midnight(tables, minutes, n_buckets, first):
    r = build_daily_report(
        DAY, "SPY", {"stock_trades": tables["stock_trades"]}, {},
        settings=ReportSettings(bucket_minutes=minutes, dpi=40),
    )
    expected: dict[int, int] = defaultdict(int)
    for (ts,) in tables["stock_trades"].select("ts_ns").iter_rows():
        expected[_ns(bucket_start(ts, minutes))] += 1
    got = series_dict(r.series["trades.stock_trades"], "trades")
    assert got == {k: (v,) for k, v in expected.items()}
    # at most 26 buckets of 15 min (09:30 .. 15:45) or 57 of 7 min (09:27 = 81 x 7 min after midnight .. 15:59)
    assert n_buckets - 2 <= len(got) <= n_buckets
    assert r.series["trades.stock_trades"]["bucket_start_et"][0].time() == first
    assert png_size(r.plots["trades.stock_trades"]) == (400, 200)  # 10 x 5 inches at 40 dpi


def test_spread_medians_match_independent_computation(report, tables):
    for table, bid_col, ask_col in (
        ("option_quotes", "bid", "ask"),
        ("stock_quotes", "bid", "ask"),
        ("futures_mbp10", "bid_px_00", "ask_px_00"),
    ):
        spreads: dict[int, list[float]] = defaultdict(list)
        rel: dict[int, list[float]] = defaultdict(list)
        for ts, bid, ask in tables[table].select(["ts_ns", bid_col, ask_col]).iter_rows():
            if bid is None or ask is None or bid <= 0 or ask <= 0 or ask < bid:
                continue
            b = _ns(bucket_start(ts, 5))
            spreads[b].append(ask - bid)
            rel[b].append((ask - bid) / ((ask + bid) / 2) * 100)
        s = report.series[f"spread.{table}"]
        got = series_dict(s, "quotes", "median_spread")
        assert set(got) == set(spreads)
        for b, values in spreads.items():
            assert got[b][0] == len(values)
            assert got[b][1] == pytest.approx(statistics.median(values), abs=1e-12)
        if table == "option_quotes":
            got_rel = series_dict(s, "median_rel_spread_pct")
            for b, values in rel.items():
                assert got_rel[b][0] == pytest.approx(statistics.median(values), rel=1e-12)
        else:
            assert "median_rel_spread_pct" not in s.columns
    # 30 of the 1200 option quotes were one-sided, zero or crossed
    assert report.series["spread.option_quotes"]["quotes"].sum() == 1200 - 30


def test_premium_uses_contract_multiplier_or_default(report, tables):
    expected: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for ts, sym, right, price, size, canceled in tables["option_trades"].select(
        ["ts_ns", "option_symbol", "right", "price", "size", "canceled"]
    ).iter_rows():
        if canceled:
            continue
        mult = CONTRACTS[sym] if CONTRACTS[sym] is not None else 100
        expected[_ns(bucket_start(ts, 5))][0 if right == "C" else 1] += price * size * mult
    got = series_dict(report.series["premium.option_trades"], "call_premium", "put_premium")
    assert set(got) == set(expected)
    for b, (calls, puts) in expected.items():
        assert got[b][0] == pytest.approx(calls, rel=1e-12)
        assert got[b][1] == pytest.approx(puts, rel=1e-12)


def test_html_has_row_counts_manifest_and_checks(report, tables):
    doc = report.html
    assert doc.startswith("<!DOCTYPE html>")
    assert "SPY daily report, 2016-06-01" in doc
    assert '<td class="mono">option_quotes</td><td class="num">1,200</td>' in doc
    assert '<td class="mono">stock_trades</td><td class="num">400</td>' in doc
    assert '<td class="mono">futures_trades</td><td class="num">0</td>' in doc
    assert report.row_counts == {name: frame.height for name, frame in tables.items()}
    # manifest: source, sha256 prefix (not the whole digest), written_at
    assert "polygon.flat_files" in doc and "ab" * 6 in doc and "ab" * 32 not in doc
    assert "2016-06-02T01:00:00+00:00" in doc
    # check table: the failing check's row says FAIL, with its metadata
    rows = re.findall(r"<tr[^>]*>.*?</tr>", doc, flags=re.S)
    failing = [r for r in rows if "bid_le_ask" in r]
    assert len(failing) == 1
    assert "FAIL" in failing[0] and "PASS" not in failing[0] and "ERROR" in failing[0]
    assert "rate=99.17%" in failing[0] and "violations=10" in failing[0]
    passing = [r for r in rows if ">duplicates<" in r]
    assert "PASS" in passing[0] and "FAIL" not in passing[0]
    assert "3 checks: 2 passed, 1 failed (1 ERROR, 0 WARN)" in doc
    assert (report.checks_passed, report.checks_failed) == (2, 1)
    assert report.failed_checks == ("option_quotes.bid_le_ask",)
    # self-contained: no external references, no script
    assert "<script" not in doc and "http://" not in doc and "https://" not in doc
    assert not re.search(r'(src|href)="(?!data:)', doc)


def test_plots_present_only_where_data_supports_them(report):
    assert list(report.plots) == [
        "trades.option_trades",
        "trades.stock_trades",
        "premium.option_trades",
        "spread.option_quotes",
        "spread.stock_quotes",
        "spread.futures_mbp10",
    ]
    assert "trades.futures_trades" not in report.plots  # the table is empty
    assert report.not_plotted["trades.futures_trades"] == "futures_trades has no rows"
    assert set(report.series) == set(report.plots)


def test_embedded_pngs_decode_with_expected_size(report):
    uris = DATA_URI.findall(report.html)
    assert len(uris) == len(report.plots)
    decoded = [base64.b64decode(u, validate=True) for u in uris]
    assert decoded == list(report.plots.values())
    w_in, h_in = report_mod.PLOT_SIZE_IN
    dpi = ReportSettings().dpi
    for png in decoded:
        assert png_size(png) == (round(w_in * dpi), round(h_in * dpi)) == (900, 450)
        pixels = mpimg.imread(io.BytesIO(png), format="png")  # decodes the whole image
        assert pixels.shape[:2] == (450, 900)
        assert pixels[..., :3].std() > 0.05  # something was drawn
    assert 'width="900" height="450"' in report.html


def test_markdown_is_short_with_first_plot(report):
    md = report.markdown
    assert len(md) < 200_000
    assert "| option_quotes | 1,200 |" in md
    assert "3 checks: 2 passed, 1 failed" in md
    assert "| option_quotes | bid_le_ask | ERROR | FAIL |" in md
    uris = DATA_URI.findall(md)
    assert len(uris) == 1
    assert md.count("![trades.option_trades](data:image/png;base64,") == 1
    assert base64.b64decode(uris[0]) == report.plots["trades.option_trades"]


def test_empty_tables_give_no_plots_and_no_crash():
    tables = {name: schemas.empty_frame(spec) for name, spec in schemas.RAW_TABLES.items()}
    r = build_daily_report(DAY, "SPY", tables, {})
    assert r.plots == {} and r.series == {}
    assert set(r.row_counts.values()) == {0}
    assert "No plots" in r.html and "0 checks" in r.html
    assert DATA_URI.search(r.html) is None and DATA_URI.search(r.markdown) is None
    assert "trades.option_trades" in r.not_plotted and "spread.futures_mbp10" in r.not_plotted


def test_only_canceled_or_unusable_rows_give_no_plot(tables):
    trades = tables["option_trades"].with_columns(pl.lit(True).alias("canceled"))
    quotes = tables["stock_quotes"].with_columns(pl.lit(None, dtype=pl.Float64).alias("bid"))
    r = build_daily_report(DAY, "SPY", {"option_trades": trades, "stock_quotes": quotes}, {})
    assert r.plots == {}
    assert r.row_counts == {"option_trades": 300, "stock_quotes": 500}
    assert "canceled" in r.not_plotted["trades.option_trades"]


def test_text_is_escaped(tables):
    nasty = '<b>$SPY&"x"</b>'
    checks = {"stock_trades": [CheckOutcome("sorted<i>", False, "WARN", "<script>alert(1)</script> & more", {"k<": "v>"})]}
    r = build_daily_report(DAY, nasty, {"stock_trades": tables["stock_trades"]}, checks)
    doc = r.html
    assert "<script>" not in doc and "<b>" not in doc and "sorted<i>" not in doc
    assert "&lt;b&gt;$SPY&amp;&quot;x&quot;&lt;/b&gt;" in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in doc
    assert "sorted&lt;i&gt;" in doc and "k&lt;=v&gt;" in doc
    assert "<b>" not in r.markdown and "sorted<i>" not in r.markdown
    assert "&lt;b&gt;$SPY&amp;" in r.markdown and "| stock_trades | sorted&lt;i&gt; | WARN | FAIL |" in r.markdown
    assert "trades.stock_trades" in r.plots  # '$' in the title did not trip mathtext
    assert "WARN" in doc and "FAIL" in doc


def test_pyarrow_tables_are_accepted(tables):
    arrow = tables["stock_trades"].to_arrow()
    r = build_daily_report(DAY, "SPY", {"stock_trades": arrow}, {})
    assert r.row_counts == {"stock_trades": 400}
    assert "trades.stock_trades" in r.plots


def test_bad_bucket_minutes_raise(tables):
    for bad in (0, -5, 2000):
        with pytest.raises(ValueError, match="bucket_minutes"):
            build_daily_report(DAY, "SPY", {}, {}, settings=ReportSettings(bucket_minutes=bad))


def test_report_is_deterministic(tables):
    subset = {"stock_trades": tables["stock_trades"], "stock_quotes": tables["stock_quotes"]}
    a = build_daily_report(DAY, "SPY", subset, CHECKS)
    b = build_daily_report(DAY, "SPY", subset, CHECKS)
    assert a.html == b.html


def test_summary_is_scalar(report):
    s = report.summary()
    assert s["rows.option_quotes"] == 1200
    assert s["checks_failed"] == 1
    assert all(isinstance(v, (int, str)) for v in s.values())


def test_write_report_is_atomic(report, tmp_path, monkeypatch):
    target = tmp_path / "reports" / "2016-06-01" / "SPY.html"
    assert write_report(report, target) == target
    assert target.read_text(encoding="utf-8") == report.html
    assert os.listdir(target.parent) == ["SPY.html"]  # no temporary file left behind

    # a rerun replaces the file
    other = DailyReport(DAY, "SPY", "<!DOCTYPE html><p>second</p>", "", {})
    write_report(other, target)
    assert target.read_text(encoding="utf-8") == other.html
    assert os.listdir(target.parent) == ["SPY.html"]

    # a failure before the rename leaves the old file intact and no temporary file
    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(report_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_report(report, target)
    assert target.read_text(encoding="utf-8") == other.html
    assert os.listdir(target.parent) == ["SPY.html"]
