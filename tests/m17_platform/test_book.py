"""MboBook on hand-made MBO record sequences (Databento action semantics), a
randomized cross-check of the cached ``top`` against a brute-force book, and MboReplay's
emission points (after each event, once per snapshot) whatever the chunking. The real
ESH4 book is tested in tests/m17_platform/sources/test_databento.py."""

import random

import numpy as np
import pytest

from m17_platform.book import ASK, BID, F_LAST, F_SNAPSHOT, F_TOB, UNDEF_PRICE, MboBook, MboReplay

PX = 1_000_000_000  # fixed-point scale: 1 dollar


def px(dollars: float) -> int:
    return round(dollars * PX)


def test_add_builds_levels_best_first():
    book = MboBook()
    book.apply("A", "B", 1, px(100.00), 5, F_LAST)
    book.apply("A", "B", 2, px(100.00), 3, F_LAST)
    book.apply("A", "B", 3, px(99.75), 1, F_LAST)
    book.apply("A", "A", 4, px(100.50), 2, F_LAST)
    book.apply("A", "A", 5, px(100.25), 7, F_LAST)
    bids, asks = book.top(10)
    assert bids == ((px(100.00), 8, 2), (px(99.75), 1, 1))
    assert asks == ((px(100.25), 7, 1), (px(100.50), 2, 1))
    assert book.top(1) == (((px(100.00), 8, 2),), ((px(100.25), 7, 1),))
    assert book.best(BID) == px(100.00) and book.best(ASK) == px(100.25)
    assert book.order_count == 5
    assert book.depth(BID) == 2 and book.depth(ASK) == 2


def test_partial_and_full_cancel():
    book = MboBook()
    book.apply("A", "A", 1, px(10.0), 5)
    book.apply("A", "A", 2, px(10.0), 4)
    book.apply("C", "A", 1, px(10.0), 2)  # partial: size is the quantity removed
    assert book.order(1) == ("A", px(10.0), 3)
    assert book.level(ASK, px(10.0)) == (7, 2)
    book.apply("C", "A", 1, px(10.0), 3)  # the rest
    assert book.order(1) is None
    assert book.level(ASK, px(10.0)) == (4, 1)
    book.apply("C", "A", 2, px(10.0), 4)
    assert book.level(ASK, px(10.0)) is None
    assert book.top(5) == ((), ())
    assert book.stats["unknown_cancel"] == 0


def test_modify_size_price_and_side():
    book = MboBook()
    book.apply("A", "B", 1, px(50.0), 5)
    book.apply("A", "B", 2, px(50.0), 1)
    book.apply("M", "B", 1, px(50.0), 8)  # size up, same level
    assert book.level(BID, px(50.0)) == (9, 2)
    book.apply("M", "B", 1, px(49.5), 8)  # moves to a new level
    assert book.level(BID, px(50.0)) == (1, 1)
    assert book.level(BID, px(49.5)) == (8, 1)
    assert book.top(2)[0] == ((px(50.0), 1, 1), (px(49.5), 8, 1))
    book.apply("M", "B", 2, px(49.5), 2)  # last order leaves 50.0: the level goes
    assert book.level(BID, px(50.0)) is None
    assert book.level(BID, px(49.5)) == (10, 2)
    book.apply("M", "A", 2, px(51.0), 2)  # a modify that changes side
    assert book.level(ASK, px(51.0)) == (2, 1)
    assert book.level(BID, px(49.5)) == (8, 1)


def test_trade_and_fill_do_not_change_the_book_until_the_cancel():
    """Databento: T and F "do not affect the book"; the C (or M) that follows a fill does.
    best(net_of_fills=True) gives the price the next aggressor meets inside a sweep."""
    book = MboBook()
    book.apply("A", "A", 1, px(100.00), 2, F_LAST)
    book.apply("A", "A", 2, px(100.25), 3, F_LAST)
    book.apply("A", "B", 3, px(99.75), 4, F_LAST)
    before = book.top(10)
    # a buy aggressor sweeps 100.00 (2 lots) then 100.25 (1 lot); one exchange event
    book.apply("T", "B", 99, px(100.00), 2)
    book.apply("F", "A", 1, px(100.00), 2)
    assert book.top(10) == before
    assert book.best(ASK) == px(100.00)
    assert book.best(ASK, net_of_fills=True) == px(100.25)
    book.apply("T", "B", 99, px(100.25), 1)
    book.apply("F", "A", 2, px(100.25), 1)
    assert book.best(ASK, net_of_fills=True) == px(100.25)  # 2 lots of order 2 remain
    book.apply("C", "A", 1, px(100.00), 2)
    book.apply("M", "A", 2, px(100.25), 2, F_LAST)  # modify to the remaining size
    assert book.top(10) == (((px(99.75), 4, 1),), ((px(100.25), 2, 1),))
    assert book.best(ASK, net_of_fills=True) == px(100.25)
    assert book.stats["actions_T"] == 2 and book.stats["actions_F"] == 2


def test_clear_and_snapshot():
    book = MboBook()
    book.apply("A", "B", 1, px(10.0), 1)
    book.apply("A", "A", 2, px(11.0), 1)
    book.apply("R", "N", 0, UNDEF_PRICE, 0, F_SNAPSHOT)
    assert book.top(10) == ((), ()) and book.order_count == 0
    book.apply("A", "B", 3, px(10.5), 2, F_SNAPSHOT)
    book.apply("A", "A", 4, px(10.75), 1, F_SNAPSHOT | F_LAST)
    assert book.top(1) == (((px(10.5), 2, 1),), ((px(10.75), 1, 1),))
    assert book.stats["clears"] == 1


def test_unknown_ids_and_bad_records_are_counted_not_fatal():
    book = MboBook()
    book.apply("A", "B", 1, px(10.0), 3)
    book.apply("C", "B", 42, px(10.0), 1)  # unknown id
    assert book.stats["unknown_cancel"] == 1
    assert book.level(BID, px(10.0)) == (3, 1)
    book.apply("M", "A", 43, px(11.0), 2)  # unknown id: a modify carries full state -> added
    assert book.stats["unknown_modify"] == 1
    assert book.level(ASK, px(11.0)) == (2, 1)
    book.apply("C", "B", 1, px(10.0), 5)  # more than resting: removed, never negative
    assert book.stats["oversize_cancel"] == 1
    assert book.level(BID, px(10.0)) is None
    book.apply("A", "B", 44, px(9.0), 0)
    book.apply("A", "N", 45, px(9.0), 1)
    book.apply("A", "B", 46, UNDEF_PRICE, 1)
    book.apply("A", "A", 43, px(11.5), 1)  # duplicate id replaces the old order
    assert (book.stats["zero_size_add"], book.stats["invalid_side"], book.stats["undefined_price"]) == (1, 1, 1)
    assert book.stats["duplicate_add"] == 1
    assert book.top(5) == ((), ((px(11.5), 1, 1),))
    with pytest.raises(ValueError, match="unknown MBO action 'X'"):
        book.apply("X", "B", 1, px(1.0), 1)


def test_top_of_book_records_replace_the_side():
    """F_TOB publishers (Databento's top-of-book venues): each record is the whole side."""
    book = MboBook()
    book.apply("A", "B", 0, px(20.0), 300, F_TOB | F_LAST)
    book.apply("A", "B", 0, px(20.1), 100, F_TOB | F_LAST)
    assert book.top(5)[0] == ((px(20.1), 100, 1),)
    book.apply("A", "B", 0, UNDEF_PRICE, 0, F_TOB | F_LAST)  # side now empty
    assert book.top(5)[0] == ()
    assert book.stats["tob_records"] == 3


def test_crossed_and_locked():
    book = MboBook()
    book.apply("A", "B", 1, px(10.0), 1)
    book.apply("A", "A", 2, px(10.0), 1)
    assert book.is_locked() and not book.is_crossed()
    book.apply("M", "A", 2, px(9.75), 1)
    assert book.is_crossed()


def _brute_top(orders: dict[int, tuple[str, int, int]], depth: int):
    agg: dict[tuple[str, int], list[int]] = {}
    for side, price, size in orders.values():
        lv = agg.setdefault((side, price), [0, 0])
        lv[0] += size
        lv[1] += 1
    bids = sorted(((p, s, c) for (sd, p), (s, c) in agg.items() if sd == "B"), reverse=True)[:depth]
    asks = sorted((p, s, c) for (sd, p), (s, c) in agg.items() if sd == "A")[:depth]
    return tuple(bids), tuple(asks)


def test_random_sequences_match_a_brute_force_book():
    """5,000 random A/C/M/F/T records; after each, top(3) and top(10) equal a brute-force
    aggregation (this also exercises the cache MboBook.top keeps between changes)."""
    rng = random.Random(17)
    book = MboBook()
    orders: dict[int, tuple[str, int, int]] = {}
    next_id = 1
    deepest = 0
    for step in range(5_000):
        roll = rng.random()
        if roll < 0.35 or not orders:
            side = rng.choice("BA")
            price = px(100 + (rng.randint(-15, 0) if side == "B" else rng.randint(1, 16)) * 0.25)
            size = rng.randint(1, 9)
            book.apply("A", side, next_id, price, size)
            orders[next_id] = (side, price, size)
            next_id += 1
        elif roll < 0.75:
            oid = rng.choice(list(orders))
            side, price, size = orders[oid]
            qty = rng.randint(1, size)
            book.apply("C", side, oid, price, qty)
            if qty == size:
                del orders[oid]
            else:
                orders[oid] = (side, price, size - qty)
        elif roll < 0.9:
            oid = rng.choice(list(orders))
            side, price, _ = orders[oid]
            new_price = price + rng.choice((-1, 0, 1)) * px(0.25)
            new_size = rng.randint(1, 9)
            book.apply("M", side, oid, new_price, new_size)
            orders[oid] = (side, new_price, new_size)
        else:
            oid = rng.choice(list(orders))
            side, price, size = orders[oid]
            book.apply("T", "A" if side == "B" else "B", 0, price, 1)
            book.apply("F", side, oid, price, 1)
        depth = 3 if step % 2 else 10
        assert book.top(depth) == _brute_top(orders, depth), f"step {step}"
        deepest = max(deepest, book.depth(BID), book.depth(ASK))
    assert deepest > 10  # the sequence did exercise levels beyond the top 10
    assert book.order_count == len(orders)
    assert sum(v for k, v in book.stats.items() if k.startswith(("unknown", "oversize", "duplicate"))) == 0


def _records(rows):
    """MBO-like records: (action, side, order_id, price $ or None, size, flags); field ``n``
    numbers them."""
    dtype = [("order_id", "u8"), ("price", "i8"), ("size", "u4"), ("flags", "u1"), ("instrument_id", "u4"), ("n", "i4")]
    out = np.zeros(len(rows), dtype=dtype)
    for i, (_, _, oid, price, size, flags) in enumerate(rows):
        out[i] = (oid, UNDEF_PRICE if price is None else px(price), size, flags, 7, i)
    return out, [r[0] for r in rows], [r[1] for r in rows], [7] * len(rows)


REPLAY = [
    ("R", "N", 0, None, 0, F_SNAPSHOT),
    ("A", "B", 1, 10.00, 5, F_SNAPSHOT),
    ("A", "A", 2, 10.50, 3, F_SNAPSHOT),  # the snapshot ends without F_LAST
    ("A", "B", 3, 10.25, 1, F_LAST),  # -> the snapshot's book, then this event's
    ("C", "B", 3, 10.25, 1, 0),  # mid-event: not emitted on its own
    ("A", "A", 4, 10.50, 2, F_LAST),
    ("R", "N", 0, None, 0, F_SNAPSHOT),  # a recovery snapshot, open at the end of the stream
    ("A", "B", 5, 9.75, 2, F_SNAPSHOT),
]


@pytest.mark.parametrize("chunk", [len(REPLAY), 1, 2, 3])
def test_replay_emits_after_events_and_once_per_snapshot_whatever_the_chunks(chunk):
    records, actions, sides, iids = _records(REPLAY)
    replay = MboReplay(depth=2)
    emitted, snaps, levels = [], [], []
    for lo in range(0, len(REPLAY), chunk):
        rows, s, lv = replay.feed(records[lo: lo + chunk], actions[lo: lo + chunk], sides[lo: lo + chunk],
                                  iids[lo: lo + chunk])
        emitted += rows["n"].tolist()
        snaps += s
        levels += lv
    rows, s, lv = replay.finish()
    emitted += rows["n"].tolist()
    snaps += s
    levels += lv
    assert emitted == [2, 3, 5, 7]  # the record each emitted book is described by
    assert snaps == [True, False, False, True]
    assert levels == [
        (((px(10.00), 5, 1),), ((px(10.50), 3, 1),)),
        (((px(10.25), 1, 1), (px(10.00), 5, 1)), ((px(10.50), 3, 1),)),
        (((px(10.00), 5, 1),), ((px(10.50), 5, 2),)),
        (((px(9.75), 2, 1),), ()),
    ]
    stats = replay.stats()
    assert stats["snapshot_rows"] == 2 and stats["trailing_records"] == 0
    assert stats["crossed_book_events"] == stats["locked_book_events"] == 0
