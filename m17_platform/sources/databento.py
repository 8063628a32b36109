"""Databento: DBN files of every schema and the Historical client, normalised into the raw tables.

A DBN file (Databento Binary Encoding, zstd-compressed or plain) is a metadata header
(dataset, schema, symbology mappings) followed by fixed-size records
(https://databento.com/docs/standards-and-conventions/databento-binary-encoding);
record fields per schema: https://databento.com/docs/schemas. Timestamps are uint64 ns
since the epoch, UTC (``UNDEF_TIMESTAMP`` = 2^64-1); prices are int64 fixed point,
1 unit = 1e-9 dollars (``UNDEF_PRICE`` = 2^63-1). Prices are converted to float64
dollars once, as ``price / 1e9`` (the operation of databento's ``to_df(price_type="float")``);
an undefined price becomes null and is counted. Decoding: :mod:`m17_platform.sources.databento_io`
(integrity checks, chunked streaming); per-schema conversion:
:mod:`m17_platform.sources.databento_schemas`; the order book: :class:`m17_platform.book.MboBook`.

Asset class of a file: its dataset, by ``settings.databento.dataset_asset_classes``
(GLBX.MDP3 and other futures venues -> futures; OPRA.PILLAR -> options; XNAS.ITCH,
EQUS.MINI and the other US equities datasets -> equities).

Mapping to the raw tables
-------------------------
==============  ====================  =========================================================
asset class     schema                raw table(s)
==============  ====================  =========================================================
futures         trades, tbbo          ``futures_trades``
futures         mbo                   ``futures_trades`` (T records) and ``futures_mbp10``
                                      (the book rebuilt by :class:`MboBook`, top 10 levels
                                      after every complete event)
futures         mbp-10                ``futures_mbp10`` directly (the record's 10 levels)
futures         mbp-1, bbo-1s/1m      ``futures_mbp10`` with level 0 only: levels 1-9 are
                                      null, ``source`` names the schema. Kept in the one
                                      book table so the futures NBBO join works from
                                      top-of-book data; consumers of depth must check
                                      ``source`` (a null deeper level here is "not given",
                                      not "empty").
options         trades                ``option_trades``
options         tbbo                  ``option_trades`` + ``option_quotes`` (the executing
                                      venue's BBO just before the trade: OPRA's TBBO is per
                                      venue, not the NBBO)
options         tcbbo                 ``option_trades`` + ``option_quotes`` (OPRA's
                                      consolidated BBO just before the trade)
options         mbp-1                 ``option_quotes``: OPRA's MBP-1 is each exchange's BBO;
                                      the reader consolidates them (best price, then larger
                                      size, then earlier update, OPRA's own priority) and
                                      writes a row whenever the consolidated BBO changes
options         cmbp-1, cbbo-1s/1m    ``option_quotes`` (OPRA's consolidated BBO)
options         definition            ``option_contracts`` (calls and puts; strike,
                                      expiration, right from the OSI raw symbol, checked
                                      against the definition; multiplier from the definition
                                      else ``universe.default_multiplier``), and the
                                      instrument id -> symbol map for every other file
options         statistics            nothing: OPRA repeats each open interest once per venue
                                      and ``option_vendor_greeks`` rows would be all-null but
                                      for it, so open interest is not written (counted as
                                      ``records_unmapped_schema``)
equities        trades                ``stock_trades``
equities        tbbo, tcbbo           ``stock_trades`` + ``stock_quotes`` (BBO before each trade)
equities        mbp-1, mbp-10         ``stock_quotes`` (level 0; consolidated across
                                      publishers like OPRA's MBP-1, a single venue passes
                                      through), a row when the BBO changes
equities        bbo-1s/1m, cbbo,      ``stock_quotes``
                cmbp-1
equities        mbo                   ``stock_trades`` (T records) + ``stock_quotes`` (top of
                                      the book rebuilt by :class:`MboBook`, when it changes)
any             ohlcv-*, status,      nothing (counted as ``records_unmapped_schema``)
                imbalance, statistics
==============  ====================  =========================================================

Trades come from the trade-space schemas (trades, tbbo, tcbbo) and from MBO; book
schemas (mbp-1, mbp-10, cmbp-1) contribute their book, and their trade records are
counted (``trade_records_in_book_schema``), not written twice. Give a source one
trade-bearing schema per instrument and day.

Columns
-------
* ``ts_ns`` = ``ts_event`` (the matching-engine time), except for the time-sampled
  schemas (bbo-1s/1m, cbbo-1s/1m), whose rows are the book at the interval end
  ``ts_recv`` (their ``ts_event`` is the last trade's time).
* ``sequence``: the venue sequence number; CBBO records have none, they get their
  0-based position in the file.
* ``ts_recv_ns`` (futures): ``ts_recv``, null when undefined or flagged ``F_BAD_TS_RECV``.
* ``symbol`` / ``option_symbol``: instrument ids are named by (1) the file's symbology
  when it was requested by raw symbol, (2) the definitions given to the reader (the
  definition in force at the record; a definition file given to :class:`DatabentoSource`
  names the instruments of every other file), (3) a live stream's symbol mappings. An
  id no source names is an error naming file, record and field. Options: the OSI raw
  symbol (``AAPL  250221C00250000``) in Polygon's spelling (``O:AAPL250221C00250000``)
  via :func:`m17_platform.symbols.occ_symbol`; ``underlying`` from the definition, else
  ``settings.databento.option_root_underlyings`` (SPXW -> SPX), else the root.
* ``underlying``: futures -> the underlying the product serves
  (``settings.universe.futures_proxies``: ES -> SPY; a raw symbol may be mapped
  directly, e.g. ICE's ``BRN FMJ0024!``); equities -> the symbol itself.
* ``exchange`` / ``bid_exchange`` / ``ask_exchange``: Databento's venue MIC of the
  publisher (``GLBX``, ``XNAS``, ``EMLD``; ``EQUS``, ``OPRA`` for consolidated feeds).
* ``aggressor_side`` (futures, stock): the record's side is the aggressor's (``B`` buy,
  ``A`` sell -> ``S``, ``N`` none: OPRA and auctions).
* ``trade_id``: futures MBO: the aggressor's order id (null when CME gives none);
  futures trades/tbbo: ``"<sequence>.<k>"``, k the print's ordinal among the
  instrument's prints sharing the packet (Databento's trades schema carries no
  execution id, and a CME packet holds several prints); options and stocks: null.
* Quotes: a side with an undefined price or size 0 is null (price, size, exchange);
  crossed and locked quotes are kept and counted, never dropped.
* ``futures_mbp10`` from MBO: see :class:`m17_platform.sources.databento_schemas.MboReplay`
  (book emitted after each ``F_LAST`` record; a snapshot once, when it completes).
  From MBP/BBO: records that end an event (``F_LAST``), trade records excepted.

Sources
-------
:func:`read_dbn` reads one file whole (all the tables its schema fills), :func:`read_mbo`
one futures MBO file (the demo's ESH4 sample), :func:`read_definitions` a definition file.
:class:`DatabentoSource` implements :class:`m17_platform.sources.base.Source` over a list
of files, or over the Historical API (``databento.Historical(key, gateway=...)``,
``timeseries.get_range`` spooled to a temporary file, then streamed like a file; key from
``DATABENTO_API_KEY`` via :meth:`DatabentoSource.from_env`, never logged nor put in an
error). Per partition (trade date x underlying) the Historical source requests, per
table, ``settings.databento.table_schemas[table]`` over the partition's window (the CME
session with its pre-open for futures tables, the New York calendar day otherwise):
options by parent symbol (``SPY.OPT``), equities by raw symbol, futures by
``settings.databento.futures_symbols`` (``ES.v.0``, continuous); when the request is not
by raw symbol, the definitions of the same symbols and window are fetched first (once)
to name the instruments. Records decode ``chunk_rows`` at a time (at most 256 MiB of
records) and each chunk holds at most ``chunk_rows`` rows of the partition.

Stats
-----
Per file (summed over chunks): ``records``, ``rows`` (rows kept for the partition),
``rows_other_partitions`` (rows of other trade dates or underlyings), ``undefined_prices``
(price values nulled), ``empty_quotes`` / ``crossed_quotes`` / ``locked_quotes``,
``mid_event_records`` (book records without ``F_LAST``, not emitted),
``trade_records_in_book_schema``, ``unchanged_quote_updates`` (book updates that left
the written BBO unchanged), ``records_unmapped_schema``, ``definitions_not_options``,
``definitions_deleted``, ``multiplier_defaulted``, ``duplicate_contracts`` (a contract
defined again the same day, first kept). MBO adds the keys of :func:`read_mbo`.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from m17_platform import calendar, schemas
from m17_platform.errors import M17Error, SourceFormatError
from m17_platform.settings import DEFAULT, Settings
from m17_platform.sources.base import ReadResult, TableChunk
from m17_platform.sources.databento_io import (
    NS_PER_DAY,
    UNDEF_TIMESTAMP,
    DbnFile,
    Definition,
    SymbolMap,
    definitions_from_records,
    index_definitions,
)
from m17_platform.sources.databento_schemas import (
    ACTIONS,
    AGGRESSOR,
    EQUITIES,
    FUTURES,
    OPTIONS,
    SIDES,
    TABLES,
    Converter,
    ReaderContext,
    futures_root,
    source_name,
)

if TYPE_CHECKING:
    from m17_platform.lake import PartitionRef

__all__ = [
    "ACTIONS",
    "AGGRESSOR",
    "SIDES",
    "DatabentoRequestError",
    "DatabentoSource",
    "HistoricalRequest",
    "asset_class",
    "futures_root",
    "read_dbn",
    "read_definitions",
    "read_mbo",
    "source_name",
]

API_KEY_ENV = "DATABENTO_API_KEY"
GATEWAY_ENV = "M17_DATABENTO_GATEWAY"


class DatabentoRequestError(M17Error, RuntimeError):
    """A Databento Historical request failed (HTTP error, network error, bad response).

    The message names the dataset, schema, symbols and time range, and the HTTP status;
    it never contains the API key.
    """


def asset_class(dataset: str, settings: Settings = DEFAULT) -> str:
    """``futures``, ``options`` or ``equities`` for a dataset code.

    Raises
    ------
    ValueError
        For a dataset ``settings.databento.dataset_asset_classes`` does not list.
    """
    classes = settings.databento.dataset_asset_classes
    try:
        return classes[dataset]
    except KeyError:
        raise ValueError(
            f"dataset {dataset!r} has no asset class; known: {sorted(classes)} "
            "(extend settings.databento.dataset_asset_classes)"
        ) from None


# --- whole-file readers ------------------------------------------------------------------------


def _context(name: str, dataset: str, schema: str, klass: str, symbols: SymbolMap, settings: Settings,
             underlying_for_root: Mapping[str, str] | None, depth: int) -> ReaderContext:
    return ReaderContext(
        name=name,
        dataset=dataset,
        schema=schema,
        asset_class=klass,
        symbols=symbols,
        futures_underlyings=dict(settings.universe.futures_proxies if underlying_for_root is None else underlying_for_root),
        option_underlyings=dict(settings.databento.option_root_underlyings),
        universe=settings.universe,
        sessions=settings.sessions,
        depth=depth,
    )


def _drop_part(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("_part_ts") if "_part_ts" in frame.columns else frame


def read_dbn(
    path: str | Path,
    *,
    asset: str | None = None,
    definitions: Sequence[Definition] = (),
    underlying_for_root: Mapping[str, str] | None = None,
    depth: int = schemas.BOOK_DEPTH,
    only_schemas: Sequence[str] | None = None,
    settings: Settings = DEFAULT,
    chunk_records: int | None = None,
) -> ReadResult:
    """Read one DBN file, of any schema, into the raw tables its schema fills.

    Parameters
    ----------
    path : str or Path
        ``.dbn`` or ``.dbn.zst`` file (one schema, or a mixed live capture).
    asset : {'futures', 'options', 'equities'}, optional
        Asset class; default from the dataset (:func:`asset_class`).
    definitions : sequence of Definition, optional
        Instrument definitions naming ids the file's own symbology does not (see the
        module docstring); ``read_definitions`` reads them from definition files.
    underlying_for_root : mapping of str to str, optional
        Futures root (or raw symbol) -> underlying partition. Default
        ``settings.universe.futures_proxies`` (``{"ES": "SPY"}``).
    depth : int
        Levels per side of ``futures_mbp10`` rebuilt from MBO (1 to 10).
    only_schemas : sequence of str, optional
        Read only records of these schemas (the file's schema must be one of them).
    settings : Settings
    chunk_records : int, optional
        Records decoded at a time (default ``settings.ingest.chunk_rows``).

    Returns
    -------
    ReadResult
        ``tables``: every table the schema fills (see the module docstring), conformed
        to its schema (ts int64 ns UTC, prices float64 dollars, sizes int64 contracts or
        shares), rows in file order; ``stats`` as in the module docstring.

    Raises
    ------
    SourceFormatError
        Naming the file (and 1-based record and field where known): not DBN, truncated
        or corrupt, a record of the wrong type, an unknown action or side code, a trade
        with an undefined price or time, an instrument nobody names, a product with no
        configured underlying, a schema outside ``only_schemas``.
    ValueError
        An unknown dataset (no asset class) or a bad ``depth``.
    """
    path = Path(path)
    if not 1 <= depth <= schemas.BOOK_DEPTH:
        raise ValueError(f"depth must be between 1 and {schemas.BOOK_DEPTH}, got {depth}")
    dbn = DbnFile(path)
    if only_schemas is not None and dbn.schema is not None and dbn.schema not in only_schemas:
        raise SourceFormatError(
            str(path), None, "schema",
            f"expected an {' or '.join(x.upper() for x in only_schemas)} file, the metadata says schema {dbn.schema!r}",
        )
    klass = asset or asset_class(dbn.dataset, settings)
    count = chunk_records or settings.ingest.chunk_rows
    frames: dict[str, list[pl.DataFrame]] = {}
    stats: Counter = Counter()
    for schema_name, symbols, chunks in _streams(dbn, count, only_schemas):
        ctx = _context(str(path), dbn.dataset, schema_name, klass,
                       SymbolMap(dbn.metadata, index_definitions(list(definitions)), symbols), settings,
                       underlying_for_root, depth)
        conv = Converter(ctx)
        for start, records in chunks:
            for name, frame in conv.feed(start, records).items():
                frames.setdefault(name, []).append(frame)
        for name, frame in conv.finish().items():
            frames.setdefault(name, []).append(frame)
        for table in conv.tables:
            frames.setdefault(table, [])
        stats.update(conv.final_stats())
    tables = {}
    for name, parts in frames.items():
        spec = schemas.table(name)
        frame = pl.concat([_drop_part(f) for f in parts], how="vertical_relaxed") if parts else schemas.empty_frame(spec)
        tables[name] = pl.from_arrow(schemas.conform(frame, spec, origin=str(path)))
    return ReadResult(tables=tables, stats=dict(stats))


def _streams(dbn: DbnFile, count: int, only_schemas: Sequence[str] | None):
    """(schema, live symbol mappings or None, iterator of (start, records)) per schema of the file."""
    if dbn.schema is not None:
        yield dbn.schema, None, dbn.record_chunks(count)
        return
    records, mappings = dbn.mixed_records()
    for schema, recs in records.items():
        if only_schemas is not None and schema not in only_schemas:
            continue
        yield schema, mappings, iter([(0, recs)])


def read_definitions(path: str | Path) -> list[Definition]:
    """Every instrument definition in a DBN definition file (any DBN version), in file order.

    Raises
    ------
    SourceFormatError
        If the file is not a definition file, or is truncated / corrupt.
    """
    dbn = DbnFile(path)
    if dbn.schema != "definition":
        raise SourceFormatError(str(path), None, "schema", f"expected a definition file, the metadata says {dbn.schema!r}")
    out: list[Definition] = []
    for _, records in dbn.record_chunks(100_000):
        out.extend(definitions_from_records(records))
    return out


def read_mbo(
    path: str | Path,
    *,
    underlying_for_root: Mapping[str, str] | None = None,
    depth: int = schemas.BOOK_DEPTH,
) -> ReadResult:
    """Read a Databento futures MBO file into ``futures_trades`` and ``futures_mbp10``.

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
        contracts), in file order; ``stats``: ``records``, ``records_<X>`` per action
        code, ``snapshot_records``, ``clear_records``, ``trades``, ``mbp10_rows``,
        ``snapshot_rows`` (books emitted at the end of a snapshot), ``instruments``, the
        book's anomaly counts (``unknown_order_cancels``, ``unknown_order_modifies``,
        ``duplicate_adds``, ``oversize_cancels``, ``invalid_side_records``,
        ``undefined_price_records``, ``tob_records``), ``maybe_bad_book_records``
        (``F_MAYBE_BAD_BOOK``), ``bad_ts_recv_records``, ``crossed_book_events`` /
        ``locked_book_events`` (emitted books with best bid > / == best ask, snapshot
        rows excluded), ``crossed_book_events_after_first_trade`` (the same, after the
        instrument's first trade: a crossed book before it is normal in CME's pre-open,
        where orders may cross until the opening auction), and ``trailing_records``
        (records after an instrument's last ``F_LAST``, applied but never emitted).

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
    result = read_dbn(path, asset=FUTURES, underlying_for_root=underlying_for_root, depth=depth,
                      only_schemas=("mbo",))
    for name in (schemas.FUTURES_TRADES.name, schemas.FUTURES_MBP10.name):
        if name not in result.tables:
            result.tables[name] = schemas.empty_frame(schemas.table(name))
    stats = {"records": 0, "trades": 0, "mbp10_rows": 0, "instruments": 0, **result.stats}
    return ReadResult(tables=result.tables, stats=stats)


# --- partitions -----------------------------------------------------------------------------------


def _window_ns(table: str, day: dt.date, settings: Settings) -> tuple[int, int]:
    """[start, end) ns UTC of the rows a partition of ``table`` on trade date ``day`` can hold:
    the CME session (with its pre-open) for futures tables, the America/New_York calendar
    day otherwise."""
    if table.startswith("futures_"):
        lo, hi = calendar.session_window_ns("futures", day, settings=settings.sessions)
        return lo, hi + 1
    tz = ZoneInfo(settings.sessions.timezone)
    lo = dt.datetime.combine(day, dt.time(), tzinfo=tz)
    hi = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return int(lo.timestamp()) * 1_000_000_000, int(hi.timestamp()) * 1_000_000_000


class _TradeDates:
    """Trade date of each row: the CME trade date for futures tables (the evening session
    belongs to the next date, :func:`m17_platform.calendar.futures_trade_date`), else the
    America/New_York date of the row's time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._futures: dict[int, dt.date] = {}

    def __call__(self, table: str, ts: pl.Series) -> pl.Series:
        if table.startswith("futures_"):
            minutes = ts.to_numpy() // 60_000_000_000
            uniq, inv = np.unique(minutes, return_inverse=True)
            days = []
            for m in uniq.tolist():
                d = self._futures.get(m)
                if d is None:
                    d = self._futures[m] = calendar.futures_trade_date(int(m) * 60_000_000_000, self.settings.sessions)
                days.append(d)
            return pl.Series("d", days, dtype=pl.Date).gather(inv.reshape(-1))
        return (
            pl.from_epoch(ts, time_unit="ns").dt.replace_time_zone("UTC")
            .dt.convert_time_zone(self.settings.sessions.timezone).dt.date()
        )


# --- the source -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoricalRequest:
    """One ``timeseries.get_range`` call: what the Historical client is asked for.

    Attributes
    ----------
    dataset, schema : str
    symbols : tuple[str, ...]
    stype_in : str
        ``raw_symbol``, ``parent`` (``SPY.OPT``), ``continuous`` (``ES.v.0``).
    start, end : int
        ns UTC, end exclusive.
    """

    dataset: str
    schema: str
    symbols: tuple[str, ...]
    stype_in: str
    start: int
    end: int

    def describe(self) -> str:
        """``"OPRA.PILLAR trades AAPL.OPT (parent) <start ISO>..<end ISO>"``: how errors name the request."""
        fmt = lambda ns: dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).isoformat()  # noqa: E731
        return (f"{self.dataset} {self.schema} {','.join(self.symbols)} ({self.stype_in}) "
                f"{fmt(self.start)}..{fmt(self.end)}")


class DatabentoSource:
    """Raw partitions from Databento: local DBN files, or the Historical API.

    Implements :class:`m17_platform.sources.base.Source`. Rows stream: records are
    decoded ``chunk_rows`` at a time and each :class:`TableChunk` holds at most
    ``chunk_rows`` rows, filtered to the partition's trade date (CME trade date for
    futures tables) and underlying; other rows are counted (``rows_other_partitions``).

    Parameters
    ----------
    files : sequence of str or Path, optional
        DBN files (any schema, any of the configured datasets). Definition files among
        them also name the instruments of the others.
    key : str, optional
        Databento API key: fetch from the Historical API instead of files. Kept private,
        never logged nor put in an error.
    gateway : str, optional
        Historical gateway URL (default ``settings.databento.gateway``).
    settings : Settings
        ``databento`` (datasets, schemas per table, symbols per underlying), ``universe``,
        ``sessions``, ``ingest.chunk_rows``.
    underlying_for_root : mapping of str to str, optional
        Futures root (or raw symbol) -> underlying (default ``universe.futures_proxies``).
    chunk_rows : int, optional
        Rows per chunk (default ``settings.ingest.chunk_rows``).
    workdir : str or Path, optional
        Where Historical responses are spooled (default: a temporary directory, removed
        by :meth:`close`).

    Raises
    ------
    ValueError
        If both or neither of ``files`` and ``key`` are given, or the key is empty.
    FileNotFoundError
        Naming a missing file.
    """

    def __init__(
        self,
        files: Sequence[str | Path] = (),
        *,
        key: str | None = None,
        gateway: str | None = None,
        settings: Settings = DEFAULT,
        underlying_for_root: Mapping[str, str] | None = None,
        chunk_rows: int | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        files = [Path(f) for f in files]
        if bool(files) == (key is not None):
            raise ValueError("DatabentoSource needs either files or an API key (not both)")
        if key is not None and (not isinstance(key, str) or not key.strip()):
            raise ValueError(f"the Databento API key is empty (set {API_KEY_ENV})")
        for f in files:
            if not f.exists():
                raise FileNotFoundError(f"Databento file {f} does not exist")
        self._files = files
        self.__key = key
        self.gateway = gateway or settings.databento.gateway
        self.settings = settings
        self.underlying_for_root = underlying_for_root
        self.chunk_rows = int(chunk_rows or settings.ingest.chunk_rows)
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {self.chunk_rows}")
        self.name = f"databento.files[{len(files)}]" if files else "databento.historical"
        self._workdir = Path(workdir) if workdir is not None else None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._headers: dict[Path, tuple[str, str | None]] = {}
        self._file_definitions: dict[int, list[Definition]] | None = None
        self._downloads: dict[HistoricalRequest, Path] = {}
        self._trade_dates = _TradeDates(settings)

    @classmethod
    def from_env(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        settings: Settings = DEFAULT,
        **kwargs,
    ) -> DatabentoSource:
        """A Historical source keyed by ``DATABENTO_API_KEY`` (gateway from
        ``M17_DATABENTO_GATEWAY`` if set, else ``settings.databento.gateway``).

        Raises
        ------
        ValueError
            If ``DATABENTO_API_KEY`` is unset or empty (the message names the variable).
        """
        env = os.environ if environ is None else environ
        key = env.get(API_KEY_ENV, "")
        if not key.strip():
            raise ValueError(f"{API_KEY_ENV} is not set: the Databento Historical source needs an API key")
        gateway = kwargs.pop("gateway", None) or env.get(GATEWAY_ENV) or settings.databento.gateway
        return cls(key=key, gateway=gateway, settings=settings, **kwargs)

    def __repr__(self) -> str:
        mode = f"files={[str(f) for f in self._files]}" if self._files else f"gateway={self.gateway!r}"
        return f"DatabentoSource({mode})"

    def close(self) -> None:
        """Remove spooled Historical responses."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._downloads.clear()

    # --- Source protocol ----------------------------------------------------------------------

    def tables(self) -> tuple[str, ...]:
        """The raw tables this source fills: from the files' (asset class, schema), or the
        tables ``settings.databento.table_schemas`` configures for the Historical API."""
        out: list[str] = []
        if self._files:
            for f in self._files:
                dataset, schema = self._header(f)
                klass = asset_class(dataset, self.settings)
                schemas_ = [schema] if schema is not None else list(TABLES[klass])
                for s in schemas_:
                    out += [t for t in TABLES[klass].get(s, ()) if t not in out]
        else:
            out = [t for t in self.settings.databento.table_schemas if t in schemas.RAW_TABLES]
        return tuple(t for t in schemas.RAW_TABLES if t in out)

    def chunks(self, table: str, ref: PartitionRef) -> Iterator[TableChunk]:
        """The rows of raw table ``table`` for partition ``ref``, in chunks of at most
        ``chunk_rows`` rows (a chunk with zero rows may carry the last counts).

        Raises
        ------
        SourceFormatError
            From decoding (file, record, field).
        DatabentoRequestError
            When a Historical request fails (no key in the message).
        KeyError
            For a table that is not a raw table.
        """
        schemas.table(table)
        if self._files:
            yield from self._file_chunks(table, ref)
        else:
            yield from self._historical_chunks(table, ref)

    # --- files --------------------------------------------------------------------------------

    def _header(self, path: Path) -> tuple[str, str | None]:
        if path not in self._headers:
            dbn = DbnFile(path)
            self._headers[path] = (dbn.dataset, dbn.schema)
        return self._headers[path]

    def _definitions_from_files(self) -> dict[int, list[Definition]]:
        if self._file_definitions is None:
            defs: list[Definition] = []
            for f in self._files:
                if self._header(f)[1] == "definition":
                    defs.extend(read_definitions(f))
            self._file_definitions = index_definitions(defs)
        return self._file_definitions

    def _file_chunks(self, table: str, ref: PartitionRef) -> Iterator[TableChunk]:
        lo, hi = _window_ns(table, ref.trade_date, self.settings)
        seen: set[str] = set()
        for f in self._files:
            dataset, schema = self._header(f)
            klass = asset_class(dataset, self.settings)
            if schema is not None and table not in TABLES[klass].get(schema, ()):
                continue
            dbn = DbnFile(f)
            meta = dbn.metadata
            end = meta.end if meta.end is not None and meta.end != UNDEF_TIMESTAMP else None
            if (end is not None and end < lo - NS_PER_DAY) or meta.start > hi + NS_PER_DAY:
                continue  # the file's request range cannot hold rows of this partition
            yield from self._stream(dbn, str(f), klass, table, ref, self._definitions_from_files(), seen)

    def _stream(self, dbn: DbnFile, name: str, klass: str, table: str, ref: PartitionRef,
                definitions: dict[int, list[Definition]], seen: set[str]) -> Iterator[TableChunk]:
        """Decode one stream and yield its rows of ``table`` for ``ref``."""
        pending: Counter = Counter({"files": 1})
        for schema_name, mappings, chunks in _streams(dbn, self.chunk_rows, None):
            if table not in TABLES[klass].get(schema_name, ()):
                continue
            ctx = _context(name, dbn.dataset, schema_name, klass, SymbolMap(dbn.metadata, definitions, mappings),
                           self.settings, self.underlying_for_root, schemas.BOOK_DEPTH)
            conv = Converter(ctx, wanted=(table,))
            before: Counter = Counter()
            for start, records in chunks:
                frame = conv.feed(start, records).get(table)
                now = Counter(conv.stats)
                pending.update(now - before)
                before = now
                yield from self._emit(frame, table, ref, pending, seen)
            frame = conv.finish().get(table)
            now = Counter(conv.stats)
            pending.update(now - before)
            yield from self._emit(frame, table, ref, pending, seen)
            # the MBO replay's counts exist once the stream is over
            pending.update({k: v for k, v in conv.final_stats().items() if k not in conv.stats and v})
        if +pending:
            yield TableChunk(table, schemas.empty_frame(schemas.table(table)), dict(+pending))

    def _emit(self, frame: pl.DataFrame | None, table: str, ref: PartitionRef, pending: Counter,
              seen: set[str]) -> Iterator[TableChunk]:
        if frame is None or frame.height == 0:
            return
        dates = self._trade_dates(table, frame.get_column("_part_ts"))
        keep = (frame.get_column("underlying") == ref.underlying) & (dates == ref.trade_date)
        kept = frame.filter(keep)
        pending["rows_other_partitions"] += frame.height - kept.height
        if table == schemas.OPTION_CONTRACTS.name and kept.height:
            # a contract defined again the same day (re-sent definitions): the first is kept
            fresh = kept.unique(subset="option_symbol", keep="first", maintain_order=True)
            fresh = fresh.filter(~pl.col("option_symbol").is_in(list(seen)))
            pending["duplicate_contracts"] += kept.height - fresh.height
            kept = fresh
            seen.update(kept.get_column("option_symbol").to_list())
        kept = pl.from_arrow(schemas.conform(_drop_part(kept), schemas.table(table), origin=f"databento {table}"))
        for offset in range(0, kept.height, self.chunk_rows):
            part = kept.slice(offset, self.chunk_rows)
            pending["rows"] += part.height
            yield TableChunk(table, part, dict(+pending))
            pending.clear()

    # --- Historical ---------------------------------------------------------------------------

    def _spool(self) -> Path:
        if self._workdir is not None:
            self._workdir.mkdir(parents=True, exist_ok=True)
            return self._workdir
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="m17-databento-")
        return Path(self._tmp.name)

    def _fetch(self, request: HistoricalRequest) -> Path:
        """Download one request's DBN (zstd) to the spool folder, once per source."""
        import databento as db
        from databento.common.error import BentoHttpError

        path = self._downloads.get(request)
        if path is not None and path.exists():
            return path
        key = self.__key
        path = self._spool() / f"request-{len(self._downloads):05d}.{request.schema}.dbn.zst"
        if path.exists():
            path.unlink()
        what = request.describe()
        try:
            client = db.Historical(key=key, gateway=self.gateway)
            client.timeseries.get_range(
                dataset=request.dataset, start=request.start, end=request.end, symbols=list(request.symbols),
                schema=request.schema, stype_in=request.stype_in, path=path,
            )
        except BentoHttpError as exc:
            status = exc.http_status
            hint = {401: "the API key was refused (check DATABENTO_API_KEY)",
                    403: "the API key has no access to this dataset or schema",
                    422: "the request was rejected (symbols, schema or dates)",
                    429: "rate limited"}.get(status, "")
            detail = _scrub(str(exc.message or ""), key)
            raise DatabentoRequestError(
                f"Databento Historical request {what} failed: HTTP {status}"
                + (f", {hint}" if hint else "") + (f": {detail}" if detail else "")
            ) from None
        except Exception as exc:  # BentoError, requests' ConnectionError / SSLError, OSError: never the key
            raise DatabentoRequestError(
                f"Databento Historical request {what} failed: {type(exc).__name__}: {_scrub(str(exc), key)}"
            ) from None
        self._downloads[request] = path
        return path

    def _plan(self, table: str, ref: PartitionRef) -> tuple[HistoricalRequest, HistoricalRequest | None] | None:
        """The data request for ``table`` and ``ref``, and the definitions request that
        names its instruments (None when the data is requested by raw symbol)."""
        cfg = self.settings.databento
        schema = cfg.table_schemas.get(table)
        if schema is None:
            return None
        klass = OPTIONS if table.startswith("option_") else EQUITIES if table.startswith("stock_") else FUTURES
        dataset = {OPTIONS: cfg.options_dataset, EQUITIES: cfg.equities_dataset, FUTURES: cfg.futures_dataset}[klass]
        u = ref.underlying
        if klass == OPTIONS:
            symbols, stype = tuple(cfg.option_parents.get(u, (f"{u}.OPT",))), "parent"
        elif klass == EQUITIES:
            symbols, stype = (u,), "raw_symbol"
        else:
            spec = cfg.futures_symbols.get(u)
            if spec is None:
                return None  # no futures proxy for this underlying: the table stays empty
            symbols, stype = tuple(spec[0]), spec[1]
        lo, hi = _window_ns(table, ref.trade_date, self.settings)
        data = HistoricalRequest(dataset, schema, symbols, stype, lo, hi)
        defs = None if stype == "raw_symbol" else HistoricalRequest(dataset, "definition", symbols, stype, lo, hi)
        if schema == "definition":
            defs = None
        return data, defs

    def _historical_chunks(self, table: str, ref: PartitionRef) -> Iterator[TableChunk]:
        plan = self._plan(table, ref)
        if plan is None:
            return
        data, defs_request = plan
        definitions: dict[int, list[Definition]] = {}
        if defs_request is not None:
            definitions = index_definitions(read_definitions(self._fetch(defs_request)))
        path = self._fetch(data)
        klass = asset_class(data.dataset, self.settings)
        yield from self._stream(DbnFile(path, name=data.describe()), data.describe(), klass, table, ref,
                                definitions, set())


def _scrub(text: str, key: str | None) -> str:
    return text.replace(key, "***") if key else text

