"""Databento record arrays -> raw-table frames, one converter per (schema, asset class).

Used by :mod:`m17_platform.sources.databento` (which documents the mapping of every
schema to the raw tables). A :class:`Converter` takes the records of one DBN stream
chunk by chunk (:meth:`Converter.feed`) and keeps the state that spans chunks (order
books, per-venue quotes, prints sharing a packet), so a file of any size streams.
Fixed-point prices become float64 dollars here, once (``price / 1e9``, the operation
``databento``'s ``to_df(price_type="float")`` uses). Every frame also carries a
``_part_ts`` column (int64 ns UTC: the instant that decides the row's partition),
which the caller drops.

Record layouts: https://databento.com/docs/schemas (trades, tbbo, mbp-1, mbp-10, mbo,
bbo, cbbo/tcbbo/cmbp-1, definition). No Dagster, no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numba
import numpy as np
import polars as pl

from m17_platform import calendar, schemas
from m17_platform.book import F_BAD_TS_RECV, F_LAST, F_MAYBE_BAD_BOOK, F_SNAPSHOT, MboReplay
from m17_platform.errors import SourceFormatError
from m17_platform.settings import SessionSettings, UniverseSettings
from m17_platform.sources.databento_io import (
    PRICE_SCALE,
    UNDEF_PRICE,
    UNDEF_TIMESTAMP,
    Definition,
    SymbolMap,
    chars,
    dollars,
    venues,
)
from m17_platform.symbols import occ_symbol

FUTURES = "futures"
OPTIONS = "options"
EQUITIES = "equities"
ASSET_CLASSES = (FUTURES, OPTIONS, EQUITIES)

ACTIONS = ("A", "C", "M", "R", "T", "F", "N")
SIDES = ("B", "A", "N")
AGGRESSOR = {"B": "B", "A": "S", "N": "N"}
"""Databento trade side (the aggressor's) -> schema aggressor side: B buyer-initiated,
S seller-initiated (Databento ``A``), N none."""

_QUOTE_TABLE = {OPTIONS: schemas.OPTION_QUOTES.name, EQUITIES: schemas.STOCK_QUOTES.name}
_TRADE_TABLE = {
    FUTURES: schemas.FUTURES_TRADES.name,
    OPTIONS: schemas.OPTION_TRADES.name,
    EQUITIES: schemas.STOCK_TRADES.name,
}
_MBP10 = schemas.FUTURES_MBP10.name

TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    FUTURES: {
        "trades": (_TRADE_TABLE[FUTURES],),
        "tbbo": (_TRADE_TABLE[FUTURES],),
        "mbo": (_TRADE_TABLE[FUTURES], _MBP10),
        "mbp-10": (_MBP10,),
        "mbp-1": (_MBP10,),
        "bbo-1s": (_MBP10,),
        "bbo-1m": (_MBP10,),
    },
    OPTIONS: {
        "trades": (_TRADE_TABLE[OPTIONS],),
        "tbbo": (_TRADE_TABLE[OPTIONS], _QUOTE_TABLE[OPTIONS]),
        "tcbbo": (_TRADE_TABLE[OPTIONS], _QUOTE_TABLE[OPTIONS]),
        "mbp-1": (_QUOTE_TABLE[OPTIONS],),
        "cmbp-1": (_QUOTE_TABLE[OPTIONS],),
        "cbbo-1s": (_QUOTE_TABLE[OPTIONS],),
        "cbbo-1m": (_QUOTE_TABLE[OPTIONS],),
        "definition": (schemas.OPTION_CONTRACTS.name,),
    },
    EQUITIES: {
        "trades": (_TRADE_TABLE[EQUITIES],),
        "tbbo": (_TRADE_TABLE[EQUITIES], _QUOTE_TABLE[EQUITIES]),
        "tcbbo": (_TRADE_TABLE[EQUITIES], _QUOTE_TABLE[EQUITIES]),
        "mbo": (_TRADE_TABLE[EQUITIES], _QUOTE_TABLE[EQUITIES]),
        "mbp-1": (_QUOTE_TABLE[EQUITIES],),
        "mbp-10": (_QUOTE_TABLE[EQUITIES],),
        "cmbp-1": (_QUOTE_TABLE[EQUITIES],),
        "bbo-1s": (_QUOTE_TABLE[EQUITIES],),
        "bbo-1m": (_QUOTE_TABLE[EQUITIES],),
        "cbbo-1s": (_QUOTE_TABLE[EQUITIES],),
        "cbbo-1m": (_QUOTE_TABLE[EQUITIES],),
    },
}
"""asset class -> schema -> raw tables its records fill (see the module docstring of
:mod:`m17_platform.sources.databento`). A schema absent here fills no table."""

_FUTURES_SYMBOL = re.compile(r"^(?P<root>[A-Z0-9]+?)(?P<month>[FGHJKMNQUVXZ])(?P<year>[0-9]{1,2})$")
_OSI = re.compile(r"^(?P<root>[A-Z0-9.]{1,6}) *(?P<yymmdd>\d{6})(?P<right>[CP])(?P<strike>\d{8})$")


def source_name(dataset: str, schema: str = "mbo") -> str:
    """``source`` column value: ``GLBX.MDP3``, ``mbo`` -> ``databento.glbx-mdp3.mbo``."""
    return "databento." + dataset.lower().replace(".", "-") + "." + schema


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


@dataclass(frozen=True)
class OptionIdentity:
    """An option contract named from its OSI raw symbol (and its definition where known)."""

    option_symbol: str
    underlying: str
    root: str
    expiration: object  # datetime.date
    strike: float
    right: str


def parse_osi(raw_symbol: str) -> tuple[str, object, str, float]:
    """OPRA raw symbol (OSI, root padded to 6) -> (root, expiration date, right, strike dollars).

    ``"AAPL  250221C00250000"`` -> ``("AAPL", date(2025, 2, 21), "C", 250.0)``.

    Raises
    ------
    ValueError
        If the symbol is not ROOT(1-6) + YYMMDD + C/P + 8-digit strike in thousandths.
    """
    import datetime as dt

    m = _OSI.match(raw_symbol)
    if m is None:
        raise ValueError(f"{raw_symbol!r} is not an OSI option symbol (ROOT YYMMDD C|P STRIKEx1000)")
    d = m["yymmdd"]
    return m["root"], dt.date(2000 + int(d[:2]), int(d[2:4]), int(d[4:])), m["right"], int(m["strike"]) / 1000.0


@dataclass
class ReaderContext:
    """What a converter needs besides the records.

    Attributes
    ----------
    name : str
        File (or request) name used in errors.
    dataset : str
        Dataset code (``GLBX.MDP3``).
    schema : str
        Schema of the records fed (``trades``, ``mbo``, ...).
    asset_class : str
        ``futures``, ``options`` or ``equities``.
    symbols : SymbolMap
        instrument_id -> raw symbol.
    futures_underlyings : mapping of str to str
        Futures raw symbol or root -> the underlying partition it serves (``ES`` -> ``SPY``).
    option_underlyings : mapping of str to str
        Option root -> underlying when the definition does not say (``SPXW`` -> ``SPX``).
    universe, sessions : settings objects (multiplier, European roots, expiry instants).
    depth : int
        Levels per side of ``futures_mbp10`` rebuilt from MBO (1-10).
    """

    name: str
    dataset: str
    schema: str
    asset_class: str
    symbols: SymbolMap
    futures_underlyings: Mapping[str, str]
    option_underlyings: Mapping[str, str]
    universe: UniverseSettings
    sessions: SessionSettings
    depth: int = schemas.BOOK_DEPTH
    _futures: dict = field(default_factory=dict)
    _options: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        return source_name(self.dataset, self.schema)

    # --- identities -------------------------------------------------------------------

    def futures_identity(self, raw: str, record: int | None) -> tuple[str, str]:
        """(symbol, underlying) of a futures raw symbol; errors name the record."""
        out = self._futures.get(raw)
        if out is None:
            under = self.futures_underlyings.get(raw)
            if under is None:
                try:
                    root = futures_root(raw)
                except ValueError as exc:
                    raise SourceFormatError(self.name, record, "symbol", str(exc)) from exc
                under = self.futures_underlyings.get(root)
                if under is None:
                    raise SourceFormatError(
                        self.name, record, "symbol",
                        f"no underlying configured for futures root {root!r} ({raw}); known roots "
                        f"{sorted(self.futures_underlyings)} (pass underlying_for_root or extend "
                        "settings.universe.futures_proxies)",
                    )
            out = self._futures[raw] = (raw, under)
        return out

    def option_identity(self, raw: str, definition: Definition | None, record: int | None) -> OptionIdentity:
        """The contract named by an OPRA raw symbol; errors name the record."""
        out = self._options.get(raw)
        if out is None:
            try:
                root, expiration, right, strike = parse_osi(raw)
            except ValueError as exc:
                raise SourceFormatError(self.name, record, "raw_symbol", str(exc)) from exc
            under = (definition.underlying if definition is not None else "") or self.option_underlyings.get(root, root)
            out = self._options[raw] = OptionIdentity(
                occ_symbol(root, expiration, right, strike), under, root, expiration, strike, right
            )
        return out


# --- shared column builders -------------------------------------------------------------


def _raw_symbols(ctx: ReaderContext, records: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Factorized raw symbols of ``records`` (codes, names); an id nobody names is an error
    naming the record (``positions``: 0-based index in the file of each record)."""
    codes, names, bad = ctx.symbols.resolve(records["instrument_id"], _resolve_ts(records))
    if bad is not None:
        iid = int(records["instrument_id"][bad])
        raise SourceFormatError(
            ctx.name, int(positions[bad]) + 1, "instrument_id",
            f"instrument {iid} has no raw symbol in the file's symbology or the definitions given",
        )
    return codes, names


def _resolve_ts(records: np.ndarray) -> np.ndarray:
    """ts_recv, or ts_event where ts_recv is undefined: the instant symbology resolves at."""
    recv = records["ts_recv"]
    return np.where(recv == np.uint64(UNDEF_TIMESTAMP), records["ts_event"], recv)


def _identity_columns(ctx: ReaderContext, records: np.ndarray, positions: np.ndarray) -> dict[str, object]:
    """Instrument columns of the asset class's tables, one entry per record: computed once
    per distinct raw symbol and gathered. ``positions``: 0-based file index of each record,
    for errors."""
    positions = np.asarray(positions, dtype=np.int64)
    codes, names = _raw_symbols(ctx, records, positions)
    _, first = np.unique(codes, return_index=True)  # codes are 0..len(names)-1, all present
    first = first.tolist()
    if ctx.asset_class == FUTURES:
        ids = [ctx.futures_identity(s, int(positions[f]) + 1) for s, f in zip(names, first)]
        return {
            "symbol": np.array([i[0] for i in ids], dtype=object)[codes],
            "underlying": np.array([i[1] for i in ids], dtype=object)[codes],
        }
    if ctx.asset_class == EQUITIES:
        symbols = np.array(names, dtype=object)[codes]
        return {"symbol": symbols, "underlying": symbols}
    ts = _resolve_ts(records)
    ids = []
    for s, f in zip(names, first):
        definition = ctx.symbols.definition(int(records["instrument_id"][f]), int(ts[f]))
        ids.append(ctx.option_identity(s, definition, int(positions[f]) + 1))
    return {
        "option_symbol": np.array([i.option_symbol for i in ids], dtype=object)[codes],
        "underlying": np.array([i.underlying for i in ids], dtype=object)[codes],
        "root": np.array([i.root for i in ids], dtype=object)[codes],
        "expiration": pl.Series([i.expiration for i in ids], dtype=pl.Date).gather(codes),
        "strike": np.array([i.strike for i in ids], dtype=np.float64)[codes],
        "right": np.array([i.right for i in ids], dtype=object)[codes],
    }


def _sequence(records: np.ndarray, start: int) -> np.ndarray:
    """The venue sequence number, or the record's 0-based position in the file when the
    schema has none (CBBO)."""
    if "sequence" in records.dtype.names:
        return records["sequence"].astype(np.int64)
    return np.arange(start, start + len(records), dtype=np.int64)


def _ts_recv(records: np.ndarray) -> pl.Series:
    """ts_recv as Int64, null where undefined or flagged ``F_BAD_TS_RECV``."""
    recv = records["ts_recv"]
    bad = (recv == np.uint64(UNDEF_TIMESTAMP)) | ((records["flags"] & F_BAD_TS_RECV) != 0)
    series = pl.Series("ts_recv_ns", recv.astype(np.int64))
    return series.set(pl.Series(bad), None) if bad.any() else series


def _strs(values, n: int) -> pl.Series:
    """A String series: one value repeated ``n`` times, or a sequence / object array
    (built from a list: an object array of only None would not cast)."""
    if isinstance(values, (str, type(None))):
        return pl.Series([values] * n, dtype=pl.String)
    return pl.Series(list(values), dtype=pl.String)


def _check_defined(ctx: ReaderContext, records: np.ndarray, start: int, idx: np.ndarray, fields: tuple[str, ...]) -> None:
    for name in fields:
        values = records[name][idx]
        undef = UNDEF_TIMESTAMP if values.dtype == np.uint64 else UNDEF_PRICE
        bad = np.flatnonzero(values == undef)
        if len(bad):
            raise SourceFormatError(
                ctx.name, start + int(idx[bad[0]]) + 1, name, f"trade record with an undefined {name}"
            )


# --- trades ---------------------------------------------------------------------------------


class _PacketOrdinal:
    """Ordinal of a print among the instrument's prints that share (ts_recv, sequence),
    carried across chunks (CME packs several prints into one packet)."""

    def __init__(self) -> None:
        self._recv: int | None = None  # ts_recv of the last chunk's last print
        self._carry: dict[tuple[int, int], int] = {}  # (instrument, sequence) -> prints seen at that ts_recv

    def __call__(self, iid: np.ndarray, recv: np.ndarray, seq: np.ndarray) -> np.ndarray:
        frame = pl.DataFrame({"i": iid.astype(np.int64), "r": recv.astype(np.int64), "s": seq.astype(np.int64)})
        k = frame.select(pl.int_range(pl.len()).over(["i", "r", "s"])).to_series().to_numpy().astype(np.int64)
        if self._carry and len(k):
            cont = np.flatnonzero(frame["r"].to_numpy() == self._recv)
            i_, s_ = frame["i"].to_numpy(), frame["s"].to_numpy()
            for j in cont.tolist():
                k[j] += self._carry.get((int(i_[j]), int(s_[j])), 0)
        if len(k):
            last = int(frame["r"][-1])
            tail = frame.with_columns(pl.Series("k", k)).filter(pl.col("r") == last)
            self._recv = last
            self._carry = {(i, s): kk + 1 for i, s, kk in tail.group_by(["i", "s"]).agg(pl.col("k").max()).iter_rows()}
        return k


def trades_frame(ctx: ReaderContext, records: np.ndarray, start: int, idx: np.ndarray,
                 ordinal: _PacketOrdinal | None = None, trade_ids: list | None = None) -> pl.DataFrame:
    """Rows of the asset class's trade table for ``records[idx]`` (trade records).

    ``ts_ns`` = ``ts_event``; ``price`` dollars; ``size`` contracts / shares; ``exchange``
    the publisher's venue MIC; ``aggressor_side`` (futures, equities) from the record's
    side; ``trade_id`` given (MBO: the aggressor's order id) or, for futures,
    ``"<sequence>.<k>"`` (k = ordinal within the packet); null for options and equities.

    Raises
    ------
    SourceFormatError
        A trade with an undefined ``ts_event`` or ``price`` (naming the record).
    """
    t = records[idx]
    n = len(idx)
    _check_defined(ctx, records, start, idx, ("ts_event", "price"))
    ident = _identity_columns(ctx, t, start + idx)
    seq = _sequence(records, start)[idx]
    price, _ = dollars(t["price"])
    cols: dict[str, object] = {"ts_ns": t["ts_event"].astype(np.int64), "sequence": seq}
    if ctx.asset_class == FUTURES:
        cols |= {"ts_recv_ns": _ts_recv(t), "symbol": ident["symbol"], "instrument_id": t["instrument_id"].astype(np.int64),
                 "underlying": ident["underlying"]}
    else:
        cols |= ident
    if trade_ids is None and ctx.asset_class == FUTURES and ordinal is not None:
        k = ordinal(t["instrument_id"], t["ts_recv"], seq)
        trade_ids = [f"{s}:{j}" for s, j in zip(seq.tolist(), k.tolist())]
    cols |= {
        "price": price,
        "size": t["size"].astype(np.int64),
        "exchange": _strs(venues(t["publisher_id"]), n),
        "conditions": pl.Series([None] * n, dtype=pl.List(pl.String)),
        "trade_id": _strs(trade_ids if trade_ids is not None else None, n),
        "canceled": np.zeros(n, dtype=bool),
    }
    if ctx.asset_class != OPTIONS:
        cols["aggressor_side"] = [AGGRESSOR.get(s, None) for s in chars(t["side"]).tolist()]
    cols["source"] = _strs(ctx.source, n)
    cols["_part_ts"] = t["ts_event"].astype(np.int64)
    frame = pl.DataFrame(cols)
    return frame.with_columns(pl.col("aggressor_side").cast(pl.String)) if "aggressor_side" in cols else frame


# --- quotes ---------------------------------------------------------------------------------


def quotes_frame(ctx: ReaderContext, records: np.ndarray, start: int, idx: np.ndarray, *, ts: np.ndarray,
                 bid_px: np.ndarray, bid_sz: np.ndarray, ask_px: np.ndarray, ask_sz: np.ndarray,
                 bid_exchange, ask_exchange, stats: Counter) -> pl.DataFrame:
    """Rows of ``option_quotes`` / ``stock_quotes``: one per ``records[idx]``, with the given
    best bid/ask (fixed-point, :data:`UNDEF_PRICE` = no quote on that side).

    A side whose price is undefined (or whose size is 0) is null (price, size and
    exchange); counted in ``stats``: ``undefined_prices`` (price values nulled),
    ``empty_quotes`` (both sides null), ``crossed_quotes`` / ``locked_quotes`` (bid >
    / == ask; kept, never dropped).
    """
    r = records[idx]
    n = len(idx)
    ident = _identity_columns(ctx, r, start + np.asarray(idx))
    bid_px = np.asarray(bid_px, dtype=np.int64)
    ask_px = np.asarray(ask_px, dtype=np.int64)
    bid_sz = np.asarray(bid_sz, dtype=np.int64)
    ask_sz = np.asarray(ask_sz, dtype=np.int64)
    no_bid = (bid_px == UNDEF_PRICE) | (bid_sz <= 0)
    no_ask = (ask_px == UNDEF_PRICE) | (ask_sz <= 0)
    bid, _ = dollars(np.where(no_bid, UNDEF_PRICE, bid_px))
    ask, _ = dollars(np.where(no_ask, UNDEF_PRICE, ask_px))
    stats["undefined_prices"] += int(np.count_nonzero(no_bid) + np.count_nonzero(no_ask))
    stats["empty_quotes"] += int(np.count_nonzero(no_bid & no_ask))
    both = ~no_bid & ~no_ask
    stats["crossed_quotes"] += int(np.count_nonzero(both & (bid_px > ask_px)))
    stats["locked_quotes"] += int(np.count_nonzero(both & (bid_px == ask_px)))
    cols: dict[str, object] = {"ts_ns": np.asarray(ts, dtype=np.int64), "sequence": _sequence(records, start)[idx]}
    cols |= ident
    bex = _strs(bid_exchange, n)
    aex = _strs(ask_exchange, n)
    cols |= {
        "bid": bid,
        "bid_size": pl.Series(bid_sz).set(pl.Series(no_bid), None),
        "ask": ask,
        "ask_size": pl.Series(ask_sz).set(pl.Series(no_ask), None),
        "bid_exchange": bex.set(pl.Series(no_bid), None),
        "ask_exchange": aex.set(pl.Series(no_ask), None),
        "source": _strs(ctx.source, n),
        "_part_ts": np.asarray(ts, dtype=np.int64),
    }
    return pl.DataFrame(cols)


@numba.njit(cache=True)
def _consolidate(inst, ven, bpx, bsz, apx, asz, ts, emit,
                 st_bpx, st_bsz, st_bts, st_apx, st_asz, st_ats, last, undef,
                 out_bpx, out_bsz, out_bven, out_apx, out_asz, out_aven, out_emit):  # pragma: no cover - numba
    """Per-venue top of book -> consolidated best bid/offer, record by record.

    Venue state ``st_*[instrument, venue]`` takes each record's level 0; a side with an
    undefined price or size 0 is empty. The consolidated side is the best price across
    venues, ties broken by larger size, then by the earlier update (OPRA's price, size,
    time priority). ``out_emit[i]`` is True where ``emit[i]`` and the consolidated quote
    (prices, sizes, venues) differs from the last one emitted for the instrument.
    """
    n = inst.shape[0]
    nv = st_bpx.shape[1]
    for i in range(n):
        k = inst[i]
        v = ven[i]
        if bpx[i] == undef or bsz[i] <= 0:
            st_bpx[k, v] = undef
            st_bsz[k, v] = 0
        elif st_bpx[k, v] != bpx[i] or st_bsz[k, v] != bsz[i]:
            st_bpx[k, v] = bpx[i]
            st_bsz[k, v] = bsz[i]
            st_bts[k, v] = ts[i]
        if apx[i] == undef or asz[i] <= 0:
            st_apx[k, v] = undef
            st_asz[k, v] = 0
        elif st_apx[k, v] != apx[i] or st_asz[k, v] != asz[i]:
            st_apx[k, v] = apx[i]
            st_asz[k, v] = asz[i]
            st_ats[k, v] = ts[i]
        if not emit[i]:
            out_emit[i] = False
            continue
        bb = undef
        bs = 0
        bv = -1
        bt = 0
        ab = undef
        as_ = 0
        av = -1
        at = 0
        for u in range(nv):
            p = st_bpx[k, u]
            if p != undef:
                s = st_bsz[k, u]
                t = st_bts[k, u]
                if bv < 0 or p > bb or (p == bb and (s > bs or (s == bs and t < bt))):
                    bb = p
                    bs = s
                    bv = u
                    bt = t
            p = st_apx[k, u]
            if p != undef:
                s = st_asz[k, u]
                t = st_ats[k, u]
                if av < 0 or p < ab or (p == ab and (s > as_ or (s == as_ and t < at))):
                    ab = p
                    as_ = s
                    av = u
                    at = t
        out_bpx[i] = bb
        out_bsz[i] = bs
        out_bven[i] = bv
        out_apx[i] = ab
        out_asz[i] = as_
        out_aven[i] = av
        changed = (last[k, 0] != bb or last[k, 1] != bs or last[k, 2] != bv
                   or last[k, 3] != ab or last[k, 4] != as_ or last[k, 5] != av)
        out_emit[i] = changed
        if changed:
            last[k, 0] = bb
            last[k, 1] = bs
            last[k, 2] = bv
            last[k, 3] = ab
            last[k, 4] = as_
            last[k, 5] = av


class QuoteConsolidator:
    """The consolidated BBO across publishers (venues) of per-venue top-of-book records,
    with its state carried from chunk to chunk.

    OPRA's MBP-1 is each exchange's BBO (Databento publishes OPRA's own consolidated BBO
    as CMBP-1 / CBBO / TCBBO); equities datasets with several publishers likewise. With a
    single publisher the consolidated quote is that publisher's.
    """

    def __init__(self) -> None:
        self._inst: dict[int, int] = {}
        self._ven: dict[int, int] = {}
        self._venue_ids: list[int] = []
        self._state = np.zeros((0, 0, 6), dtype=np.int64)  # bpx, bsz, bts, apx, asz, ats
        self._last = np.zeros((0, 6), dtype=np.int64)

    def _dense(self, values: np.ndarray, table: dict[int, int], ids: list | None) -> np.ndarray:
        uniq, inv = np.unique(values.astype(np.int64), return_inverse=True)
        codes = []
        for u in uniq.tolist():
            k = table.get(u)
            if k is None:
                k = table[u] = len(table)
                if ids is not None:
                    ids.append(u)
            codes.append(k)
        return np.asarray(codes, dtype=np.int64)[inv.reshape(-1)]

    def feed(self, iid, publisher, bid_px, bid_sz, ask_px, ask_sz, ts, emit):
        """Returns (bid_px, bid_sz, bid_publisher, ask_px, ask_sz, ask_publisher, emit) per
        record; publisher 0 and price :data:`UNDEF_PRICE` where a side is empty."""
        inst = self._dense(iid, self._inst, None)
        ven = self._dense(publisher, self._ven, self._venue_ids)
        ni, nv = len(self._inst), len(self._ven)
        if self._state.shape[0] < ni or self._state.shape[1] < nv:
            grown = np.zeros((ni, nv, 6), dtype=np.int64)
            grown[:, :, 0] = UNDEF_PRICE
            grown[:, :, 3] = UNDEF_PRICE
            grown[: self._state.shape[0], : self._state.shape[1]] = self._state
            self._state = grown
            last = np.full((ni, 6), -2, dtype=np.int64)
            last[: self._last.shape[0]] = self._last
            self._last = last
        n = len(inst)
        # rows not emitted keep "no quote": price UNDEF, size 0, venue -1 (publisher 0)
        out = [np.full(n, fill, dtype=np.int64) for fill in (UNDEF_PRICE, 0, -1, UNDEF_PRICE, 0, -1)]
        out_emit = np.zeros(n, dtype=np.bool_)
        st = [np.ascontiguousarray(self._state[:, :, j]) for j in range(6)]
        _consolidate(
            inst, ven, np.asarray(bid_px, np.int64), np.asarray(bid_sz, np.int64), np.asarray(ask_px, np.int64),
            np.asarray(ask_sz, np.int64), np.asarray(ts, np.int64), np.asarray(emit, np.bool_),
            st[0], st[1], st[2], st[3], st[4], st[5], self._last, np.int64(UNDEF_PRICE), *out, out_emit,
        )
        for j in range(6):
            self._state[:, :, j] = st[j]
        pubs = np.asarray(self._venue_ids + [0], dtype=np.int64)  # index -1 -> publisher 0 (none)
        return out[0], out[1], pubs[out[2]], out[3], out[4], pubs[out[5]], out_emit


# --- futures_mbp10 from MBP / BBO records -----------------------------------------------------


def _level_columns(levels_px: list, levels_sz: list, levels_ct: list, n: int) -> dict[str, pl.Series]:
    """``{bid,ask}_{px,sz,ct}_NN`` for 10 levels; entries None are absent levels (all null)."""
    cols: dict[str, pl.Series] = {}
    for side in ("bid", "ask"):
        for k in range(schemas.BOOK_DEPTH):
            px = levels_px[side][k] if k < len(levels_px[side]) else None
            if px is None:
                cols[f"{side}_px_{k:02d}"] = pl.Series([None] * n, dtype=pl.Float64)
                cols[f"{side}_sz_{k:02d}"] = pl.Series([None] * n, dtype=pl.Int64)
                cols[f"{side}_ct_{k:02d}"] = pl.Series([None] * n, dtype=pl.Int64)
                continue
            px = np.asarray(px, dtype=np.int64)
            empty = pl.Series(px == UNDEF_PRICE)
            cols[f"{side}_px_{k:02d}"], _ = dollars(px)
            cols[f"{side}_sz_{k:02d}"] = pl.Series(np.asarray(levels_sz[side][k], dtype=np.int64)).set(empty, None)
            ct = levels_ct[side][k]
            cols[f"{side}_ct_{k:02d}"] = (
                pl.Series([None] * n, dtype=pl.Int64) if ct is None
                else pl.Series(np.asarray(ct, dtype=np.int64)).set(empty, None)
            )
    return cols


def mbp_records_frame(ctx: ReaderContext, records: np.ndarray, start: int, idx: np.ndarray, stats: Counter) -> pl.DataFrame:
    """``futures_mbp10`` rows straight from MBP-10, MBP-1 or BBO records (levels the record
    has; deeper levels null). BBO rows: ``ts_ns`` = ``ts_recv`` (the interval end),
    ``action`` ``N``, ``event_price`` / ``event_size`` the last trade's."""
    r = records[idx]
    n = len(idx)
    ident = _identity_columns(ctx, r, start + np.asarray(idx))
    sampled = ctx.schema.startswith("bbo")
    ts = (r["ts_recv"] if sampled else r["ts_event"]).astype(np.int64)
    depth = sum(1 for name in r.dtype.names if name.startswith("bid_px_"))
    px = {s: [r[f"{s}_px_{k:02d}"] for k in range(depth)] for s in ("bid", "ask")}
    sz = {s: [r[f"{s}_sz_{k:02d}"] for k in range(depth)] for s in ("bid", "ask")}
    ct = {s: [r[f"{s}_ct_{k:02d}"] for k in range(depth)] for s in ("bid", "ask")}
    for s in ("bid", "ask"):
        stats["undefined_prices"] += int(sum(np.count_nonzero(p == UNDEF_PRICE) for p in px[s]))
    both = (px["bid"][0] != UNDEF_PRICE) & (px["ask"][0] != UNDEF_PRICE)
    stats["crossed_quotes"] += int(np.count_nonzero(both & (px["bid"][0] > px["ask"][0])))
    stats["locked_quotes"] += int(np.count_nonzero(both & (px["bid"][0] == px["ask"][0])))
    event_price, _ = dollars(r["price"])
    cols: dict[str, object] = {
        "ts_ns": ts,
        "sequence": _sequence(records, start)[idx],
        "ts_recv_ns": _ts_recv(r),
        "symbol": ident["symbol"],
        "instrument_id": r["instrument_id"].astype(np.int64),
        "underlying": ident["underlying"],
        "action": ["N"] * n if sampled else chars(r["action"]).tolist(),
        "side": chars(r["side"]).tolist(),
        "event_price": event_price,
        "event_size": r["size"].astype(np.int64),
    }
    cols |= _level_columns(px, sz, ct, n)
    cols["source"] = _strs(ctx.source, n)
    cols["_part_ts"] = ts
    return pl.DataFrame(cols)


# --- MBO ------------------------------------------------------------------------------------


def mbo_book_frame(ctx: ReaderContext, rows: np.ndarray, levels: list[tuple]) -> pl.DataFrame:
    """``futures_mbp10`` rows: the event columns of ``rows`` and the book levels emitted after them."""
    n = len(rows)
    iids = rows["instrument_id"].astype(np.int64)
    # instruments were named (or refused) when their first record arrived
    ident = _identity_columns(ctx, rows, np.arange(n)) if n else {"symbol": [], "underlying": []}
    event_price, _ = dollars(rows["price"])
    columns: dict[str, object] = {
        "ts_ns": rows["ts_event"].astype(np.int64),
        "sequence": rows["sequence"].astype(np.int64),
        "ts_recv_ns": _ts_recv(rows),
        "symbol": _strs(ident["symbol"], n),
        "instrument_id": iids,
        "underlying": _strs(ident["underlying"], n),
        "action": pl.Series(chars(rows["action"]).tolist(), dtype=pl.String),
        "side": pl.Series(chars(rows["side"]).tolist(), dtype=pl.String),
        "event_price": event_price,
        "event_size": rows["size"].astype(np.int64),
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
        cube = np.full((max(len(blocks), 1), depth, 3), -1, dtype=np.int64)
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
    columns["source"] = _strs(ctx.source, n)
    columns["_part_ts"] = rows["ts_event"].astype(np.int64)
    return pl.DataFrame(columns)


# --- option_contracts ---------------------------------------------------------------------------


def contracts_frame(ctx: ReaderContext, records: np.ndarray, start: int, stats: Counter) -> pl.DataFrame:
    """``option_contracts`` rows from definition records of calls and puts.

    Strike, expiration and right come from the raw OSI symbol (checked against the
    definition's ``strike_price``, ``expiration`` and ``instrument_class``); the
    multiplier from ``contract_multiplier``, else ``universe.default_multiplier``
    (counted ``multiplier_defaulted``); exercise ``E`` for ``european_roots`` else ``A``;
    ``expiry_ts_ns`` the session close of the expiration day. Definitions of other
    classes (``definitions_not_options``) and deletions (``definitions_deleted``) are
    counted, not written.

    Raises
    ------
    SourceFormatError
        A raw symbol that is not OSI, or whose strike / expiration / right disagree with
        the definition's fields (naming the record and field).
    """
    import datetime as dt

    from m17_platform.sources.databento_io import definitions_from_records

    rows: dict[str, list] = {c: [] for c in ("option_symbol", "underlying", "root", "expiration", "strike", "right",
                                             "multiplier", "exercise_style", "expiry_ts_ns", "_part_ts")}
    expiry: dict[object, int] = {}
    for i, d in enumerate(definitions_from_records(records)):
        number = start + i + 1
        if d.security_update_action == "D":
            stats["definitions_deleted"] += 1
            continue
        if d.instrument_class not in ("C", "P"):
            stats["definitions_not_options"] += 1
            continue
        ident = ctx.option_identity(d.raw_symbol, d, number)
        if d.instrument_class != ident.right:
            raise SourceFormatError(ctx.name, number, "instrument_class",
                                    f"{d.raw_symbol!r} is a {ident.right} by its symbol, class {d.instrument_class!r}")
        if d.strike_price != UNDEF_PRICE and abs(d.strike_price / PRICE_SCALE - ident.strike) > 1e-6:
            raise SourceFormatError(ctx.name, number, "strike_price",
                                    f"{d.raw_symbol!r} has strike {ident.strike} by its symbol, "
                                    f"{d.strike_price / PRICE_SCALE} in the definition")
        if d.expiration is not None:
            exp_date = dt.datetime.fromtimestamp(d.expiration / 1e9, tz=dt.timezone.utc).date()
            if exp_date != ident.expiration:
                raise SourceFormatError(ctx.name, number, "expiration",
                                        f"{d.raw_symbol!r} expires {ident.expiration} by its symbol, {exp_date} in the definition")
        if ident.expiration not in expiry:
            expiry[ident.expiration] = calendar.expiry_instant_ns(ident.expiration, ctx.sessions)
        mult = d.contract_multiplier
        if mult is None or mult <= 0:
            stats["multiplier_defaulted"] += 1
            mult = ctx.universe.default_multiplier
        rows["option_symbol"].append(ident.option_symbol)
        rows["underlying"].append(ident.underlying)
        rows["root"].append(ident.root)
        rows["expiration"].append(ident.expiration)
        rows["strike"].append(ident.strike)
        rows["right"].append(ident.right)
        rows["multiplier"].append(mult)
        rows["exercise_style"].append("E" if ident.root in ctx.universe.european_roots else "A")
        rows["expiry_ts_ns"].append(expiry[ident.expiration])
        rows["_part_ts"].append(d.ts_recv)
    n = len(rows["option_symbol"])
    return pl.DataFrame({
        "option_symbol": pl.Series(rows["option_symbol"], dtype=pl.String),
        "underlying": pl.Series(rows["underlying"], dtype=pl.String),
        "root": pl.Series(rows["root"], dtype=pl.String),
        "expiration": pl.Series(rows["expiration"], dtype=pl.Date),
        "strike": pl.Series(rows["strike"], dtype=pl.Float64),
        "right": pl.Series(rows["right"], dtype=pl.String),
        "multiplier": pl.Series(rows["multiplier"], dtype=pl.Int64),
        "exercise_style": pl.Series(rows["exercise_style"], dtype=pl.String),
        "expiry_ts_ns": pl.Series(rows["expiry_ts_ns"], dtype=pl.Int64),
        "source": _strs(ctx.source, n),
        "_part_ts": pl.Series(rows["_part_ts"], dtype=pl.Int64),
    })


# --- the converter ------------------------------------------------------------------------------


def _check_codes(ctx: ReaderContext, codes: np.ndarray, allowed: tuple[str, ...], fld: str, start: int) -> None:
    bad = np.flatnonzero(~np.isin(codes, allowed))
    if len(bad):
        i = int(bad[0])
        raise SourceFormatError(
            ctx.name, start + i + 1, fld, f"unknown {fld} code {str(codes[i])!r} (known: {', '.join(allowed)})"
        )


class Converter:
    """Turns the records of one DBN stream (one schema) into raw-table frames.

    Parameters
    ----------
    ctx : ReaderContext
    wanted : iterable of str, optional
        Tables to build (default: every table the schema fills for the asset class);
        work for other tables is skipped (e.g. no book replay when only trades are wanted).

    Attributes
    ----------
    tables : tuple[str, ...]
        Tables this converter fills.
    stats : collections.Counter
        Counts (see the ``Stats`` section of :mod:`m17_platform.sources.databento`).
    """

    def __init__(self, ctx: ReaderContext, wanted: Iterable[str] | None = None) -> None:
        self.ctx = ctx
        filled = TABLES.get(ctx.asset_class, {}).get(ctx.schema, ())
        self.tables = tuple(t for t in filled if wanted is None or t in set(wanted))
        self.stats: Counter = Counter()
        self._ordinal = _PacketOrdinal()
        self._consolidator = QuoteConsolidator()
        self._replay = MboReplay(ctx.depth if ctx.asset_class == FUTURES else 1) if ctx.schema == "mbo" else None
        self._iids: set[int] = set()
        self._last_top: dict[int, tuple] = {}

    def feed(self, start: int, records: np.ndarray) -> dict[str, pl.DataFrame]:
        """Convert one chunk (``start`` = 0-based index of its first record in the stream)."""
        ctx, stats = self.ctx, self.stats
        stats["records"] += len(records)
        if not self.tables:
            if not TABLES.get(ctx.asset_class, {}).get(ctx.schema):
                stats["records_unmapped_schema"] += len(records)
            return {}
        schema = ctx.schema
        if schema == "mbo":
            return self._mbo(start, records)
        if schema == "definition":
            return {schemas.OPTION_CONTRACTS.name: contracts_frame(ctx, records, start, stats)}
        out: dict[str, pl.DataFrame] = {}
        trade_table = _TRADE_TABLE[ctx.asset_class]
        if schema in ("trades", "tbbo", "tcbbo"):
            idx = np.arange(len(records))
            if trade_table in self.tables:
                out[trade_table] = trades_frame(ctx, records, start, idx, self._ordinal)
            quote_table = _QUOTE_TABLE.get(ctx.asset_class)
            if quote_table in self.tables:
                out[quote_table] = self._quotes_at_trade(start, records)
            return out
        if ctx.asset_class == FUTURES:  # mbp-10, mbp-1, bbo -> futures_mbp10
            idx = self._book_rows(records, sampled=schema.startswith("bbo"))
            out[_MBP10] = mbp_records_frame(ctx, records, start, idx, stats)
            return out
        out[_QUOTE_TABLE[ctx.asset_class]] = self._quotes(start, records)
        return out

    def finish(self) -> dict[str, pl.DataFrame]:
        """Frames the end of the stream completes (an MBO snapshot still open)."""
        if self._replay is None:
            return {}
        rows, snaps, levels = self._replay.finish()
        if rows is None:
            return {}
        return self._book_tables(rows, levels, snaps)

    def final_stats(self) -> dict[str, int]:
        """``stats`` plus, for MBO, the replay's counts (call after :meth:`finish`)."""
        out = dict(self.stats)
        if self._replay is not None:
            out |= self._replay.stats()
            out["instruments"] = len(self._iids)
        return out

    # --- schema handlers ------------------------------------------------------------------

    def _book_rows(self, records: np.ndarray, *, sampled: bool) -> np.ndarray:
        """Records emitted as book/quote rows: every sampled (BBO/CBBO) record; for book
        schemas the records that end an event (``F_LAST``) and are not trade/fill
        records (a trade does not change the book; its book update follows)."""
        if sampled:
            return np.arange(len(records))
        last = (records["flags"] & F_LAST) != 0
        trade = np.isin(chars(records["action"]), ("T", "F"))
        self.stats["trade_records_in_book_schema"] += int(np.count_nonzero(trade))
        self.stats["mid_event_records"] += int(np.count_nonzero(~last & ~trade))
        return np.flatnonzero(last & ~trade)

    def _quotes_at_trade(self, start: int, records: np.ndarray) -> pl.DataFrame:
        """The BBO just before each trade (TBBO: the trading venue's; TCBBO: consolidated)."""
        idx = np.arange(len(records))
        if self.ctx.schema == "tcbbo":
            bex, aex = venues(records["bid_pb_00"]), venues(records["ask_pb_00"])
        else:
            bex = aex = venues(records["publisher_id"])
        return quotes_frame(
            self.ctx, records, start, idx, ts=records["ts_event"].astype(np.int64),
            bid_px=records["bid_px_00"], bid_sz=records["bid_sz_00"], ask_px=records["ask_px_00"],
            ask_sz=records["ask_sz_00"], bid_exchange=bex, ask_exchange=aex, stats=self.stats,
        )

    def _quotes(self, start: int, records: np.ndarray) -> pl.DataFrame:
        ctx, schema = self.ctx, self.ctx.schema
        if schema.startswith(("bbo", "cbbo")):  # sampled: every record, at the interval end
            idx = np.arange(len(records))
            ts = records["ts_recv"].astype(np.int64)
            if schema.startswith("cbbo"):
                bex, aex = venues(records["bid_pb_00"]), venues(records["ask_pb_00"])
            else:
                bex = aex = venues(records["publisher_id"])
            return quotes_frame(ctx, records, start, idx, ts=ts, bid_px=records["bid_px_00"],
                                bid_sz=records["bid_sz_00"], ask_px=records["ask_px_00"], ask_sz=records["ask_sz_00"],
                                bid_exchange=bex, ask_exchange=aex, stats=self.stats)
        if schema == "cmbp-1":  # OPRA's consolidated BBO: no consolidation needed
            idx = self._book_rows(records, sampled=False)
            r = records[idx]
            return quotes_frame(ctx, records, start, idx, ts=r["ts_event"].astype(np.int64), bid_px=r["bid_px_00"],
                                bid_sz=r["bid_sz_00"], ask_px=r["ask_px_00"], ask_sz=r["ask_sz_00"],
                                bid_exchange=venues(r["bid_pb_00"]), ask_exchange=venues(r["ask_pb_00"]), stats=self.stats)
        # mbp-1 / mbp-10: per-venue top of book -> consolidated BBO, emitted when it changes
        emit = np.zeros(len(records), dtype=bool)
        emit[self._book_rows(records, sampled=False)] = True
        bpx, bsz, bpub, apx, asz, apub, changed = self._consolidator.feed(
            records["instrument_id"], records["publisher_id"], records["bid_px_00"], records["bid_sz_00"],
            records["ask_px_00"], records["ask_sz_00"], records["ts_event"].astype(np.int64), emit,
        )
        self.stats["unchanged_quote_updates"] += int(np.count_nonzero(emit & ~changed))
        idx = np.flatnonzero(changed)
        return quotes_frame(ctx, records, start, idx, ts=records["ts_event"][idx].astype(np.int64),
                            bid_px=bpx[idx], bid_sz=bsz[idx], ask_px=apx[idx], ask_sz=asz[idx],
                            bid_exchange=venues(bpub[idx]), ask_exchange=venues(apub[idx]), stats=self.stats)

    def _mbo(self, start: int, records: np.ndarray) -> dict[str, pl.DataFrame]:
        ctx, stats = self.ctx, self.stats
        actions = chars(records["action"])
        sides = chars(records["side"])
        _check_codes(ctx, actions, ACTIONS, "action", start)
        _check_codes(ctx, sides, SIDES, "side", start)
        iids = records["instrument_id"].astype(np.int64)
        new = set(np.unique(iids).tolist()) - self._iids
        if new:  # name every instrument up front: an unknown one fails on its first record
            _, first = np.unique(iids, return_index=True)
            first = np.sort(first[np.isin(iids[first], list(new))])
            for f in first.tolist():  # each error names the instrument's first record
                _identity_columns(ctx, records[f: f + 1], np.array([start + f]))
            self._iids |= new
        counts = Counter(actions.tolist())
        for code in ACTIONS:
            stats[f"records_{code}"] += int(counts.get(code, 0))
        flags = records["flags"]
        stats["snapshot_records"] += int(np.count_nonzero(flags & F_SNAPSHOT))
        stats["clear_records"] += int(counts.get("R", 0))
        stats["maybe_bad_book_records"] += int(np.count_nonzero(flags & F_MAYBE_BAD_BOOK))
        stats["bad_ts_recv_records"] += int(np.count_nonzero(flags & F_BAD_TS_RECV))
        out: dict[str, pl.DataFrame] = {}
        trade_table = _TRADE_TABLE[ctx.asset_class]
        if trade_table in self.tables:
            idx = np.flatnonzero(actions == "T")
            t = records[idx]
            oids = t["order_id"].tolist()
            # CME reports the aggressor's order id on each trade record (0 = none, e.g. the
            # opening auction print): it tells apart prints that share a packet, price and size
            trade_ids = [str(o) if o else None for o in oids] if ctx.asset_class == FUTURES else None
            out[trade_table] = trades_frame(ctx, records, start, idx, trade_ids=trade_ids)
            stats["trades"] += len(idx)
        book_table = _MBP10 if ctx.asset_class == FUTURES else _QUOTE_TABLE.get(ctx.asset_class)
        if book_table in self.tables:
            rows, snaps, levels = self._replay.feed(records, actions.tolist(), sides.tolist(), iids.tolist())
            out |= self._book_tables(rows, levels, snaps)
        return out

    def _book_tables(self, rows: np.ndarray, levels: list[tuple], snaps: list[bool]) -> dict[str, pl.DataFrame]:
        ctx = self.ctx
        if ctx.asset_class == FUTURES:
            frame = mbo_book_frame(ctx, rows, levels)
            self.stats["mbp10_rows"] += frame.height
            return {_MBP10: frame}
        # equities: the top of book after each event, when it changed
        keep = []
        iids = rows["instrument_id"].tolist()
        for i, (bids, asks) in enumerate(levels):
            top = (bids[0][:2] if bids else None, asks[0][:2] if asks else None)
            if self._last_top.get(iids[i], 0) != top:
                self._last_top[iids[i]] = top
                keep.append(i)
            else:
                self.stats["unchanged_quote_updates"] += 1
        keep_idx = np.asarray(keep, dtype=np.int64)
        sel = [levels[i] for i in keep]
        r = rows[keep_idx]
        bid_px = np.array([b[0][0] if b else UNDEF_PRICE for b, _ in sel], dtype=np.int64)
        bid_sz = np.array([b[0][1] if b else 0 for b, _ in sel], dtype=np.int64)
        ask_px = np.array([a[0][0] if a else UNDEF_PRICE for _, a in sel], dtype=np.int64)
        ask_sz = np.array([a[0][1] if a else 0 for _, a in sel], dtype=np.int64)
        ven = venues(r["publisher_id"])
        frame = quotes_frame(ctx, r, 0, np.arange(len(r)), ts=r["ts_event"].astype(np.int64), bid_px=bid_px,
                             bid_sz=bid_sz, ask_px=ask_px, ask_sz=ask_sz, bid_exchange=ven, ask_exchange=ven,
                             stats=self.stats)
        return {_QUOTE_TABLE[ctx.asset_class]: frame}

