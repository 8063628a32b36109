"""A price-level order book rebuilt from Databento market-by-order (MBO) records.

No Dagster, no I/O: :class:`MboBook` takes one record's fields at a time and keeps
every resting order by id plus the aggregate (size, order count) of each price level
on each side; :class:`MboReplay` drives one book per instrument over arrays of records,
chunk by chunk, and says after which records the book is emitted (per-event top
levels). :mod:`m17_platform.sources.databento` feeds them from DBN files.

Semantics follow Databento's MBO schema and its order-book examples
(https://databento.com/docs/schemas/mbo,
https://databento.com/docs/examples/order-book/order-tracking,
https://databento.com/docs/examples/order-book/limit-order-book,
https://databento.com/docs/conventions/mbo-snapshot):

* ``A`` add: a new resting order (``order_id``, ``side``, ``price``, ``size``).
* ``C`` cancel: fully **or partially** cancels an order; ``size`` is the quantity
  removed, not the quantity left.
* ``M`` modify: the order's new ``price`` and ``size`` (full state, not a delta);
  it may move the order to another level.
* ``R`` clear: remove every resting order of the instrument (a snapshot starts with one).
* ``T`` trade: an aggressing order traded; ``side`` is the **aggressor's** side
  (``N`` when the exchange does not say, e.g. an auction uncross).
  Does not change the book.
* ``F`` fill: a resting order was filled. Does not change the book either:
  "all fills will be accompanied by cancel actions that do update the book"
  (Databento's order-tracking example). In GLBX.MDP3 each ``F`` is followed, in the
  same event, by a ``C`` of the filled quantity or an ``M`` to the remaining size
  (checked on the ESH4 sample: all 6,336 fills with side A/B are; of the 35 side-N
  fills of the opening auction, 28 are and 7 name orders that were never resting).
* ``N`` none: no book change (may carry flags).
* Flags (``flags`` byte): ``F_LAST`` (128) marks the last record of an exchange
  event, the only point where the book is a consistent state; ``F_TOB`` (64) marks
  a top-of-book-only record (the record replaces its whole side); ``F_SNAPSHOT``
  (32) marks records of a book snapshot; ``F_MBP`` (16), ``F_BAD_TS_RECV`` (8),
  ``F_MAYBE_BAD_BOOK`` (4).

Because fills only leave the book with the cancel that follows them, a sweep that
trades through several levels within one event still shows the already-filled
orders until their cancels arrive. :meth:`MboBook.best` with ``net_of_fills=True``
gives the best price whose quantity is not yet reported filled, i.e. the price an
aggressor meets next; the book itself (``top``) always follows the records.

Prices are Databento fixed-point integers (1 unit = 1e-9 of the quote currency);
sizes are integers (contracts for futures). Conversion to dollars is left to the
caller, once, at output.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter

import numpy as np

F_LAST = 128
"""Last record of an exchange event: the book may be read after it."""
F_TOB = 64
"""Top-of-book record: replaces the whole side with one level (or empties it)."""
F_SNAPSHOT = 32
"""Record is part of a book snapshot (replay of resting orders)."""
F_MBP = 16
"""Aggregated price-level record (not one order)."""
F_BAD_TS_RECV = 8
"""``ts_recv`` is not a real receive time (snapshots, gaps)."""
F_MAYBE_BAD_BOOK = 4
"""The publisher may have lost messages: the book may be wrong until the next snapshot."""

UNDEF_PRICE = 2**63 - 1
"""Databento's undefined price (INT64_MAX)."""

BID = "B"
ASK = "A"
NONE = "N"
SIDES = (BID, ASK)

Level = tuple[int, int, int]
"""One price level: (price fixed-point 1e-9, aggregate size, order count)."""


class MboBook:
    """One instrument's order book, by order and by price level.

    Attributes
    ----------
    stats : collections.Counter[str]
        Counts of records the book accepted but could not apply literally:
        ``unknown_cancel`` (cancel of an order id not in the book, ignored),
        ``unknown_modify`` (modify of an unknown id, applied as an add: a modify
        carries the order's full price and size), ``duplicate_add`` (add of an id
        already resting; the old order is replaced), ``oversize_cancel`` (cancel of
        more than the order's size; the order is removed, sizes never go negative),
        ``zero_size_add`` (add of size 0, ignored), ``invalid_side`` (A/C/M with
        side ``N``, ignored), ``undefined_price`` (A/M with an undefined price and no
        ``F_TOB``, ignored), ``tob_records`` (``F_TOB`` records applied as a side
        replacement), ``clears`` (``R`` records), ``records`` (all records applied)
        and ``actions_<X>`` per action code.

    Notes
    -----
    Levels are kept per side in a dict ``price -> [size, count]`` plus a sorted list
    of prices (binary search on insert/remove), so :meth:`top` is a slice, not a sort.
    :meth:`top` also caches each side's result until a change reaches its levels
    (in the ESH4 sample 58% of events leave the bid's top 10 unchanged, 63% the ask's).

    ``F_TOB`` handling follows Databento's description of its top-of-book venues
    ("each Add message indicates the new top-of-book and replaces all levels on that
    side"; an undefined price empties the side) and reports such a level with an order
    count of 1; no top-of-book sample was available to check it against.
    """

    def __init__(self) -> None:
        self._orders: dict[int, list] = {}  # order_id -> [side, price, size]
        self._levels: dict[str, dict[int, list[int]]] = {BID: {}, ASK: {}}
        self._prices: dict[str, list[int]] = {BID: [], ASK: []}  # ascending
        self._tob: dict[str, bool] = {BID: False, ASK: False}
        # order_id -> quantity reported filled (F) whose cancel/modify has not come yet
        self._pending_fill: dict[int, int] = {}
        # last top() result per side, with its depth; dropped when a change reaches it
        self._top_cache: dict[str, tuple[int, tuple[Level, ...]] | None] = {BID: None, ASK: None}
        self.stats: Counter[str] = Counter()

    # --- level bookkeeping -----------------------------------------------------------

    def _touch(self, side: str, price: int) -> None:
        """Drop the cached top of ``side`` if a change at ``price`` can alter it."""
        cached = self._top_cache[side]
        if cached is not None:
            depth, top = cached
            if len(top) < depth or (price >= top[-1][0] if side == BID else price <= top[-1][0]):
                self._top_cache[side] = None

    def _level_add(self, side: str, price: int, size: int, count: int) -> None:
        self._touch(side, price)
        levels = self._levels[side]
        level = levels.get(price)
        if level is None:
            levels[price] = [size, count]
            insort(self._prices[side], price)
        else:
            level[0] += size
            level[1] += count

    def _level_sub(self, side: str, price: int, size: int, count: int) -> None:
        self._touch(side, price)
        levels = self._levels[side]
        level = levels[price]
        level[0] -= size
        level[1] -= count
        if level[1] <= 0:
            del levels[price]
            prices = self._prices[side]
            del prices[bisect_left(prices, price)]

    def _remove_order(self, order_id: int) -> None:
        side, price, size = self._orders.pop(order_id)
        self._level_sub(side, price, size, 1)
        self._pending_fill.pop(order_id, None)

    def _clear_side(self, side: str) -> None:
        self._top_cache[side] = None
        self._levels[side].clear()
        self._prices[side].clear()
        for oid in [o for o, rec in self._orders.items() if rec[0] == side]:
            del self._orders[oid]
            self._pending_fill.pop(oid, None)

    # --- public API ------------------------------------------------------------------

    def clear(self) -> None:
        """Remove every order and level (action ``R``)."""
        self._orders.clear()
        self._pending_fill.clear()
        for side in SIDES:
            self._levels[side].clear()
            self._prices[side].clear()
            self._tob[side] = False
            self._top_cache[side] = None

    def apply(self, action: str, side: str, order_id: int, price: int, size: int, flags: int = 0) -> None:
        """Apply one MBO record.

        Parameters
        ----------
        action : str
            Databento action code: ``A``, ``C``, ``M``, ``R``, ``T``, ``F`` or ``N``.
        side : str
            ``B`` (bid / buy), ``A`` (ask / sell) or ``N`` (none).
        order_id : int
            Venue order id (uint64).
        price : int
            Fixed-point price, 1 unit = 1e-9; :data:`UNDEF_PRICE` when undefined.
        size : int
            Order quantity (``A``/``M``: the order's size; ``C``: quantity canceled;
            ``T``/``F``: quantity traded / filled).
        flags : int
            Record flags (``F_TOB`` changes how ``A``/``M``/``C`` apply).

        Raises
        ------
        ValueError
            For an action code outside the list above (the caller names the record).
            Everything else the book cannot apply literally is counted in ``stats``.
        """
        stats = self.stats
        stats["records"] += 1
        stats["actions_" + action] += 1
        if action == "T" or action == "N":
            return
        if action == "F":
            if order_id in self._orders:
                self._pending_fill[order_id] = self._pending_fill.get(order_id, 0) + size
            return
        if action == "R":
            stats["clears"] += 1
            self.clear()
            return
        if action not in ("A", "C", "M"):
            raise ValueError(f"unknown MBO action {action!r}")
        if side != BID and side != ASK:
            stats["invalid_side"] += 1
            return
        if flags & F_TOB:
            self._apply_tob(action, side, price, size)
            return
        if self._tob[side]:
            # the side switched from top-of-book records to order records
            self._clear_side(side)
            self._tob[side] = False
        orders = self._orders
        if action == "A":
            if price == UNDEF_PRICE:
                stats["undefined_price"] += 1
                return
            if size <= 0:
                stats["zero_size_add"] += 1
                return
            if order_id in orders:
                stats["duplicate_add"] += 1
                self._remove_order(order_id)
            orders[order_id] = [side, price, size]
            self._level_add(side, price, size, 1)
        elif action == "C":
            order = orders.get(order_id)
            if order is None:
                stats["unknown_cancel"] += 1
                return
            self._pending_fill.pop(order_id, None)
            if size >= order[2]:
                if size > order[2]:
                    stats["oversize_cancel"] += 1
                self._remove_order(order_id)
            else:
                order[2] -= size
                self._level_sub(order[0], order[1], size, 0)
        else:  # "M"
            if price == UNDEF_PRICE:
                stats["undefined_price"] += 1
                return
            order = orders.get(order_id)
            if order is None:
                stats["unknown_modify"] += 1
                if size > 0:
                    orders[order_id] = [side, price, size]
                    self._level_add(side, price, size, 1)
                return
            self._pending_fill.pop(order_id, None)
            if size <= 0:
                self._remove_order(order_id)
                return
            old_side, old_price, old_size = order
            if old_side == side and old_price == price:
                order[2] = size
                self._touch(side, price)
                self._levels[side][price][0] += size - old_size
            else:
                self._level_sub(old_side, old_price, old_size, 1)
                order[0], order[1], order[2] = side, price, size
                self._level_add(side, price, size, 1)

    def _apply_tob(self, action: str, side: str, price: int, size: int) -> None:
        """A top-of-book record (``F_TOB``): the side becomes this one level, or empty."""
        self.stats["tob_records"] += 1
        self._clear_side(side)
        self._tob[side] = True
        if action != "C" and price != UNDEF_PRICE and size > 0:
            self._level_add(side, price, size, 1)

    def level(self, side: str, price: int) -> tuple[int, int] | None:
        """(size, count) resting at ``price`` on ``side``, or None if the level is empty."""
        lv = self._levels[side].get(price)
        return None if lv is None else (lv[0], lv[1])

    def order(self, order_id: int) -> tuple[str, int, int] | None:
        """(side, price, size) of a resting order, or None."""
        o = self._orders.get(order_id)
        return None if o is None else (o[0], o[1], o[2])

    def resting_orders(self, side: str, *, net_of_fills: bool = False) -> list[tuple[int, int, int]]:
        """(order_id, price, size) of every order resting on ``side``, in no particular order.

        With ``net_of_fills``, sizes exclude quantity reported filled (``F``) whose
        cancel/modify has not arrived yet, and fully filled orders are left out.
        """
        out = []
        pending = self._pending_fill if net_of_fills else {}
        for oid, (s, price, size) in self._orders.items():
            if s == side:
                left = size - pending.get(oid, 0)
                if left > 0:
                    out.append((oid, price, left))
        return out

    def best(self, side: str, *, net_of_fills: bool = False) -> int | None:
        """Best price on ``side`` (highest bid, lowest ask), fixed-point; None if empty.

        With ``net_of_fills``, levels whose whole quantity has been reported filled
        (``F`` records whose ``C``/``M`` has not arrived yet) are skipped: the price
        the next aggressor meets inside a sweep.
        """
        prices = self._prices[side]
        if not prices:
            return None
        if not net_of_fills or not self._pending_fill:
            return prices[-1] if side == BID else prices[0]
        filled: dict[int, int] = {}
        for oid, qty in self._pending_fill.items():
            o = self._orders.get(oid)
            if o is not None and o[0] == side:
                filled[o[1]] = filled.get(o[1], 0) + min(qty, o[2])
        ordered = reversed(prices) if side == BID else prices
        levels = self._levels[side]
        for p in ordered:
            if levels[p][0] - filled.get(p, 0) > 0:
                return p
        return None

    def top(self, depth: int = 10) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
        """The best ``depth`` levels of each side, best first.

        Returns
        -------
        (bids, asks) : tuple[tuple[Level, ...], tuple[Level, ...]]
            Each up to ``depth`` (price, size, count) tuples; bids by descending
            price, asks by ascending price. Prices are fixed-point 1e-9. A side that
            has not changed within its top ``depth`` levels since the last call
            returns the very same tuple object (callers may test identity to skip
            unchanged sides).
        """
        if depth <= 0:
            return (), ()
        return self._side_top(BID, depth), self._side_top(ASK, depth)

    def _side_top(self, side: str, depth: int) -> tuple[Level, ...]:
        cached = self._top_cache[side]
        if cached is not None and cached[0] == depth:
            return cached[1]
        levels = self._levels[side]
        prices = reversed(self._prices[side][-depth:]) if side == BID else self._prices[side][:depth]
        top = tuple([(p, *levels[p]) for p in prices])
        self._top_cache[side] = (depth, top)
        return top

    def depth(self, side: str) -> int:
        """Number of occupied price levels on ``side``."""
        return len(self._prices[side])

    @property
    def order_count(self) -> int:
        """Number of resting orders (top-of-book levels are not orders)."""
        return len(self._orders)

    def is_crossed(self) -> bool:
        """True if best bid > best ask (both sides non-empty)."""
        b, a = self.best(BID), self.best(ASK)
        return b is not None and a is not None and b > a

    def is_locked(self) -> bool:
        """True if best bid == best ask (both sides non-empty)."""
        b, a = self.best(BID), self.best(ASK)
        return b is not None and a is not None and b == a


class MboReplay:
    """Replays MBO records through one :class:`MboBook` per instrument, chunk by chunk, and
    says after which records the book is emitted (the per-event top levels Databento's
    MBP-10 would show, https://databento.com/docs/examples/order-book/limit-order-book).

    The book is emitted after every record with ``F_LAST`` (a complete event: the only
    points where the book is consistent). Snapshot records (``F_SNAPSHOT``) are not
    emitted one by one: the book is emitted once when the snapshot completes (its
    ``F_LAST`` record, or the first record after it, or the end of the stream). A
    snapshot that spans a chunk boundary keeps its last record for that emission.

    Parameters
    ----------
    depth : int
        Levels per side returned with each emission.

    Attributes
    ----------
    books : dict[int, MboBook]
        One book per instrument id.
    crossed, locked : int
        Emitted books (snapshot rows excluded) with best bid > / == best ask.
    crossed_after_trade : int
        Crossed books emitted after the instrument's first trade.
    snapshot_rows : int
        Books emitted at the end of a snapshot.
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.books: dict[int, MboBook] = {}
        self._in_snapshot: dict[int, bool] = {}
        self._traded: set[int] = set()
        self._pending: dict[int, int] = {}
        self._carry: dict = {}  # iid -> last record applied (1-row array), while in a snapshot
        self.crossed = self.locked = self.crossed_after_trade = self.snapshot_rows = 0

    def _emit_check(self, iid: int, bids, asks, snapshot: bool) -> None:
        self._pending[iid] = 0
        if snapshot:
            self.snapshot_rows += 1
        elif bids and asks:
            if bids[0][0] > asks[0][0]:
                self.crossed += 1
                if iid in self._traded:
                    self.crossed_after_trade += 1
            elif bids[0][0] == asks[0][0]:
                self.locked += 1

    def feed(self, records, actions: list, sides: list, iids: list):
        """Apply one chunk of MBO records.

        Parameters
        ----------
        records : numpy.ndarray
            Databento MBO records (structured array with ``order_id``, ``price`` int64
            fixed-point 1e-9, ``size``, ``flags``), shape (n,).
        actions, sides : list of str
            Action and side code per record (``A``/``C``/``M``/``R``/``T``/``F``/``N``; ``B``/``A``/``N``).
        iids : list of int
            Instrument id per record.

        Returns
        -------
        (rows, snapshot, levels) : tuple[numpy.ndarray, list[bool], list[tuple]]
            The records whose fields describe each emitted book (structured array, shape
            (m,); a snapshot that ended in an earlier chunk contributes its kept record),
            whether each is a snapshot row, and (bids, asks) per row as
            :meth:`MboBook.top` gives them (prices fixed-point).

        Raises
        ------
        ValueError
            From :meth:`MboBook.apply` for an unknown action code.
        """
        refs: list[int] = []
        extra: list = []
        snaps: list[bool] = []
        levels: list[tuple] = []
        last_local: dict[int, int] = {}
        oid = records["order_id"].tolist()
        px = records["price"].tolist()
        sz = records["size"].tolist()
        fl = records["flags"].tolist()
        books, in_snapshot = self.books, self._in_snapshot

        def emit(iid: int, ref: int, snapshot: bool) -> None:
            bids, asks = books[iid].top(self.depth)
            refs.append(ref)
            snaps.append(snapshot)
            levels.append((bids, asks))
            self._emit_check(iid, bids, asks, snapshot)

        for i in range(len(actions)):
            iid = iids[i]
            book = books.get(iid)
            if book is None:
                book = books[iid] = MboBook()
                in_snapshot[iid] = False
                self._pending[iid] = 0
            flags = fl[i]
            snapshot = bool(flags & F_SNAPSHOT)
            if in_snapshot[iid] and not snapshot:
                # the snapshot ended without F_LAST: emit the book it built, once
                if iid in last_local:
                    emit(iid, last_local[iid], True)
                else:
                    extra.append(self._carry[iid])
                    emit(iid, -len(extra), True)
                in_snapshot[iid] = False
                self._carry.pop(iid, None)
            if actions[i] == "T":
                self._traded.add(iid)
            book.apply(actions[i], sides[i], oid[i], px[i], sz[i], flags)
            last_local[iid] = i
            self._pending[iid] += 1
            if snapshot:
                in_snapshot[iid] = True
                if flags & F_LAST:
                    emit(iid, i, True)
                    in_snapshot[iid] = False
            elif flags & F_LAST:
                emit(iid, i, False)
        for iid, still in in_snapshot.items():
            if still and iid in last_local:
                self._carry[iid] = records[last_local[iid]: last_local[iid] + 1].copy()
        return self._rows(records, refs, extra), snaps, levels

    def finish(self):
        """Emit the books of snapshots still open at the end of the stream.

        Returns
        -------
        (rows, snapshot, levels)
            As :meth:`feed`; ``rows`` is None when no snapshot was open.
        """
        refs, extra, snaps, levels = [], [], [], []
        for iid, still in self._in_snapshot.items():
            if still:
                extra.append(self._carry.pop(iid))
                refs.append(-len(extra))
                bids, asks = self.books[iid].top(self.depth)
                snaps.append(True)
                levels.append((bids, asks))
                self._emit_check(iid, bids, asks, True)
                self._in_snapshot[iid] = False
        if not extra:
            return None, [], []
        return self._rows(extra[0][:0], refs, extra), snaps, levels

    @staticmethod
    def _rows(records, refs: list[int], extra: list):
        idx = np.asarray(refs, dtype=np.int64)
        if extra:
            ext = np.concatenate([records] + extra)
            idx = np.where(idx < 0, len(records) - idx - 1, idx)
            return ext[idx]
        return records[idx]

    def stats(self) -> dict[str, int]:
        """The books' anomaly counts and the emission counts (the keys
        :func:`m17_platform.sources.databento.read_mbo` reports)."""
        book_stats: Counter = Counter()
        for book in self.books.values():
            book_stats.update(book.stats)
        return {
            "unknown_order_cancels": book_stats["unknown_cancel"],
            "unknown_order_modifies": book_stats["unknown_modify"],
            "duplicate_adds": book_stats["duplicate_add"],
            "oversize_cancels": book_stats["oversize_cancel"],
            "invalid_side_records": book_stats["invalid_side"],
            "undefined_price_records": book_stats["undefined_price"],
            "tob_records": book_stats["tob_records"],
            "snapshot_rows": self.snapshot_rows,
            "crossed_book_events": self.crossed,
            "locked_book_events": self.locked,
            "crossed_book_events_after_first_trade": self.crossed_after_trade,
            "trailing_records": int(sum(self._pending.values())),
        }
