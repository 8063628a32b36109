"""The strike window live: against a replayed SPY morning, the capture subscribes the
0DTE contracts around the money, and re-centres (subscribing and unsubscribing) when
SPY moves."""

import dataclasses
import datetime as dt
import zoneinfo

import polars as pl

from m17_platform import ingest, schemas
from m17_platform.capture.compaction import LandingSource
from m17_platform.capture.landing import read_gaps, read_manifest
from m17_platform.lake import Lake, PartitionRef
from m17_platform.sources.polygon_ws import frame_of
from m17_platform.symbols import occ_symbol

DAY = dt.date(2025, 11, 10)
REF = PartitionRef(DAY, "SPY")
OPEN_NS = int(dt.datetime.combine(DAY, dt.time(9, 30), tzinfo=zoneinfo.ZoneInfo("America/New_York")).timestamp()) * 10**9
S = 10**9
JUMP_NS = OPEN_NS + 600 * S  # SPY jumps from 685.20 to 687.00 ten minutes after the open
END_NS = OPEN_NS + 1200 * S
STRIKES = [680.0 + k for k in range(13)]


def spy_morning(lake: Lake) -> None:
    trades = [
        {"ts_ns": ts, "sequence": i, "symbol": "SPY", "underlying": "SPY", "price": 685.20 if ts < JUMP_NS else 687.00,
         "size": 100, "exchange": "4", "conditions": None, "trade_id": str(i), "canceled": False,
         "aggressor_side": None, "source": "test"}
        for i, ts in enumerate(range(OPEN_NS, END_NS, 5 * S))
    ]
    quotes = []
    for k in STRIKES:
        for right in "CP":
            symbol = occ_symbol("SPY", DAY, right, k)
            for i, ts in enumerate(range(OPEN_NS + S, END_NS, 30 * S)):
                quotes.append({"ts_ns": ts, "sequence": i, "option_symbol": symbol, "underlying": "SPY", "root": "SPY",
                               "expiration": DAY, "strike": k, "right": right, "bid": 1.0, "bid_size": 10, "ask": 1.1,
                               "ask_size": 12, "bid_exchange": "302", "ask_exchange": "302", "source": "test"})
    lake.write(schemas.table("stock_trades"), REF, frame_of("stock_trades", trades), source="test")
    lake.write(schemas.table("option_quotes"), REF, frame_of("option_quotes", quotes), source="test")


def test_the_capture_follows_the_money(lake, replay_of, tmp_path, kit):
    spy_morning(lake)
    replay = replay_of(lake, REF, speed=300)  # 20 minutes of market in 4 s
    settings = dataclasses.replace(kit.FAST, strikes_each_side=1)
    root = tmp_path / "landing"
    cap = kit.CaptureThread(replay, root, underlyings=("SPY",), all_contracts=False, settings=settings)
    kit.wait_for(lambda: replay.server.finished.is_set(), timeout=60)
    kit.wait_for(lambda: cap.capture.batcher.held == 0)
    assert cap.metrics.subscribed_contracts._value.get() == 6  # 686, 687, 688 calls and puts
    cap.stop()
    assert {e.table for e in read_manifest(root)} == {"stock_trades", "option_quotes"}

    out = Lake(tmp_path / "out")
    ingest.ingest_table(out, LandingSource(root, out), "option_quotes", REF)
    got = out.read(schemas.table("option_quotes"), REF)
    by_strike = got.group_by("strike").agg(pl.col("ts_ns").min().alias("first"), pl.col("ts_ns").max().alias("last"))
    spans = {row["strike"]: (row["first"], row["last"]) for row in by_strike.iter_rows(named=True)}
    # the window around 685.20 is 684-686; after the jump to 687.00, 686-688
    assert set(spans) == {684.0, 685.0, 686.0, 687.0, 688.0}
    assert spans[686.0][0] < JUMP_NS < spans[686.0][1]  # in both windows: captured throughout
    for k in (684.0, 685.0):  # left the window: unsubscribed within one quote interval
        assert spans[k][0] < JUMP_NS and spans[k][1] < JUMP_NS + 30 * S
    for k in (687.0, 688.0):  # entered the window at the jump
        assert JUMP_NS <= spans[k][0] <= JUMP_NS + 60 * S and spans[k][1] > JUMP_NS + 500 * S
    assert got.filter(pl.col("strike") == 688.0)["right"].unique().sort().to_list() == ["C", "P"]


def test_what_passes_before_the_first_option_subscription_is_a_recorded_gap(lake, replay_of, tmp_path, kit):
    # the window needs SPY's first price (09:30:00) and the contract list before it can
    # subscribe: the pre-open quotes of its contracts (09:29:10-09:29:55) pass meanwhile, always
    # (they are due before SPY's first trade is sent). Before, they were missed with no gap recorded.
    spy_morning(lake)
    quotes = lake.read(schemas.table("option_quotes"), REF)
    first = quotes.filter(pl.col("strike").is_between(684.0, 686.0)).group_by("option_symbol").agg(pl.all().first())
    preopen = pl.concat([first.with_columns(ts_ns=pl.lit(OPEN_NS - k * 5 * S), sequence=pl.lit(-k, pl.Int64))
                         for k in range(1, 11)]).select(quotes.columns)
    lake.write(schemas.table("option_quotes"), REF, pl.concat([preopen, quotes]), source="test")
    replay = replay_of(lake, REF, speed=300)
    settings = dataclasses.replace(kit.FAST, strikes_each_side=1)
    root = tmp_path / "landing"
    cap = kit.CaptureThread(replay, root, underlyings=("SPY",), all_contracts=False, settings=settings)
    kit.wait_for(lambda: replay.server.finished.is_set(), timeout=60)
    kit.wait_for(lambda: cap.capture.batcher.held == 0)
    cap.stop()

    out = Lake(tmp_path / "out")
    ingest.ingest_table(out, LandingSource(root, out), "option_quotes", REF)
    got = out.read(schemas.table("option_quotes"), REF)
    # the first window's contracts (684-686 around 685.20) before SPY jumps: all subscribed from the start
    want = lake.read(schemas.table("option_quotes"), REF).filter(
        pl.col("strike").is_between(684.0, 686.0) & (pl.col("ts_ns") < JUMP_NS))
    missed = want.join(got, on=["option_symbol", "ts_ns", "sequence"], how="anti")
    assert missed.join(preopen, on=["option_symbol", "ts_ns", "sequence"], how="semi").height == preopen.height == 60

    gaps = read_gaps(root)
    (opening,) = gaps
    assert opening.feed == "options" and opening.reason.startswith("opening")
    assert opening.start_ns <= opening.end_ns  # wall clock: capture start -> subscription acknowledged
    assert opening.end_ns - opening.start_ns < 30 * S
    # event time: from the first accepted time of the day (04:00 ET less the slack) to the first quote received
    slack_ns = int(settings.event_window_slack_seconds * S)
    four_am = int(dt.datetime.combine(DAY, dt.time(4), tzinfo=zoneinfo.ZoneInfo("America/New_York")).timestamp()) * S
    assert opening.last_event_ts_ns == four_am - slack_ns
    assert opening.first_event_ts_ns == got["ts_ns"].min() > missed["ts_ns"].max()
    assert kit.missed_outside_gaps(want, got, gaps).is_empty()
    assert out.manifest(schemas.table("option_quotes"), REF).stats["gaps"] == 1  # the day's accounting knows
