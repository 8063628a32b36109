"""The daily report of the same data is the same bytes: check timings are not shown, the
embedded PNGs carry no software or date stamp, and the premium adds up in a fixed order."""

import base64
import datetime as dt
import re

import numpy as np
import polars as pl

from m17_platform import schemas
from m17_platform.quality import TIMING_KEYS, CheckOutcome
from m17_platform.report import build_daily_report, premium_per_bucket

DAY = dt.date(2016, 6, 1)
NS = 1_000_000_000
OPEN_NS = 1_464_787_800 * NS  # 2016-06-01 09:30 ET
DATA_URI = re.compile(rb"data:image/png;base64,([A-Za-z0-9+/=]+)")


def _trades(n: int = 2_000, seed: int = 5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    symbols = [f"O:SPY160601{r}00{k}000" for r in "CP" for k in (208, 209, 210, 211)]
    sym = rng.choice(symbols, n)
    frame = pl.DataFrame({
        "ts_ns": np.sort(rng.integers(OPEN_NS, OPEN_NS + 6 * 3600 * NS, n)), "sequence": np.arange(n),
        "option_symbol": sym, "underlying": ["SPY"] * n, "root": ["SPY"] * n, "expiration": [DAY] * n,
        "strike": [float(s[-8:]) / 1000 for s in sym], "right": [s[11] for s in sym],
        "price": rng.uniform(0.01, 5.0, n) * 10.0 ** rng.integers(-2, 3, n), "size": rng.integers(1, 500, n),
        "canceled": [False] * n, "source": ["test"] * n,
    })
    missing = [c for c in schemas.OPTION_TRADES.columns if c not in frame.columns]
    frame = frame.with_columns(pl.lit(None).alias(c) for c in missing).select(schemas.OPTION_TRADES.columns)
    return pl.from_arrow(schemas.conform(frame, schemas.OPTION_TRADES))


def _checks(seconds: float) -> dict[str, list[CheckOutcome]]:
    meta = {"rows": 2_000, "suite_seconds": seconds, "ge_seconds": seconds / 3}
    return {"option_trades": [CheckOutcome("schema", True, "ERROR", "columns and dtypes match", meta)]}


def test_the_report_does_not_show_how_long_the_checks_took():
    tables = {"option_trades": _trades()}
    first = build_daily_report(DAY, "SPY", tables, _checks(0.5))
    second = build_daily_report(DAY, "SPY", tables, _checks(7.25))
    assert first.html == second.html
    assert not any(key in first.html for key in TIMING_KEYS)
    assert "rows=2,000" in first.html


def test_embedded_pngs_carry_no_software_or_date_stamp():
    html = build_daily_report(DAY, "SPY", {"option_trades": _trades()}, {}).html.encode()
    pngs = [base64.b64decode(m) for m in DATA_URI.findall(html)]
    assert pngs
    for png in pngs:
        pos, chunks = 8, []
        while pos < len(png):
            length = int.from_bytes(png[pos:pos + 4], "big")
            kind = png[pos + 4:pos + 8]
            data = png[pos + 8:pos + 8 + length]
            if kind == b"zTXt":
                data = data.split(b"\0", 1)[0]
            chunks.append((kind, data.split(b"\0", 1)[0] if kind in (b"tEXt", b"zTXt", b"iTXt") else b""))
            pos += 12 + length
        keys = {key for kind, key in chunks if kind in (b"tEXt", b"zTXt", b"iTXt")}
        assert not keys & {b"Software", b"Date", b"Creation Time"}, keys
        assert (b"tIME", b"") not in chunks


def test_premium_per_bucket_adds_the_trades_in_their_order():
    trades = _trades()
    got = premium_per_bucket(trades, None, timezone="America/New_York", bucket_minutes=30, default_multiplier=100)
    # one at a time, in the trades' order, per bucket: the same bits
    bucket = 30 * 60 * NS
    expected: dict[int, list[float]] = {}
    for ts, right, price, size in trades.select("ts_ns", "right", "price", "size").iter_rows():
        start = OPEN_NS + (ts - OPEN_NS) // bucket * bucket
        calls, puts = expected.setdefault(start, [0.0, 0.0])
        premium = price * size * 100
        expected[start] = [calls + premium, puts] if right == "C" else [calls, puts + premium]
    assert {r[0]: [r[1], r[2]] for r in got.select("bucket_start_ns", "call_premium", "put_premium").iter_rows()} \
        == expected
