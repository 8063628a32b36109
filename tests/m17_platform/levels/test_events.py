"""Book changes per level: exact from MBO records (tracked per order), inferred from MBP-10
rows (only where both rows show the price)."""

import numpy as np
import polars as pl
import pytest

from m17_platform.errors import SchemaError
from m17_platform.levels.events import (
    ASK,
    BID,
    EV_ADD,
    EV_CANCEL,
    EV_FILL,
    book_arrays,
    infer_level_events,
    mbo_level_events,
)
from m17_platform.levels.partition import trade_arrays
from m17_platform.levels.settings import LevelSettings

S = LevelSettings()


def _mbo(records):
    cols = ["ts_ns", "order_id", "action", "side", "price", "size", "flags"]
    return pl.DataFrame(
        [dict(zip(cols, r, strict=True)) for r in records],
        schema={
            "ts_ns": pl.Int64,
            "order_id": pl.UInt64,
            "action": pl.String,
            "side": pl.String,
            "price": pl.Float64,
            "size": pl.Int64,
            "flags": pl.Int64,
        },
    )


def _totals(ev):
    """{(side, price): (added, canceled, filled)}"""
    out = {}
    for row in ev:
        key = (int(row[1]), row[2] * S.es_tick)
        a, c, f = out.get(key, (0, 0, 0))
        out[key] = (a + row[EV_ADD], c + row[EV_CANCEL], f + row[EV_FILL])
    return out


def test_mbo_adds_cancels_fills_and_modifies_by_hand():
    ev = mbo_level_events(
        _mbo(
            [
                (1, 99, "A", "A", 6801.0, 7, 32),  # snapshot: sets the book, counts as nothing
                (2, 1, "A", "B", 6800.0, 10, 128),  # add 10
                (3, 1, "F", "B", 6800.0, 4, 0),
                (3, 1, "C", "B", 6800.0, 4, 128),  # filled 4 (the cancel carries the fill)
                (4, 1, "C", "B", 6800.0, 2, 128),  # canceled 2
                (5, 1, "M", "B", 6800.0, 1, 128),  # 4 -> 1: canceled 3
                (6, 1, "M", "B", 6799.75, 5, 128),  # moved: 1 canceled at 6800, 5 added at 6799.75
                (7, 99, "C", "A", 6801.0, 7, 128),  # the snapshot order canceled: 7
                (8, 5, "A", "A", None, 3, 128),  # undefined price: ignored
                (9, 0, "R", "N", None, 0, 0),  # clear
                (10, 1, "C", "B", 6799.75, 5, 128),  # unknown after the clear: nothing
                (11, 2, "T", "A", 6800.0, 1, 0),  # trades change nothing
            ]
        ),
        None,
        S,
    )
    # 6800: added 10, canceled 2 + 3 + 1, filled 4
    assert _totals(ev) == {(BID, 6800.0): (10, 6, 4), (BID, 6799.75): (5, 0, 0), (ASK, 6801.0): (0, 7, 0)}
    assert ev[:, 0].tolist() == sorted(ev[:, 0].tolist())


def test_mbo_refuses_unknown_codes_and_missing_columns():
    with pytest.raises(SchemaError, match="column 'action': unknown code 'X'"):
        mbo_level_events(_mbo([(1, 1, "X", "B", 1.0, 1, 0)]), None, S)
    with pytest.raises(SchemaError, match=r"missing columns \['flags'\]"):
        mbo_level_events(_mbo([(1, 1, "A", "B", 1.0, 1, 0)]).drop("flags"), None, S)


def test_inferred_changes_only_where_both_rows_show_the_price(kit):
    t = kit.at(10, 0)
    asks = kit.ladder(6800.25, [10] * 10, "ask")
    rows = [
        dict(ts_ns=t, bids=kit.ladder(6800.0, [5, 6, 7, 8, 9, 10, 11, 12, 13, 14], "bid"), asks=asks),
        # a new best bid pushes 6797.75 (14) out of the visible 10: not a cancel; 6800.0 grows by 3
        dict(
            ts_ns=t + 1,
            bids=[(6800.25, 4)] + kit.ladder(6800.0, [8, 6, 7, 8, 9, 10, 11, 12, 13], "bid"),
            asks=kit.ladder(6800.5, [10] * 10, "ask"),
        ),
    ]
    ev = infer_level_events(book_arrays(kit.book(rows), kit.ES, S.es_tick), trade_arrays(None, None), S)
    # the ask at 6800.25 left in view (the new best bid took it): canceled, no print matched it;
    # 6802.75 came into view at the far end: nothing
    assert _totals(ev) == {(BID, 6800.25): (4, 0, 0), (BID, 6800.0): (3, 0, 0), (ASK, 6800.25): (0, 10, 0)}


def test_inferred_fills_need_a_print_at_that_price_and_side_in_time(kit):
    t = kit.at(10, 0)
    bids = kit.ladder(6799.75, [10] * 10, "bid")
    rows = [
        dict(ts_ns=t, bids=bids, asks=kit.ladder(6800.0, [10] * 10, "ask")),
        dict(ts_ns=t + 2 * kit.NS, bids=bids, asks=kit.ladder(6800.0, [4] + [10] * 9, "ask")),
        dict(ts_ns=t + 3 * kit.NS, bids=bids, asks=kit.ladder(6800.0, [1] + [10] * 9, "ask")),
    ]
    prints = [
        dict(ts_ns=t + kit.NS, price=6800.0, size=5, aggressor="B"),  # lifts the ask: fills 5 of the 6
        dict(ts_ns=t + kit.NS, price=6800.0, size=9, aggressor="S"),
    ]  # hits the bid side: not this level
    ev = infer_level_events(book_arrays(kit.book(rows), kit.ES, S.es_tick), trade_arrays(kit.trades(prints), kit.ES), S)
    assert _totals(ev) == {(ASK, 6800.0): (0, 4, 5)}
    late = LevelSettings(fill_match_ms=500.0)  # the print is 1 s before the change: too old to match
    ev = infer_level_events(
        book_arrays(kit.book(rows), kit.ES, S.es_tick), trade_arrays(kit.trades(prints), kit.ES), late
    )
    assert _totals(ev) == {(ASK, 6800.0): (0, 9, 0)}
    assert np.all(ev[:, 0] >= t)
