"""Polygon.io / Massive flat files: a day's OPRA and SIP trades and quotes (S3, CSV.gz),
streamed into one partition.

Flat files are gzip-compressed CSV files with a header line, one per dataset and day,
on an S3-compatible endpoint (``https://files.massive.com``, bucket ``flatfiles``,
signature v4; https://massive.com/docs/flat-files/quickstart), under keys like
``us_options_opra/trades_v1/2024/03/2024-03-07.csv.gz``. Documented headers:

* ``us_options_opra/trades_v1``: ``ticker,conditions,correction,exchange,participant_timestamp,price,sip_timestamp,size``
* ``us_options_opra/quotes_v1``: ``ticker,ask_exchange,ask_price,ask_size,bid_exchange,bid_price,bid_size,sequence_number,sip_timestamp``
* ``us_stocks_sip/trades_v1``: ``ticker,conditions,correction,exchange,id,participant_timestamp,price,sequence_number,sip_timestamp,size,tape,trf_id,trf_timestamp``
  (Polygon blog "Deep Dive into Trade-Level Data with Flat Files", 2024-04-12)
* ``us_stocks_sip/quotes_v1``: the v3 quote fields (``ask_exchange, ask_price, ask_size,
  bid_exchange, bid_price, bid_size, sequence_number, sip_timestamp``, with conditions,
  indicators, participant / TRF timestamps and tape).

Columns are found by name in the header, not by position; a missing required column is
an error naming the key.

Streaming, so a day larger than memory is fine: the S3 body is read as a stream,
gunzipped incrementally (pyarrow's C++ gzip stream), parsed by ``pyarrow.csv.open_csv``
in blocks of ``PolygonSettings.flatfiles_block_bytes`` with every column as text, the
rows of the partition's underlying are kept (option tickers ``O:<root>...`` of the
underlying's roots, see ``PolygonSettings.option_roots``; the stock ticker equal to the
underlying), parsed and checked with polars, and handed out as
:class:`~m17_platform.sources.base.TableChunk` of at most ``IngestSettings.chunk_rows`` rows.

Malformed rows: a row of the partition's underlying whose required field (ticker,
price, size, timestamp, sequence number) or flag field (conditions, correction) cannot
be read raises :class:`~m17_platform.errors.SourceFormatError` naming the S3 key, the
line (1-based, header = line 1, in the decompressed file) and the field; a bad optional
field (an exchange id, one side of a quote, a trade id) is nulled and counted as
``malformed_<field>``. A row with the wrong number of fields is counted
(``malformed_rows_other_underlyings``) when its ticker belongs to another underlying,
and raises otherwise. Nothing is dropped without a count.

Trade conditions are judged by a :class:`~m17_platform.sources.polygon.ConditionTable`
(the REST table when the caller has one, else the bundled copy), see
:func:`~m17_platform.sources.polygon.flag_trades`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import urllib3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from m17_platform import calendar
from m17_platform.errors import SourceFormatError
from m17_platform.settings import DEFAULT, Settings
from m17_platform.sources.base import TableChunk
from m17_platform.sources.polygon import (
    ChunkBuffer,
    ConditionTable,
    PolygonAuthError,
    PolygonNoDataError,
    PolygonRequestError,
    PolygonRetryError,
    flag_trades,
    option_identity,
    redact,
)

if TYPE_CHECKING:
    from m17_platform.lake import PartitionRef

FLAT_NAME = "polygon.flatfiles"
ACCESS_KEY_ENV = "POLYGONIO_ACCESS_KEY_ID"
SECRET_KEY_ENV = "POLYGONIO_SECRET_ACCESS_KEY"
ENDPOINT_ENV = "M17_FLATFILES_ENDPOINT"

_HEADER_PROBE_BYTES = 1 << 16
# a download that breaks off (after botocore's own retries) surfaces as one of these
_NETWORK_ERRORS = (BotoCoreError, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
_STOCK_TICKER = re.compile(r"^[A-Z][A-Z0-9.]*$")


@dataclass(frozen=True)
class FlatFileDataset:
    """One flat-file dataset and the raw table it fills.

    Attributes
    ----------
    table : str
        Raw table name.
    asset_class : str
        ``us_options_opra`` or ``us_stocks_sip``.
    data_type : str
        ``trades_v1`` or ``quotes_v1``.
    required : tuple[str, ...]
        Header columns that must be present.
    optional : tuple[str, ...]
        Header columns read when present.
    """

    table: str
    asset_class: str
    data_type: str
    required: tuple[str, ...]
    optional: tuple[str, ...]

    @property
    def options(self) -> bool:
        """True for OPRA (option tickers), False for SIP (stock tickers)."""
        return self.asset_class == "us_options_opra"

    @property
    def trades(self) -> bool:
        return self.data_type.startswith("trades")

    @property
    def source(self) -> str:
        """The ``source`` column value, e.g. ``polygon.flatfiles.us_options_opra.trades_v1``."""
        return f"{FLAT_NAME}.{self.asset_class}.{self.data_type}"

    def key(self, day: dt.date) -> str:
        """S3 key of ``day``'s file: ``<asset_class>/<data_type>/YYYY/MM/YYYY-MM-DD.csv.gz``."""
        return f"{self.asset_class}/{self.data_type}/{day:%Y}/{day:%m}/{day.isoformat()}.csv.gz"


_QUOTE_SIDES = ("ask_exchange", "ask_price", "ask_size", "bid_exchange", "bid_price", "bid_size", "sequence_number")

DATASETS: dict[str, FlatFileDataset] = {
    d.table: d
    for d in (
        FlatFileDataset("option_trades", "us_options_opra", "trades_v1",
                        ("ticker", "price", "size", "sip_timestamp"), ("conditions", "correction", "exchange")),
        FlatFileDataset("option_quotes", "us_options_opra", "quotes_v1", ("ticker", "sip_timestamp"), _QUOTE_SIDES),
        FlatFileDataset("stock_trades", "us_stocks_sip", "trades_v1",
                        ("ticker", "price", "size", "sip_timestamp"),
                        ("conditions", "correction", "exchange", "id", "sequence_number")),
        FlatFileDataset("stock_quotes", "us_stocks_sip", "quotes_v1", ("ticker", "sip_timestamp"), _QUOTE_SIDES),
    )
}


class _BodyStream(io.RawIOBase):
    """A read-only stream over any object with ``read(n)`` (an S3 streaming body), as
    pyarrow's ``input_stream`` wants it."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Prefixed(io.RawIOBase):
    """A read-only stream: ``head`` bytes, then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: Any) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if len(self._head):
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class FlatFilesSource:
    """Raw partitions from Polygon / Massive flat files (the :class:`~m17_platform.sources.base.Source` protocol).

    Parameters
    ----------
    settings : Settings
        ``settings.polygon`` (endpoint, bucket, roots, block size, retries),
        ``settings.ingest.chunk_rows``, ``settings.sessions``.
    access_key_id, secret_access_key : str, optional
        The flat-files S3 keys (Massive dashboard); required unless ``s3_client`` is given.
        Never logged, stored elsewhere or put in a message.
    endpoint_url : str, optional
        S3 endpoint; default ``settings.polygon.flatfiles_endpoint``.
    bucket : str, optional
        Bucket; default ``settings.polygon.flatfiles_bucket``.
    conditions : ConditionTable, optional
        Trade condition codes; default :meth:`ConditionTable.bundled` (pass
        ``PolygonRestSource.conditions(...)`` when REST is reachable).
    s3_client : botocore S3 client, optional
        A ready client (tests, custom sessions); the keys are then not needed.

    Raises
    ------
    PolygonAuthError
        If neither ``s3_client`` nor both keys are given (names the variables).
    """

    name = FLAT_NAME

    def __init__(self, settings: Settings = DEFAULT, *, access_key_id: str | None = None,
                 secret_access_key: str | None = None, endpoint_url: str | None = None, bucket: str | None = None,
                 conditions: ConditionTable | None = None, s3_client: Any = None) -> None:
        poly = settings.polygon
        self._settings = settings
        self.endpoint_url = endpoint_url or poly.flatfiles_endpoint
        self.bucket = bucket or poly.flatfiles_bucket
        self.conditions = conditions if conditions is not None else ConditionTable.bundled()
        self._secrets = (access_key_id, secret_access_key)
        if s3_client is None:
            if not access_key_id or not secret_access_key:
                raise PolygonAuthError(
                    f"no flat-files keys: set {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} (or pass them, or an s3_client)"
                )
            session = boto3.session.Session(aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)
            s3_client = session.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name="us-east-1",
                config=Config(
                    signature_version="s3v4",
                    retries={"max_attempts": poly.max_retries + 1, "mode": "standard"},
                    connect_timeout=poly.timeout_seconds,
                    read_timeout=poly.timeout_seconds,
                ),
            )
        self._s3 = s3_client

    @classmethod
    def from_env(cls, settings: Settings = DEFAULT, environ: Mapping[str, str] | None = None,
                 conditions: ConditionTable | None = None) -> FlatFilesSource:
        """Build from ``POLYGONIO_ACCESS_KEY_ID``, ``POLYGONIO_SECRET_ACCESS_KEY`` (required)
        and ``M17_FLATFILES_ENDPOINT`` (optional endpoint override).

        Raises
        ------
        PolygonAuthError
            Naming the variables when a key is not set.
        """
        env = os.environ if environ is None else environ
        return cls(
            settings,
            access_key_id=env.get(ACCESS_KEY_ENV) or None,
            secret_access_key=env.get(SECRET_KEY_ENV) or None,
            endpoint_url=env.get(ENDPOINT_ENV) or None,
            conditions=conditions,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint_url={self.endpoint_url!r}, bucket={self.bucket!r})"

    def tables(self) -> tuple[str, ...]:
        """The raw tables this source fills."""
        return tuple(DATASETS)

    def object_key(self, table: str, day: dt.date) -> str:
        """The S3 key of ``table``'s file for ``day`` (``ValueError`` for another table)."""
        return self._dataset(table).key(day)

    def _dataset(self, table: str) -> FlatFileDataset:
        try:
            return DATASETS[table]
        except KeyError:
            raise ValueError(f"{self.name} does not fill table {table!r}; it fills {list(DATASETS)}") from None

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _open(self, key: str) -> Any:
        """The streaming body of ``key`` (``get_object``), with errors the platform's."""
        url = self._url(key)
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = redact(str(err.get("Message", "")), *self._secrets)
            if code in ("NoSuchKey", "NotFound", "404") or status == 404:
                raise PolygonNoDataError(
                    f"{url} (endpoint {self.endpoint_url}): no such flat file; a day's files are published by "
                    "about 11:00 ET the next day, and only days within the plan's history exist"
                ) from None
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403") or status in (401, 403):
                raise PolygonAuthError(
                    f"{url} (endpoint {self.endpoint_url}): {code or status}: the flat-files keys "
                    f"({ACCESS_KEY_ENV} / {SECRET_KEY_ENV}) are missing or invalid, or the plan lacks access "
                    "to this dataset"
                ) from None
            if code in ("SlowDown", "ServiceUnavailable", "InternalError") or (status or 0) >= 500:
                raise PolygonRetryError(f"{url}: {code or status} after the client's retries: {message}") from None
            raise PolygonRequestError(f"{url}: {code or status}: {message}") from None
        except BotoCoreError as exc:
            raise PolygonRetryError(
                f"{url} (endpoint {self.endpoint_url}): {redact(str(exc), *self._secrets)}"
            ) from None

    def chunks(self, table: str, ref: PartitionRef) -> Iterator[TableChunk]:
        """The rows of raw table ``table`` for partition ``ref``, streamed from the day's file.

        Stats (summed over the chunks): ``rows`` (kept), ``rows_read`` (data rows in the
        file), ``rows_other_underlyings``, ``malformed_rows_other_underlyings``,
        ``malformed_<field>`` (optional fields nulled); trades add the counts of
        :func:`~m17_platform.sources.polygon.flag_trades`; stock quotes add
        ``quote_sizes_converted_from_round_lots``.

        Raises
        ------
        ValueError
            For a table this source does not fill.
        CalendarError
            If the trade date is not a session.
        PolygonNoDataError, PolygonAuthError, PolygonRetryError, PolygonRequestError
            If the file cannot be fetched (names the ``s3://`` URL and the endpoint).
        SourceFormatError
            Naming the key, line and field of a row of the underlying that cannot be read.
        """
        ds = self._dataset(table)
        calendar.require_trading_day(ref.trade_date, self._settings.sessions)
        if not ds.options and ref.underlying in self._settings.polygon.index_underlyings:
            return
        key = ds.key(ref.trade_date)
        buf = ChunkBuffer(table, self._settings.ingest.chunk_rows, origin=self._url(key))
        body = self._open(key)
        try:
            yield from _FileReader(self, ds, key, ref, buf).read(body)
        finally:
            body.close()
        yield from buf.finish()


class _FileReader:
    """Streams one flat file into one partition's chunks."""

    def __init__(self, source: FlatFilesSource, ds: FlatFileDataset, key: str, ref: PartitionRef,
                 buf: ChunkBuffer) -> None:
        self.source = source
        self.ds = ds
        self.key = key
        self.ref = ref
        self.buf = buf
        self.poly = source._settings.polygon
        self.where = source._url(key)
        roots = (ref.underlying, *self.poly.option_roots.get(ref.underlying, ()))
        self._root_pattern = "^O:(?:" + "|".join(re.escape(r) for r in roots) + r")\d"
        self.invalid: list[int] = []
        self.fatal: SourceFormatError | None = None
        self.names: list[str] = []

    # --- which rows are the partition's ---------------------------------------------------

    def _belongs(self, tickers: pa.Array) -> np.ndarray:
        if self.ds.options:
            mask = pc.match_substring_regex(tickers, self._root_pattern)
        else:
            mask = pc.equal(tickers, self.ref.underlying)
        return np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)

    def _other_underlying(self, ticker: str | None) -> bool:
        """True if ``ticker`` is a well-formed ticker of another underlying."""
        if not ticker:
            return False
        if self.ds.options:
            return ticker.startswith("O:") and re.match(self._root_pattern, ticker) is None
        return bool(_STOCK_TICKER.match(ticker)) and ticker != self.ref.underlying

    def _invalid_row(self, row: Any) -> str:
        """pyarrow's handler for a row with the wrong number of fields: count it when it
        belongs to another underlying, else keep the first as the error to raise."""
        self.buf.stats["rows_read"] += 1
        if row.number is not None:
            self.invalid.append(row.number)
        fields = next(csv.reader([row.text]), [])
        index = self.names.index("ticker")
        ticker = fields[index] if len(fields) > index else None
        if self._other_underlying(ticker):
            self.buf.stats["malformed_rows_other_underlyings"] += 1
        elif self.fatal is None:
            line = None if row.number is None else row.number + 1
            field = self.names[row.actual_columns] if row.actual_columns < row.expected_columns else None
            self.fatal = SourceFormatError(
                self.where, line, field,
                f"row has {row.actual_columns} fields, the header {row.expected_columns}: {row.text[:120]!r}",
            )
        return "skip"

    def _lines(self, valid_index: np.ndarray) -> np.ndarray:
        """1-based lines (header = 1) of the valid rows numbered ``valid_index`` (0-based
        over the valid rows), accounting for the malformed rows skipped before them."""
        data_row = valid_index.astype(np.int64) + 1
        for skipped in self.invalid:
            data_row[data_row >= skipped] += 1
        return data_row + 1

    # --- reading --------------------------------------------------------------------------

    def _header(self, stream: Any) -> bytes:
        head = b""
        while b"\n" not in head:
            block = stream.read(_HEADER_PROBE_BYTES)
            if not block:
                break
            head += block
        if not head.strip():
            raise SourceFormatError(self.where, 1, None, "empty file (no header line)")
        header, _, rest = head.partition(b"\n")
        try:
            self.names = header.decode("utf-8").strip().split(",")
        except UnicodeDecodeError as exc:
            raise SourceFormatError(self.where, 1, None, f"header is not UTF-8: {exc}") from exc
        for column in self.ds.required:
            if column not in self.names:
                raise SourceFormatError(self.where, 1, column, f"missing column; header is {self.names}")
        return rest

    def _network(self, exc: BaseException, rows: int) -> PolygonRetryError:
        detail = redact(f"{type(exc).__name__}: {exc}", *self.source._secrets)
        return PolygonRetryError(f"{self.where}: download failed after {rows} data rows: {detail}")

    def read(self, body: Any) -> Iterator[TableChunk]:
        try:
            stream = pa.input_stream(_BodyStream(body), compression="gzip")
            rest = self._header(stream)
            include = [c for c in self.ds.required + self.ds.optional if c in self.names]
            reader = pacsv.open_csv(
                _Prefixed(rest, stream),
                read_options=pacsv.ReadOptions(column_names=self.names, block_size=self.poly.flatfiles_block_bytes,
                                               use_threads=False),
                parse_options=pacsv.ParseOptions(invalid_row_handler=self._invalid_row),
                convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in self.names},
                                                     include_columns=include),
            )
        except _NETWORK_ERRORS as exc:
            raise self._network(exc, 0) from None
        except (OSError, pa.ArrowInvalid) as exc:
            raise SourceFormatError(self.where, None, None, f"unreadable gzip / CSV stream: {exc}") from exc
        valid = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except _NETWORK_ERRORS as exc:
                raise self._network(exc, valid + len(self.invalid)) from None
            except (OSError, pa.ArrowInvalid) as exc:
                raise SourceFormatError(
                    self.where, None, None,
                    f"unreadable gzip / CSV stream after {valid + len(self.invalid)} data rows: {exc}",
                ) from exc
            if self.fatal is not None:
                raise self.fatal
            n = batch.num_rows
            self.buf.stats["rows_read"] += n
            kept = np.flatnonzero(self._belongs(batch.column("ticker")))
            self.buf.stats["rows_other_underlyings"] += n - kept.size
            if kept.size:
                rows = pl.from_arrow(batch.take(pa.array(kept)))
                yield from self.buf.add(self._build(rows, self._lines(valid + kept)))
            valid += n
        if self.fatal is not None:
            raise self.fatal

    # --- parsing the kept rows --------------------------------------------------------------

    def _fail(self, lines: np.ndarray, i: int, field: str, reason: str) -> SourceFormatError:
        return SourceFormatError(self.where, int(lines[i]), field, reason)

    def _number(self, rows: pl.DataFrame, column: str, dtype: pl.DataType, lines: np.ndarray, *,
                required: bool, keep_bad: bool = False) -> pl.Series:
        """``column`` cast to ``dtype``; empty -> null. A value that cannot be read raises
        (naming the line), or with ``keep_bad`` is nulled and counted ``malformed_<column>``."""
        if column not in rows.columns:
            return pl.Series(column, [None] * rows.height, dtype=dtype)
        raw = rows.get_column(column).str.strip_chars()
        empty = raw.is_null() | (raw.str.len_bytes() == 0)
        value = raw.cast(dtype, strict=False)
        bad = value.is_null() & ~empty
        if dtype == pl.Float64:
            bad = bad | ~value.is_finite().fill_null(True)
        if required:
            bad = bad | empty
        if bad.any():
            if keep_bad and not required:
                self.buf.stats[f"malformed_{column}"] += int(bad.sum())
                return value.set(bad, None).alias(column)
            i = int(bad.arg_max())
            kind = "an integer" if dtype == pl.Int64 else "a finite number"
            what = "an empty value" if empty[i] else f"{raw[i]!r}"
            raise self._fail(lines, i, column, f"cannot read {what} as {kind}")
        return value.alias(column)

    def _codes(self, rows: pl.DataFrame, lines: np.ndarray) -> pl.Series:
        """``conditions`` (``"12,37"``) as List(Int64); empty -> []."""
        if "conditions" not in rows.columns:
            return pl.Series("condition_codes", [None] * rows.height, dtype=pl.List(pl.Int64))
        raw = rows.get_column("conditions").str.strip_chars().fill_null("")
        parsed = pl.DataFrame({"raw": raw}).select(
            pl.when(pl.col("raw").str.len_bytes() > 0)
            .then(pl.col("raw").str.split(","))
            .otherwise(pl.lit([], dtype=pl.List(pl.String)))
            .list.eval(pl.element().str.strip_chars().cast(pl.Int64, strict=False))
            .alias("condition_codes")
        ).get_column("condition_codes")
        bad = parsed.list.eval(pl.element().is_null()).list.any().fill_null(False)
        if bad.any():
            i = int(bad.arg_max())
            raise self._fail(lines, i, "conditions", f"cannot read {raw[i]!r} as condition codes")
        return parsed

    def _text(self, rows: pl.DataFrame, column: str, *, integer: bool = False) -> pl.Series:
        """A text column, empty -> null; with ``integer``, a non-integer value is nulled and
        counted ``malformed_<column>`` (exchange ids are integers in Polygon's code space)."""
        if column not in rows.columns:
            return pl.Series(column, [None] * rows.height, dtype=pl.String)
        raw = rows.get_column(column).str.strip_chars()
        raw = raw.set(raw.str.len_bytes() == 0, None)
        if integer:
            bad = raw.is_not_null() & raw.cast(pl.Int64, strict=False).is_null()
            if bad.any():
                self.buf.stats[f"malformed_{column}"] += int(bad.sum())
                raw = raw.set(bad, None)
        return raw.alias(column)

    def _sequence(self, rows: pl.DataFrame, lines: np.ndarray) -> pl.Series:
        if "sequence_number" in rows.columns:
            return self._number(rows, "sequence_number", pl.Int64, lines, required=True).alias("sequence")
        return pl.Series("sequence", lines, dtype=pl.Int64)

    def _identity(self, rows: pl.DataFrame, lines: np.ndarray) -> pl.DataFrame:
        tickers = rows.get_column("ticker")
        identity, bad = option_identity(tickers.unique(maintain_order=True).to_list())
        if bad is not None:
            i = int((tickers == bad).arg_max())
            raise self._fail(lines, i, "ticker", f"{bad!r} is not an OCC option symbol")
        return identity

    def _build(self, rows: pl.DataFrame, lines: np.ndarray) -> pl.DataFrame:
        ds = self.ds
        cols: dict[str, pl.Series] = {
            "ts_ns": self._number(rows, "sip_timestamp", pl.Int64, lines, required=True).alias("ts_ns"),
        }
        if ds.trades:
            cols["sequence"] = self._sequence(rows, lines)
            cols["price"] = self._number(rows, "price", pl.Float64, lines, required=True)
            cols["size"] = self._number(rows, "size", pl.Int64, lines, required=True)
            cols["exchange"] = self._text(rows, "exchange", integer=True)
            cols["condition_codes"] = self._codes(rows, lines)
            cols["correction"] = self._number(rows, "correction", pl.Int64, lines, required=False)
            cols["trade_id"] = self._text(rows, "id").alias("trade_id")
        else:
            cols["sequence"] = self._sequence(rows, lines)
            for side in ("bid", "ask"):
                cols[side] = self._number(rows, f"{side}_price", pl.Float64, lines, required=False,
                                          keep_bad=True).alias(side)
                cols[f"{side}_size"] = self._number(rows, f"{side}_size", pl.Int64, lines, required=False,
                                                    keep_bad=True)
                cols[f"{side}_exchange"] = self._text(rows, f"{side}_exchange", integer=True)
        frame = pl.DataFrame(cols).with_columns(
            pl.lit(self.ref.underlying).alias("underlying"), pl.lit(ds.source).alias("source"),
        )
        if ds.options:
            frame = frame.with_columns(rows.get_column("ticker").alias("option_symbol")).join(
                self._identity(rows, lines), on="option_symbol", how="left", maintain_order="left"
            )
        else:
            frame = frame.with_columns(pl.lit(self.ref.underlying).alias("symbol"))
        if ds.trades:
            frame, stats = flag_trades(frame, self.source.conditions)
            self.buf.stats.update(stats)
            frame = frame.with_columns(
                pl.col("condition_codes").list.eval(pl.element().cast(pl.String)).alias("conditions")
            ).drop("condition_codes", "correction")
            if not ds.options:
                frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("aggressor_side"))
        elif not ds.options and self.ref.trade_date < self.poly.stock_quote_sizes_in_shares_from:
            frame = frame.with_columns(pl.col("bid_size", "ask_size") * self.poly.round_lot_shares)
            self.buf.stats["quote_sizes_converted_from_round_lots"] += frame.height
        return frame
