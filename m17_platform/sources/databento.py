"""Databento DBN market-by-order (MBO) files, normalised into ``futures_trades`` and ``futures_mbp10``.

A DBN file (Databento Binary Encoding, zstd-compressed or plain) starts with a
metadata header (dataset, schema, symbology mappings) followed by fixed-size
records. MBO records (rtype 160, 56 bytes) are described in Databento's schema
docs (https://databento.com/docs/schemas/mbo): ``ts_recv``/``ts_event`` (uint64 ns
since the epoch, UTC), ``instrument_id``, ``action`` (A add, C cancel, M modify,
R clear, T trade, F fill, N none), ``side`` (B, A, N), ``price`` (int64, 1 unit =
1e-9, ``INT64_MAX`` = undefined), ``size``, ``order_id``, ``flags``
(``F_LAST`` 128, ``F_TOB`` 64, ``F_SNAPSHOT`` 32, ``F_MBP`` 16, ``F_BAD_TS_RECV`` 8,
``F_MAYBE_BAD_BOOK`` 4) and ``sequence`` (the venue's message sequence number).
For a trade (``T``) the side is the aggressor's: "Bid for a buy order (or buy
aggressor in a trade)", "Ask for a sell order (or sell aggressor in a trade)";
CME Globex (GLBX.MDP3) reports it from MDP3's aggressor side, ``N`` when there is
none (e.g. the opening auction).

Decoding uses ``databento.DBNStore`` (NumPy record arrays, fixed-point prices kept
as integers) after an integrity check the store does not make: a truncated zstd
frame or a partial last record is an error, not silently fewer records.

Tables
------
* ``futures_trades``: one row per ``T`` record. ``ts_ns`` = ``ts_event``,
  ``ts_recv_ns`` = ``ts_recv`` (null if flagged ``F_BAD_TS_RECV``), ``sequence``,
  ``symbol`` (raw symbol, e.g. ``ESH4``, from the file's symbology), ``instrument_id``,
  ``underlying`` (the partition underlying the contract's product serves, e.g. ES ->
  SPY), ``price`` float64 dollars, ``size`` contracts, ``exchange`` (Databento's venue
  code of the publisher, ``GLBX`` for CME Globex), ``aggressor_side`` B / S / N
  (Databento ``A`` becomes ``S``), ``trade_id`` the aggressor's order id (null when CME
  gives none, as for the opening auction print), ``conditions`` null, ``canceled`` False.
* ``futures_mbp10``: the top ``depth`` (10) price levels of each side after every
  complete event (a record with ``F_LAST``), rebuilt with
  :class:`m17_platform.book.MboBook`. Snapshot records (``F_SNAPSHOT``) are not
  emitted one by one; the book is emitted once when the snapshot completes (its
  ``F_LAST`` record, or the first record after it). ``action``, ``side``,
  ``event_price`` and ``event_size`` are those of the last record applied; level
  columns ``{bid,ask}_{px,sz,ct}_NN`` are null where the side has fewer levels.

Stats
-----
``records``, ``records_<X>`` per action code, ``snapshot_records``,
``clear_records``, ``trades``, ``mbp10_rows``, ``snapshot_rows`` (books emitted
at the end of a snapshot), ``instruments``, the book's
anomaly counts (``unknown_order_cancels``, ``unknown_order_modifies``,
``duplicate_adds``, ``oversize_cancels``, ``invalid_side_records``,
``undefined_price_records``, ``tob_records``), ``maybe_bad_book_records``
(``F_MAYBE_BAD_BOOK``), ``bad_ts_recv_records``, ``crossed_book_events`` /
``locked_book_events`` (emitted books with best bid > / == best ask, snapshot rows
excluded), ``crossed_book_events_after_first_trade`` (the same, after the
instrument's first trade: a crossed book before it is normal in CME's pre-open,
where orders may cross until the opening auction), and ``trailing_records`` (records
after an instrument's last ``F_LAST``, applied but never emitted).
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl

from m17_platform import schemas
from m17_platform.book import (
    F_BAD_TS_RECV,
    F_LAST,
    F_MAYBE_BAD_BOOK,
    F_SNAPSHOT,
    UNDEF_PRICE,
    MboBook,
)
from m17_platform.errors import SourceFormatError
from m17_platform.settings import DEFAULT
from m17_platform.sources.base import ReadResult

PRICE_SCALE = 1_000_000_000
"""DBN fixed-point prices: 1 unit = 1e-9."""
UNDEF_TIMESTAMP = 2**64 - 1
MBO_RTYPE = 160
MBO_RECORD_BYTES = 56
ACTIONS = ("A", "C", "M", "R", "T", "F", "N")
SIDES = ("B", "A", "N")
AGGRESSOR = {"B": "B", "A": "S", "N": "N"}
"""Databento trade side -> schema aggressor side (buyer / seller initiated / none)."""

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_DBN_MAGIC = b"DBN"
_FUTURES_SYMBOL = re.compile(r"^(?P<root>[A-Z0-9]+?)(?P<month>[FGHJKMNQUVXZ])(?P<year>[0-9]{1,2})$")


def futures_root(symbol: str) -> str:
    """Product root of a futures raw symbol: ``ESH4`` -> ``ES``, ``MESZ24`` -> ``MES``.

    Raises
    ------
    ValueError
        If ``symbol`` is not ROOT + month code + 1-2 year digits (spreads, options).
    """
    m = _FUTURES_SYMBOL.match(symbol)
    if m is None:
        raise ValueError(f"{symbol!r} is not a futures outright symbol (ROOT + month code + year)")
    return m["root"]


def source_name(dataset: str) -> str:
    """``source`` column value for a dataset: ``GLBX.MDP3`` -> ``databento.glbx-mdp3.mbo``."""
    return "databento." + dataset.lower().replace(".", "-") + ".mbo"


def read_mbo(
    path: str | Path,
    *,
    underlying_for_root: Mapping[str, str] | None = None,
    depth: int = schemas.BOOK_DEPTH,
) -> ReadResult:
    """Read a Databento MBO file into ``futures_trades`` and ``futures_mbp10``.

    Parameters
    ----------
    path : str or Path
        DBN file, zstd-compressed (``.dbn.zst``) or plain (``.dbn``), schema ``mbo``
        (or a mixed live capture, whose MBO records are used and whose
        ``SymbolMappingMsg`` records give the symbols).
    underlying_for_root : mapping of str to str, optional
        Futures root -> the underlying partition it serves. Defaults to
        ``settings.DEFAULT.universe.futures_proxies`` (``{"ES": "SPY"}``).
    depth : int
        Levels per side written to ``futures_mbp10`` (1 to
        :data:`m17_platform.schemas.BOOK_DEPTH` = 10, the levels the schema holds);
        with a smaller depth the deeper level columns are null.

    Returns
    -------
    ReadResult
        ``tables["futures_trades"]`` and ``tables["futures_mbp10"]`` conformed to
        their schemas (ts int64 ns UTC, prices float64 dollars, sizes int64
        contracts), in file order; ``stats`` as listed in the module docstring.

    Raises
    ------
    SourceFormatError
        Naming the file (and the 1-based record number or field where known): not a
        DBN stream, a truncated zstd frame or record, a schema other than MBO, a
        record of another type, an unknown action or side code, a trade without a
        valid timestamp, an instrument the symbology does not name, or a product
        root with no configured underlying.
    ValueError
        If ``depth`` is not between 1 and ``schemas.BOOK_DEPTH``.
    """
    import databento as db

    path = Path(path)
    if not 1 <= depth <= schemas.BOOK_DEPTH:
        raise ValueError(f"depth must be between 1 and {schemas.BOOK_DEPTH}, got {depth}")
    roots = dict(DEFAULT.universe.futures_proxies if underlying_for_root is None else underlying_for_root)

    plain = _dbn_bytes(path)
    store = db.DBNStore.from_bytes(plain)
    metadata = store.metadata
    schema = None if metadata.schema is None else str(metadata.schema)
    if schema is not None and schema != "mbo":
        raise SourceFormatError(str(path), None, "schema", f"expected an MBO file, the metadata says schema {schema!r}")
    _check_record_stream(path, plain, fixed=schema == "mbo")
    if schema == "mbo":
        records = store.to_ndarray()
        symbols = _symbols_from_metadata(path, metadata)
    else:  # mixed records (a live capture): MBO records plus symbol mappings
        records = store.to_ndarray(schema="mbo").reshape(-1)  # (0, 1) when there are none
        symbols = _symbols_from_stream(store)
    if len(records):
        bad = np.flatnonzero((records["rtype"] != MBO_RTYPE) | (records["length"].astype(np.int64) * 4 != MBO_RECORD_BYTES))
        if len(bad):
            raise SourceFormatError(str(path), int(bad[0]) + 1, "rtype", f"record is not an MBO record (rtype {records['rtype'][bad[0]]})")

    actions = records["action"].astype("U1")
    sides = records["side"].astype("U1")
    _check_codes(path, actions, ACTIONS, "action")
    _check_codes(path, sides, SIDES, "side")

    instrument_ids = records["instrument_id"].astype(np.int64)
    identity = _identity(path, np.unique(instrument_ids).tolist(), symbols, roots)
    source = source_name(str(metadata.dataset))
    exchange = _venue(records)

    trades = _trades(path, records, actions, sides, instrument_ids, identity, exchange, source)
    mbp, book_stats = _replay(records, actions, sides, instrument_ids, identity, source, depth)

    counts = Counter(actions.tolist())
    flags = records["flags"]
    stats: dict[str, int] = {"records": len(records)}
    for code in ACTIONS:
        stats[f"records_{code}"] = int(counts.get(code, 0))
    stats["snapshot_records"] = int(np.count_nonzero(flags & F_SNAPSHOT))
    stats["clear_records"] = stats["records_R"]
    stats["maybe_bad_book_records"] = int(np.count_nonzero(flags & F_MAYBE_BAD_BOOK))
    stats["bad_ts_recv_records"] = int(np.count_nonzero(flags & F_BAD_TS_RECV))
    stats["trades"] = trades.height
    stats["mbp10_rows"] = mbp.height
    stats["instruments"] = len(identity)
    stats.update(book_stats)

    tables = {
        schemas.FUTURES_TRADES.name: pl.from_arrow(schemas.conform(trades, schemas.FUTURES_TRADES, origin=str(path))),
        schemas.FUTURES_MBP10.name: pl.from_arrow(schemas.conform(mbp, schemas.FUTURES_MBP10, origin=str(path))),
    }
    return ReadResult(tables=tables, stats=stats)


# --- decoding and integrity ---------------------------------------------------------------


def _dbn_bytes(path: Path) -> bytes:
    """The file's uncompressed DBN bytes; every zstd frame must be complete."""
    import zstandard

    raw = path.read_bytes()
    if not raw:
        raise SourceFormatError(str(path), None, None, "empty file, expected a DBN stream")
    if raw[:4] == _ZSTD_MAGIC:
        dctx = zstandard.ZstdDecompressor()
        chunks: list[bytes] = []
        rest = raw
        frames = 0
        while rest:
            dobj = dctx.decompressobj()
            try:
                chunks.append(dobj.decompress(rest))
            except zstandard.ZstdError as exc:
                raise SourceFormatError(str(path), None, None, f"corrupt zstd frame {frames + 1}: {exc}") from exc
            if not dobj.eof:
                raise SourceFormatError(
                    str(path), None, None, f"truncated zstd stream: frame {frames + 1} ends before its end marker"
                )
            frames += 1
            rest = dobj.unused_data
        raw = b"".join(chunks)
    if raw[:3] != _DBN_MAGIC or len(raw) < 8:
        raise SourceFormatError(str(path), None, None, "not a DBN stream (no 'DBN' header)")
    (meta_len,) = struct.unpack_from("<I", raw, 4)
    if 8 + meta_len > len(raw):
        raise SourceFormatError(str(path), None, None, f"truncated DBN metadata ({len(raw) - 8} of {meta_len} bytes)")
    return raw


def _check_record_stream(path: Path, plain: bytes, *, fixed: bool) -> None:
    """The record area must hold whole records: 56-byte MBO records (``fixed``), or for a
    mixed stream records whose length byte (in 4-byte words) walks exactly to the end."""
    (meta_len,) = struct.unpack_from("<I", plain, 4)
    start = 8 + meta_len
    body = len(plain) - start
    if fixed:
        if body % MBO_RECORD_BYTES:
            whole = body // MBO_RECORD_BYTES
            raise SourceFormatError(
                str(path),
                whole + 1,
                None,
                f"truncated DBN record: {body % MBO_RECORD_BYTES} of {MBO_RECORD_BYTES} bytes after {whole} whole records",
            )
        return
    offset, number = start, 0
    while offset < len(plain):
        number += 1
        size = plain[offset] * 4
        if size == 0 or offset + size > len(plain):
            raise SourceFormatError(
                str(path), number, "length", f"truncated or corrupt DBN record at byte {offset} (length {size})"
            )
        offset += size


def _check_codes(path: Path, codes: np.ndarray, allowed: tuple[str, ...], field: str) -> None:
    bad = np.flatnonzero(~np.isin(codes, allowed))
    if len(bad):
        i = int(bad[0])
        raise SourceFormatError(str(path), i + 1, field, f"unknown {field} code {str(codes[i])!r} (known: {', '.join(allowed)})")


def _symbols_from_metadata(path: Path, metadata) -> dict[int, str]:
    """instrument_id -> raw symbol from the metadata's symbology (stype_in raw_symbol).

    Parent or continuous symbology (``ES.FUT``, ``ES.c.0``) maps to instrument ids, not
    raw symbols: such files give an empty map and :func:`_identity` names the first
    instrument it cannot name. An id mapped to two raw symbols (ids are reused over
    the years) is refused rather than guessed.
    """
    out: dict[int, str] = {}
    if str(metadata.stype_in) != "raw_symbol":
        return out
    for raw_symbol, intervals in metadata.mappings.items():
        for interval in intervals:
            try:
                iid = int(interval["symbol"])
            except (TypeError, ValueError):
                continue
            if out.setdefault(iid, raw_symbol) != raw_symbol:
                raise SourceFormatError(
                    str(path), None, "instrument_id",
                    f"instrument {iid} maps to both {out[iid]!r} and {raw_symbol!r} in the file's symbology; "
                    "read one date range at a time",
                )
    return out


def _symbols_from_stream(store) -> dict[int, str]:
    """instrument_id -> raw symbol from a live capture's ``SymbolMappingMsg`` records."""
    import databento_dbn

    out: dict[int, str] = {}
    for record in store:
        if isinstance(record, databento_dbn.SymbolMappingMsg):
            out[int(record.instrument_id)] = str(record.stype_out_symbol)
    return out


def _identity(
    path: Path, instrument_ids: list[int], symbols: dict[int, str], roots: dict[str, str]
) -> dict[int, tuple[str, str]]:
    """instrument_id -> (raw symbol, underlying)."""
    out: dict[int, tuple[str, str]] = {}
    for iid in instrument_ids:
        symbol = symbols.get(iid)
        if symbol is None:
            raise SourceFormatError(
                str(path), None, "instrument_id", f"instrument {iid} has no raw symbol in the file's symbology"
            )
        try:
            root = futures_root(symbol)
        except ValueError as exc:
            raise SourceFormatError(str(path), None, "symbol", str(exc)) from exc
        if root not in roots:
            raise SourceFormatError(
                str(path),
                None,
                "symbol",
                f"no underlying configured for futures root {root!r} ({symbol}); known roots {sorted(roots)} "
                "(pass underlying_for_root or extend settings.universe.futures_proxies)",
            )
        out[iid] = (symbol, roots[root])
    return out


def _venue(records: np.ndarray) -> str | None:
    """Databento's venue code for the records' publisher (``GLBX`` for GLBX.MDP3)."""
    from databento import Publisher

    if not len(records):
        return None
    publishers = np.unique(records["publisher_id"]).tolist()
    venues = set()
    for pid in publishers:
        try:
            venues.add(str(Publisher.from_int(int(pid)).venue))
        except (ValueError, KeyError):
            venues.add(None)
    return venues.pop() if len(venues) == 1 else None


def _dollars(prices: np.ndarray) -> np.ndarray:
    """Fixed-point 1e-9 int64 -> float64 dollars (NaN where undefined)."""
    out = prices.astype(np.float64) / PRICE_SCALE
    out[prices == UNDEF_PRICE] = np.nan
    return out


def _recv(records: np.ndarray) -> pl.Series:
    recv = records["ts_recv"]
    bad = (recv == np.uint64(UNDEF_TIMESTAMP)) | ((records["flags"] & F_BAD_TS_RECV) != 0)
    return pl.Series("ts_recv_ns", recv.astype(np.int64)).set(pl.Series(bad), None)


# --- tables -------------------------------------------------------------------------------


def _event_columns(records: np.ndarray, iids: np.ndarray, identity: dict[int, tuple[str, str]]) -> dict:
    """The columns every futures table starts with: event and receive times (ns UTC), the
    packet sequence, and the instrument (raw symbol, vendor id, underlying it serves)."""
    return {
        "ts_ns": records["ts_event"].astype(np.int64),
        "sequence": records["sequence"].astype(np.int64),
        "ts_recv_ns": _recv(records),
        "symbol": [identity[i][0] for i in iids.tolist()],
        "instrument_id": iids,
        "underlying": [identity[i][1] for i in iids.tolist()],
    }


def _trades(
    path: Path,
    records: np.ndarray,
    actions: np.ndarray,
    sides: np.ndarray,
    instrument_ids: np.ndarray,
    identity: dict[int, tuple[str, str]],
    exchange: str | None,
    source: str,
) -> pl.DataFrame:
    idx = np.flatnonzero(actions == "T")
    t = records[idx]
    bad = np.flatnonzero((t["ts_event"] == np.uint64(UNDEF_TIMESTAMP)) | (t["price"] == UNDEF_PRICE))
    if len(bad):
        field = "ts_event" if t["ts_event"][bad[0]] == np.uint64(UNDEF_TIMESTAMP) else "price"
        raise SourceFormatError(str(path), int(idx[bad[0]]) + 1, field, f"trade record with an undefined {field}")
    return pl.DataFrame(
        {
            **_event_columns(t, instrument_ids[idx], identity),
            "price": _dollars(t["price"]),
            "size": t["size"].astype(np.int64),
            "exchange": pl.Series([exchange] * len(idx), dtype=pl.String),
            "conditions": pl.Series([None] * len(idx), dtype=pl.List(pl.String)),
            # CME reports the aggressor's order id on each trade record (0 = none, e.g. the
            # opening auction print): it tells apart prints that share a packet, price and size
            "trade_id": pl.Series([str(o) if o else None for o in t["order_id"].tolist()], dtype=pl.String),
            "canceled": np.zeros(len(idx), dtype=bool),
            "aggressor_side": [AGGRESSOR[s] for s in sides[idx].tolist()],
            "source": pl.Series([source] * len(idx), dtype=pl.String),
        }
    )


def _replay(
    records: np.ndarray,
    actions: np.ndarray,
    sides: np.ndarray,
    instrument_ids: np.ndarray,
    identity: dict[int, tuple[str, str]],
    source: str,
    depth: int,
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Replay every record through one :class:`MboBook` per instrument; emit the book after each event."""
    books: dict[int, MboBook] = {}
    in_snapshot: dict[int, bool] = {}
    traded: set[int] = set()
    last_applied: dict[int, int] = {}
    pending: dict[int, int] = {}  # instrument -> records applied since its last emission
    emitted_idx: list[int] = []  # record index whose fields describe the emitted row
    is_snapshot_row: list[bool] = []
    levels: list[tuple] = []  # per row: bids, asks as returned by MboBook.top
    crossed = locked = crossed_after_trade = 0

    def emit(iid: int, i: int, snapshot: bool) -> None:
        nonlocal crossed, locked, crossed_after_trade
        bids, asks = books[iid].top(depth)
        emitted_idx.append(i)
        is_snapshot_row.append(snapshot)
        levels.append((bids, asks))
        pending[iid] = 0
        if not snapshot and bids and asks:
            if bids[0][0] > asks[0][0]:
                crossed += 1
                if iid in traded:
                    crossed_after_trade += 1
            elif bids[0][0] == asks[0][0]:
                locked += 1

    act = actions.tolist()
    side = sides.tolist()
    oid = records["order_id"].tolist()
    px = records["price"].tolist()
    sz = records["size"].tolist()
    fl = records["flags"].tolist()
    iids = instrument_ids.tolist()
    for i in range(len(act)):
        iid = iids[i]
        book = books.get(iid)
        if book is None:
            book = books[iid] = MboBook()
            in_snapshot[iid] = False
            pending[iid] = 0
        flags = fl[i]
        snapshot = bool(flags & F_SNAPSHOT)
        if in_snapshot[iid] and not snapshot:
            # the snapshot ended without F_LAST: emit the book it built, once
            emit(iid, last_applied[iid], True)
            in_snapshot[iid] = False
        if act[i] == "T":
            traded.add(iid)
        book.apply(act[i], side[i], oid[i], px[i], sz[i], flags)
        last_applied[iid] = i
        pending[iid] += 1
        if snapshot:
            in_snapshot[iid] = True
            if flags & F_LAST:
                emit(iid, i, True)
                in_snapshot[iid] = False
        elif flags & F_LAST:
            emit(iid, i, False)
    for iid, still in in_snapshot.items():
        if still:
            emit(iid, last_applied[iid], True)

    book_stats = Counter()
    for book in books.values():
        book_stats.update(book.stats)
    stats = {
        "unknown_order_cancels": book_stats["unknown_cancel"],
        "unknown_order_modifies": book_stats["unknown_modify"],
        "duplicate_adds": book_stats["duplicate_add"],
        "oversize_cancels": book_stats["oversize_cancel"],
        "invalid_side_records": book_stats["invalid_side"],
        "undefined_price_records": book_stats["undefined_price"],
        "tob_records": book_stats["tob_records"],
        "snapshot_rows": int(sum(is_snapshot_row)),
        "crossed_book_events": crossed,
        "locked_book_events": locked,
        "crossed_book_events_after_first_trade": crossed_after_trade,
        "trailing_records": int(sum(pending.values())),
    }
    return _mbp_frame(records, actions, sides, instrument_ids, identity, source, emitted_idx, levels), stats


def _mbp_frame(
    records: np.ndarray,
    actions: np.ndarray,
    sides: np.ndarray,
    instrument_ids: np.ndarray,
    identity: dict[int, tuple[str, str]],
    source: str,
    emitted_idx: list[int],
    levels: list[tuple],
) -> pl.DataFrame:
    idx = np.asarray(emitted_idx, dtype=np.int64)
    r = records[idx]
    n = len(idx)
    columns: dict[str, object] = {
        **_event_columns(r, instrument_ids[idx], identity),
        "action": actions[idx].tolist(),
        "side": sides[idx].tolist(),
        "event_price": _dollars(r["price"]),
        "event_size": r["size"].astype(np.int64),
    }
    depth = schemas.BOOK_DEPTH
    for s, name in enumerate(("bid", "ask")):
        # MboBook.top returns the same tuple while a side's top levels are unchanged:
        # fill one (level, field) block per distinct tuple and index rows into them
        distinct: dict[int, int] = {}
        blocks: list[tuple] = []
        ref = np.empty(n, dtype=np.int64)
        for row, pair in enumerate(levels):
            side_levels = pair[s]
            k = distinct.get(id(side_levels))
            if k is None:
                k = distinct[id(side_levels)] = len(blocks)
                blocks.append(side_levels)
            ref[row] = k
        # size -1 marks an empty level (a resting level always has size >= 1)
        cube = np.full((len(blocks), depth, 3), -1, dtype=np.int64)
        for k, block in enumerate(blocks):
            if block:
                cube[k, : len(block)] = block
        cube = cube[ref]
        for k in range(depth):
            empty = pl.Series(cube[:, k, 1] < 0)
            price = cube[:, k, 0].astype(np.float64) / PRICE_SCALE
            columns[f"{name}_px_{k:02d}"] = pl.Series(price).set(empty, None)
            columns[f"{name}_sz_{k:02d}"] = pl.Series(cube[:, k, 1]).set(empty, None)
            columns[f"{name}_ct_{k:02d}"] = pl.Series(cube[:, k, 2]).set(empty, None)
    columns["source"] = pl.Series([source] * n, dtype=pl.String)
    frame = pl.DataFrame(columns)
    return frame.with_columns(pl.col("event_price").fill_nan(None))
