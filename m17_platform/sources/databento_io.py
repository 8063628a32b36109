"""Reading Databento DBN streams: integrity checks, chunked record decoding, symbology.

DBN (Databento Binary Encoding, https://databento.com/docs/standards-and-conventions/databento-binary-encoding)
is a metadata header (``DBN`` + version byte + u32 length + metadata: dataset, schema,
time range, symbology mappings) followed by records. Files are plain (``.dbn``) or zstd
compressed (``.dbn.zst``, one or more frames). A historical file holds one schema, so
its records have one fixed size and decode straight into a NumPy structured array with
databento's own dtypes (:data:`databento.common.constants.SCHEMA_STRUCT_MAP`, per DBN
version 1/2/3). A live capture mixes record types (``schema`` is ``None``); those are
decoded per schema through :class:`databento.DBNStore`.

What this module adds to ``databento.DBNStore``: a truncated zstd frame, a partial
last record, a record of the wrong type or a metadata block cut short are errors
(:class:`m17_platform.errors.SourceFormatError` naming file, record and field), not
silently fewer records; and records stream in chunks of a bounded size without
decompressing the whole file first.

No Dagster, no network.
"""

from __future__ import annotations

import bisect
import datetime as dt
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from m17_platform.errors import SourceFormatError

PRICE_SCALE = 1_000_000_000
"""DBN fixed-point prices: 1 unit = 1e-9 (of the quote currency, dollars here)."""
UNDEF_PRICE = 2**63 - 1
"""Databento's undefined price (INT64_MAX)."""
UNDEF_TIMESTAMP = 2**64 - 1
"""Databento's undefined timestamp (UINT64_MAX)."""
NS_PER_DAY = 86_400 * 1_000_000_000

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DBN_MAGIC = b"DBN"
_READ_BLOCK = 1 << 20
MAX_CHUNK_BYTES = 256 << 20
"""Largest block of records decoded at once (an MBP-10 record is 368 bytes: 2 M of them
would be 736 MiB), whatever ``count`` asks."""

MIXED_SCHEMAS = ("mbo", "mbp-1", "mbp-10", "trades", "cmbp-1", "cbbo-1s", "cbbo-1m", "bbo-1s", "bbo-1m", "definition")
"""Schemas read out of a mixed (live) stream. ``tbbo`` shares MBP-1's record type and
``tcbbo`` CBBO's; in a mixed stream those records are read as ``mbp-1`` / ``cbbo``."""


def _plain_blocks(path: Path, name: str) -> Iterator[bytes]:
    """Uncompressed bytes of a DBN file, block by block; every zstd frame must be complete.

    Raises
    ------
    SourceFormatError
        For an empty file, a corrupt zstd frame, or a stream that ends inside a frame.
    """
    import zstandard

    with open(path, "rb") as fh:
        first = fh.read(_READ_BLOCK)
        if not first:
            raise SourceFormatError(name, None, None, "empty file, expected a DBN stream")
        if first[:4] != ZSTD_MAGIC:
            yield first
            while block := fh.read(_READ_BLOCK):
                yield block
            return
        dctx = zstandard.ZstdDecompressor()
        dobj = dctx.decompressobj()
        frames = 0
        in_frame = False  # bytes fed to the current frame, its end not seen yet
        data = first
        while data:
            while data:
                try:
                    out = dobj.decompress(data)
                except zstandard.ZstdError as exc:
                    raise SourceFormatError(name, None, None, f"corrupt zstd frame {frames + 1}: {exc}") from exc
                if out:
                    yield out
                if dobj.eof:
                    frames += 1
                    data = dobj.unused_data
                    dobj = dctx.decompressobj()
                    in_frame = False
                else:
                    in_frame = True
                    data = b""
            data = fh.read(_READ_BLOCK)
        if in_frame:
            raise SourceFormatError(
                name, None, None, f"truncated zstd stream: frame {frames + 1} ends before its end marker"
            )


def record_dtype(schema: str, version: int, ts_out: bool = False) -> np.dtype:
    """NumPy dtype of one ``schema`` record in DBN ``version`` (databento's own layouts).

    Raises
    ------
    KeyError
        If databento has no record layout for that schema and version.
    """
    import databento_dbn
    from databento.common.constants import SCHEMA_STRUCT_MAP, SCHEMA_STRUCT_MAP_V1, SCHEMA_STRUCT_MAP_V2

    table = {1: SCHEMA_STRUCT_MAP_V1, 2: SCHEMA_STRUCT_MAP_V2}.get(version, SCHEMA_STRUCT_MAP)
    fields = list(table[databento_dbn.Schema(schema)]._dtypes)
    if ts_out:
        fields.append(("ts_out", "u8"))
    return np.dtype(fields)


@lru_cache(maxsize=64)
def record_rtype(schema: str) -> int:
    """The ``rtype`` byte of ``schema``'s records (e.g. 160 for ``mbo``, 1 for ``mbp-1`` and ``tbbo``)."""
    import databento_dbn

    return int(databento_dbn.RType.from_schema(databento_dbn.Schema(schema)))


class DbnFile:
    """One DBN file, opened for streaming.

    Parameters
    ----------
    path : str or Path
        ``.dbn`` or ``.dbn.zst`` file.
    name : str, optional
        How errors name the file (default: the path).

    Attributes
    ----------
    metadata : databento_dbn.Metadata
        Decoded as stored (DBN version 1, 2 or 3, not upgraded).
    dataset : str
        Dataset code, e.g. ``GLBX.MDP3``.
    schema : str or None
        ``mbo``, ``trades``, ... or ``None`` for a mixed (live) stream.
    version : int
        DBN version of the records.

    Raises
    ------
    SourceFormatError
        Naming the file: empty, not DBN, truncated or corrupt zstd, metadata cut short
        or undecodable.
    """

    def __init__(self, path: str | Path, *, name: str | None = None) -> None:
        import databento_dbn

        self.path = Path(path)
        self.name = str(name if name is not None else path)
        self._blocks = _plain_blocks(self.path, self.name)
        self._buf = bytearray()
        self._eof = False
        head = self._take(8)
        if head[:3] != DBN_MAGIC or len(head) < 8:
            raise SourceFormatError(self.name, None, None, "not a DBN stream (no 'DBN' header)")
        (meta_len,) = struct.unpack_from("<I", head, 4)
        meta = self._take(meta_len)
        if len(meta) < meta_len:
            raise SourceFormatError(self.name, None, None, f"truncated DBN metadata ({len(meta)} of {meta_len} bytes)")
        try:
            self.metadata = databento_dbn.Metadata.decode(
                bytes(head + meta), upgrade_policy=databento_dbn.VersionUpgradePolicy.AS_IS
            )
        except Exception as exc:  # databento_dbn raises its own DBNError (a ValueError subclass or not)
            raise SourceFormatError(self.name, None, "metadata", f"undecodable DBN metadata: {exc}") from exc
        self._header = bytes(head + meta)
        self.dataset = str(self.metadata.dataset)
        self.schema = None if self.metadata.schema is None else str(self.metadata.schema)
        self.version = int(self.metadata.version)
        self._started = False

    # --- byte buffer --------------------------------------------------------------------

    def _fill(self, n: int) -> None:
        while len(self._buf) < n and not self._eof:
            block = next(self._blocks, None)
            if block is None:
                self._eof = True
            else:
                self._buf += block

    def _take(self, n: int) -> bytearray:
        self._fill(n)
        out = self._buf[:n]
        del self._buf[:n]
        return out

    def _claim(self) -> None:
        if self._started:
            raise RuntimeError(f"{self.name}: records can be read once per DbnFile")
        self._started = True

    # --- records ------------------------------------------------------------------------

    def record_chunks(self, count: int) -> Iterator[tuple[int, np.ndarray]]:
        """Records of a single-schema file, ``count`` at a time.

        Yields
        ------
        (start, records) : tuple[int, numpy.ndarray]
            0-based index of the chunk's first record in the file, and up to ``count``
            records (fewer if they would exceed :data:`MAX_CHUNK_BYTES`) as a structured array (databento's dtype for the file's schema and
            DBN version; prices int64 fixed-point 1e-9, timestamps uint64 ns UTC).

        Raises
        ------
        SourceFormatError
            A partial last record (naming its 1-based number), or a record whose
            ``rtype`` / ``length`` is not the schema's (naming record and field).
        ValueError
            If the file is a mixed stream (use :meth:`mixed_records`) or ``count`` < 1.
        """
        if self.schema is None:
            raise ValueError(f"{self.name} is a mixed-schema stream; use mixed_records()")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        self._claim()
        try:
            dtype = record_dtype(self.schema, self.version, bool(self.metadata.ts_out))
        except KeyError as exc:
            raise SourceFormatError(
                self.name, None, "schema", f"no DBN v{self.version} record layout for schema {self.schema!r}"
            ) from exc
        size = dtype.itemsize
        rtype = record_rtype(self.schema)
        count = max(1, min(count, MAX_CHUNK_BYTES // size))
        start = 0
        while True:
            want = count * size
            self._fill(want)
            if not self._buf:
                return
            usable = min(len(self._buf), want) // size * size
            if usable == 0:  # the stream ended inside a record
                raise SourceFormatError(
                    self.name,
                    start + 1,
                    None,
                    f"truncated DBN record: {len(self._buf)} of {size} bytes after {start} whole records",
                )
            records = np.frombuffer(bytes(self._buf[:usable]), dtype=dtype)
            del self._buf[:usable]
            wrong = records["rtype"] != rtype
            if not self.metadata.ts_out:  # with ts_out the 8 trailing bytes may or may not be counted
                wrong |= records["length"].astype(np.int64) * 4 != size
            bad = np.flatnonzero(wrong)
            if len(bad):
                i = int(bad[0])
                field = "rtype" if records["rtype"][i] != rtype else "length"
                raise SourceFormatError(
                    self.name,
                    start + i + 1,
                    field,
                    f"record is not a {self.schema} record (rtype {int(records['rtype'][i])}, "
                    f"length {int(records['length'][i]) * 4} bytes)",
                )
            yield start, records
            start += len(records)

    def mixed_records(self) -> tuple[dict[str, np.ndarray], dict[int, str]]:
        """Every record of a mixed (live) stream, by schema, plus its symbol mappings.

        Returns
        -------
        (records, mappings) : tuple[dict[str, numpy.ndarray], dict[int, str]]
            ``records[schema]`` for each schema of :data:`MIXED_SCHEMAS` present (DBN v3
            layouts: databento upgrades the records), in stream order; ``mappings``
            instrument_id -> symbol from the stream's ``SymbolMappingMsg`` records.

        Raises
        ------
        SourceFormatError
            A record whose length byte runs past the end of the stream (naming its
            1-based number and the field ``length``).
        """
        import databento as db
        import databento_dbn

        self._claim()
        self._fill(1 << 62)
        body = bytes(self._buf)
        self._buf.clear()
        offset, number = 0, 0
        while offset < len(body):
            number += 1
            size = body[offset] * 4
            if size == 0 or offset + size > len(body):
                raise SourceFormatError(
                    self.name, number, "length",
                    f"truncated or corrupt DBN record at byte {len(self._header) + offset} (length {size})",
                )
            offset += size
        store = db.DBNStore.from_bytes(self._header + body)
        out: dict[str, np.ndarray] = {}
        for schema in MIXED_SCHEMAS:
            records = store.to_ndarray(schema=schema).reshape(-1)
            if len(records):
                out[schema] = records
        mappings: dict[int, str] = {}
        for record in store:
            if isinstance(record, databento_dbn.SymbolMappingMsg):
                mappings[int(record.instrument_id)] = str(record.stype_out_symbol)
        return out, mappings


# --- values -------------------------------------------------------------------------------


def dollars(prices: np.ndarray) -> tuple[pl.Series, int]:
    """Fixed-point 1e-9 int64 prices -> float64 dollars, converted once.

    Returns
    -------
    (series, undefined) : tuple[polars.Series, int]
        Dollars (``price / 1e9``, the same operation as databento's
        ``to_df(price_type="float")``), null where the price is :data:`UNDEF_PRICE`;
        and the number of undefined prices.
    """
    prices = np.asarray(prices, dtype=np.int64)
    undefined = prices == UNDEF_PRICE
    values = prices.astype(np.float64) / PRICE_SCALE
    series = pl.Series(values)
    n = int(np.count_nonzero(undefined))
    if n:
        series = series.set(pl.Series(undefined), None)
    return series, n


def chars(values: np.ndarray) -> np.ndarray:
    """A ``S1`` (char) field as a str array (``b'A'`` -> ``'A'``, NUL -> ``''``)."""
    return values.astype("U1")


@lru_cache(maxsize=512)
def venue(publisher_id: int) -> str | None:
    """Databento's venue MIC for a publisher id (23 -> ``EMLD``, 1 -> ``GLBX``); None if unknown
    or 0 (no publisher, e.g. an empty side of a consolidated quote)."""
    from databento import Publisher

    if publisher_id == 0:
        return None
    try:
        return str(Publisher.from_int(int(publisher_id)).venue)
    except (ValueError, KeyError):
        return None


def venues(publisher_ids: np.ndarray) -> np.ndarray:
    """Venue MIC per element of a publisher-id array (object array of str / None)."""
    uniq, inv = np.unique(np.asarray(publisher_ids, dtype=np.int64), return_inverse=True)
    names = np.array([venue(int(p)) for p in uniq] + [None], dtype=object)[:-1]
    return names[inv.reshape(-1)]


# --- symbology ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Definition:
    """The facts of one instrument definition record the readers use.

    Attributes
    ----------
    instrument_id : int
    raw_symbol : str
        Venue symbol (``ESH4``, ``AAPL  250221C00250000``, ``NVDA``).
    ts_recv : int
        ns UTC the definition was received (it applies from then on).
    instrument_class : str
        Databento class code: ``C`` call, ``P`` put, ``F`` future, ``K`` stock, ...
    underlying : str
        The venue's underlying field (``AAPL`` for an AAPL option), may be empty.
    expiration : int or None
        ns UTC, None when undefined.
    strike_price : int
        Fixed-point 1e-9, :data:`UNDEF_PRICE` when undefined.
    contract_multiplier : int or None
        None when undefined (OPRA leaves it undefined).
    security_update_action : str
        ``A`` add, ``M`` modify, ``D`` delete.
    """

    instrument_id: int
    raw_symbol: str
    ts_recv: int
    instrument_class: str
    underlying: str
    expiration: int | None
    strike_price: int
    contract_multiplier: int | None
    security_update_action: str


def definitions_from_records(records: np.ndarray) -> list[Definition]:
    """:class:`Definition` per ``InstrumentDefMsg`` record (any DBN version), in record order."""
    if not len(records):
        return []
    mult_field = records["contract_multiplier"]
    mult_max = int(np.iinfo(mult_field.dtype).max)
    columns = zip(
        records["instrument_id"].tolist(),
        np.char.decode(records["raw_symbol"], errors="replace").tolist(),
        records["ts_recv"].tolist(),
        chars(records["instrument_class"]).tolist(),
        np.char.decode(records["underlying"], errors="replace").tolist(),
        records["expiration"].tolist(),
        records["strike_price"].tolist(),
        mult_field.tolist(),
        chars(records["security_update_action"]).tolist(),
    )
    return [
        Definition(
            instrument_id=int(iid),
            raw_symbol=raw,
            ts_recv=int(recv),
            instrument_class=iclass,
            underlying=under,
            expiration=None if exp == UNDEF_TIMESTAMP else int(exp),
            strike_price=int(strike),
            contract_multiplier=None if mult == mult_max else int(mult),
            security_update_action=action,
        )
        for iid, raw, recv, iclass, under, exp, strike, mult, action in columns
    ]


_DATED = object()  # marker: an id whose symbol depends on the record's date


class SymbolMap:
    """instrument_id -> raw symbol, from a file's metadata, definitions and live mappings.

    Resolution order for a record: (1) the file's symbology mappings when the request
    used raw symbols (``stype_in`` raw_symbol); an id mapped to one raw symbol in the
    file is that symbol at any time, an id mapped to several (ids are reused over the
    years) is resolved by the record's UTC date within the mapping intervals; (2) the
    definitions known to the reader: the latest definition of the id received at or
    before the record (else its first); (3) a live stream's ``SymbolMappingMsg`` records.

    Parameters
    ----------
    metadata : databento_dbn.Metadata, optional
    definitions : dict[int, list[Definition]], optional
        Per instrument id, sorted by ``ts_recv``.
    stream : dict[int, str], optional
        Live ``SymbolMappingMsg`` mappings.
    """

    def __init__(self, metadata=None, definitions: dict[int, list[Definition]] | None = None,
                 stream: dict[int, str] | None = None) -> None:
        self._intervals: dict[int, list[tuple[int, int, str]]] = {}
        if metadata is not None and str(metadata.stype_in) == "raw_symbol":
            for raw_symbol, intervals in metadata.mappings.items():
                for interval in intervals:
                    try:
                        iid = int(interval["symbol"])
                    except (TypeError, ValueError):
                        continue
                    lo = _date_ns(interval["start_date"])
                    hi = _date_ns(interval["end_date"])
                    self._intervals.setdefault(iid, []).append((lo, hi, raw_symbol))
        self._definitions = definitions or {}
        self._stream = stream or {}

    def resolve(self, iids: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, list[str], int | None]:
        """Raw symbol per record, factorized.

        Parameters
        ----------
        iids : numpy.ndarray
            ``instrument_id`` per record, shape (n,).
        ts : numpy.ndarray
            uint64 ns UTC per record (``ts_recv``, or ``ts_event`` where that is undefined).

        Returns
        -------
        (codes, names, unresolved) : tuple[numpy.ndarray, list[str], int or None]
            ``names[codes[i]]`` is record i's raw symbol (codes int64, shape (n,); -1 where
            no source names the record); ``unresolved`` is the 0-based position of the first
            such record, or None.
        """
        iids = np.asarray(iids, dtype=np.int64)
        uniq, inv = np.unique(iids, return_inverse=True)
        inv = inv.reshape(-1)
        names: list[str] = []
        index: dict[str, int] = {}
        code_of_uniq = np.full(len(uniq), -1, dtype=np.int64)
        dated: list[int] = []  # unique positions whose symbol depends on the record's time

        def code(name: str) -> int:
            c = index.get(name)
            if c is None:
                c = index[name] = len(names)
                names.append(name)
            return c

        for k, iid in enumerate(uniq.tolist()):
            static = self._static(iid)
            if isinstance(static, str):
                code_of_uniq[k] = code(static)
            elif static is _DATED:
                dated.append(k)
        codes = code_of_uniq[inv]
        if dated:
            ts = np.asarray(ts, dtype=np.uint64).astype(np.int64)
            for k in dated:
                rows = np.flatnonzero(inv == k)
                values = self._dated(int(uniq[k]), ts[rows])
                codes[rows] = [-1 if v is None else code(v) for v in values]
        bad = np.flatnonzero(codes < 0)
        return codes, names, (int(bad[0]) if len(bad) else None)

    def _static(self, iid: int):
        """The id's symbol if it does not depend on time, :data:`_DATED` if it does, None if unknown."""
        intervals = self._intervals.get(iid)
        if intervals:
            names = {s for _, _, s in intervals}
            return next(iter(names)) if len(names) == 1 else _DATED
        defs = self._definitions.get(iid)
        if defs:
            return defs[0].raw_symbol if len({d.raw_symbol for d in defs}) == 1 else _DATED
        return self._stream.get(iid)

    def _dated(self, iid: int, ts: np.ndarray) -> list:
        """Symbols of an id mapped to several over time: the metadata interval holding each
        record's UTC date, else the latest definition received at or before it."""
        out = np.empty(len(ts), dtype=object)
        for lo, hi, s in self._intervals.get(iid, ()):
            out[(ts >= lo) & (ts < hi)] = s
        defs = self._definitions.get(iid)
        missing = np.array([v is None for v in out], dtype=bool)
        if defs and missing.any():
            starts = np.asarray([d.ts_recv for d in defs], dtype=np.int64)
            pos = np.searchsorted(starts, ts[missing], side="right") - 1
            pos[pos < 0] = 0
            out[missing] = np.array([d.raw_symbol for d in defs], dtype=object)[pos]
        return out.tolist()

    def definition(self, iid: int, ts: int) -> Definition | None:
        """The definition of ``iid`` in force at ``ts`` (ns UTC), or None."""
        defs = self._definitions.get(iid)
        if not defs:
            return None
        pos = bisect.bisect_right([d.ts_recv for d in defs], ts) - 1
        return defs[max(pos, 0)]


def _date_ns(value) -> int:
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    return int(dt.datetime.combine(value, dt.time(), tzinfo=dt.timezone.utc).timestamp()) * 1_000_000_000


def index_definitions(definitions: list[Definition]) -> dict[int, list[Definition]]:
    """Group definitions by instrument id, each list sorted by ``ts_recv``."""
    out: dict[int, list[Definition]] = {}
    for d in definitions:
        out.setdefault(d.instrument_id, []).append(d)
    for lst in out.values():
        lst.sort(key=lambda d: d.ts_recv)
    return out
