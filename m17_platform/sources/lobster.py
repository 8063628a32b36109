"""LOBSTER message and orderbook files, normalised into ``stock_trades`` and ``stock_quotes``.

LOBSTER (https://lobsterdata.com, "Limit Order Book System - The Efficient
Reconstructor") rebuilds NASDAQ TotalView-ITCH into two aligned CSV files per
ticker and day, without header rows (``LOBSTER_SampleFiles_ReadMe.txt``, version of
01 Sept 2013, kept beside the sample in ``data/samples/lobster_*``):

* ``TICKER_YYYY-MM-DD_START_END_message_LEVEL.csv``: six fields per event,
  ``time`` (seconds after midnight, America/New_York, decimals up to ns),
  ``type`` (1 submit, 2 partial cancel, 3 delete, 4 execution of a visible limit
  order, 5 execution of a hidden limit order, 7 trading halt / resume; later LOBSTER
  releases add 6, a cross trade such as an auction), ``order_id``, ``size``
  (shares), ``price`` (USD x 10000) and ``direction`` (-1 sell limit order,
  +1 buy limit order).
* ``TICKER_YYYY-MM-DD_START_END_orderbook_LEVEL.csv``: ``4 x LEVEL`` fields per
  event, the book **after** the event: ``ask_price_1, ask_size_1, bid_price_1,
  bid_size_1, ask_price_2, ...``. Unoccupied levels carry the dummy prices
  ``9999999999`` (ask) and ``-9999999999`` (bid) with size 0.

Row *i* of the orderbook file is the state after message *i*; the files must have
the same number of rows.

Normalisation
-------------
* ``ts_ns``: the decimal time string is parsed exactly (integer seconds and up to
  nine fractional digits, no float) and added to the instant of midnight
  America/New_York on ``trade_date``, giving int64 ns since the epoch, UTC.
* ``sequence``: the 1-based message row number (equal to the line number).
* Prices: USD x 10000 -> float64 dollars. Sizes: int64 shares.
* ``stock_trades``: one row per execution message (types 4, 5 and 6). The
  ``direction`` of an execution is the side of the **resting** order: "Execution
  of a sell (buy) limit order corresponds to a buyer (seller) initiated trade"
  (ReadMe), so -1 -> ``aggressor_side`` 'B' and +1 -> 'S'; a cross trade (type 6)
  has no aggressor ('N'). ``conditions`` is ``["visible_execution"]``,
  ``["hidden_execution"]`` or ``["cross_trade"]``; ``trade_id`` is the executed
  order's id as text, null when LOBSTER gives order id 0 (every hidden execution in
  the AMZN sample: hidden orders have no visible reference number).
* ``stock_quotes``: one row per orderbook row whose level-1 quote (ask price, ask
  size, bid price, bid size) differs from the row before it (the first row is
  always emitted), stamped with the ``ts_ns``/``sequence`` of the message that
  produced it. A dummy price marks an empty side: its price and size become null
  and the row is counted. This is one venue's BBO (NASDAQ), not the NBBO.

Every row is parsed or the reader raises
:class:`~m17_platform.errors.SourceFormatError` naming the file, the 1-based line
and the field. No row is skipped.
"""

from __future__ import annotations

import datetime as dt
import gzip
import zlib
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from m17_platform import schemas
from m17_platform.errors import SourceFormatError
from m17_platform.settings import DEFAULT
from m17_platform.sources.base import ReadResult

TRADES_SOURCE = "lobster.message"
QUOTES_SOURCE = "lobster.orderbook"
EXCHANGE = "XNAS"
"""LOBSTER is rebuilt from NASDAQ TotalView-ITCH: every event is a NASDAQ event."""

PRICE_SCALE = 10_000
"""LOBSTER prices are USD x 10000."""
EMPTY_ASK_PRICE = 9_999_999_999
EMPTY_BID_PRICE = -9_999_999_999
"""Dummy prices of unoccupied levels (ReadMe, "Unoccupied Price Levels")."""

MESSAGE_FIELDS: tuple[str, ...] = ("time", "type", "order_id", "size", "price", "direction")
LEVEL1_FIELDS: tuple[str, ...] = ("ask_price_1", "ask_size_1", "bid_price_1", "bid_size_1")

TYPE_SUBMIT = 1
TYPE_CANCEL = 2
TYPE_DELETE = 3
TYPE_VISIBLE_EXECUTION = 4
TYPE_HIDDEN_EXECUTION = 5
TYPE_CROSS_TRADE = 6
TYPE_HALT = 7
KNOWN_TYPES = (1, 2, 3, 4, 5, 6, 7)
EXECUTION_CONDITIONS = {
    TYPE_VISIBLE_EXECUTION: "visible_execution",
    TYPE_HIDDEN_EXECUTION: "hidden_execution",
    TYPE_CROSS_TRADE: "cross_trade",
}

_NS_PER_SECOND = 1_000_000_000
_TIME_PATTERN = r"^[0-9]+(\.[0-9]{1,9})?$"


def read_lobster(
    message_path: str | Path,
    orderbook_path: str | Path,
    *,
    symbol: str,
    trade_date: dt.date,
    underlying: str | None = None,
) -> ReadResult:
    """Read a LOBSTER message/orderbook pair into ``stock_trades`` and ``stock_quotes``.

    Parameters
    ----------
    message_path : str or Path
        The ``..._message_LEVEL.csv`` file (plain or gzip).
    orderbook_path : str or Path
        The aligned ``..._orderbook_LEVEL.csv`` file (plain or gzip); any
        ``LEVEL >= 1`` is accepted, only level 1 is used (all fields are validated).
    symbol : str
        Ticker the files are for (LOBSTER files carry it only in the file name).
    trade_date : datetime.date
        The day of the files; ``time`` counts seconds from its midnight in
        America/New_York (:attr:`SessionSettings.timezone`).
    underlying : str, optional
        Partition underlying written on every row; defaults to ``symbol``.

    Returns
    -------
    ReadResult
        ``tables["stock_trades"]`` and ``tables["stock_quotes"]`` conformed to
        :data:`m17_platform.schemas.STOCK_TRADES` / ``STOCK_QUOTES`` (ts_ns int64 ns
        UTC, prices float64 dollars, sizes int64 shares), in file order. ``stats``:
        ``messages``, ``messages_type_<k>`` for k in 1..7, ``executions``
        (``executions_visible`` + ``executions_hidden`` + ``cross_trades``),
        ``halt_messages``, ``orderbook_rows``, ``orderbook_levels``, ``quotes``,
        ``empty_bid_rows`` / ``empty_ask_rows`` (orderbook rows with the dummy
        price on that side), ``quotes_with_empty_side`` and ``time_reversals``
        (messages whose time is earlier than the message before).

    Raises
    ------
    SourceFormatError
        Naming the file, 1-based line and field: a row with the wrong number of
        fields, a non-numeric value, a time with more than 9 decimals, an unknown
        message type, a direction other than -1/+1, an execution with a price or
        size <= 0, orderbook rows of different widths, or message and orderbook
        files with different row counts. Also for an unreadable gzip stream or a
        non-ASCII byte.
    """
    message_path = Path(message_path)
    orderbook_path = Path(orderbook_path)
    underlying = underlying or symbol

    messages = _parse_messages(message_path)
    book, levels = _parse_orderbook(orderbook_path)
    if messages.height != book.height:
        shorter = message_path if messages.height < book.height else orderbook_path
        raise SourceFormatError(
            str(shorter),
            min(messages.height, book.height) + 1,
            None,
            f"message file has {messages.height} rows but orderbook file has {book.height}; "
            "LOBSTER files must be aligned row for row",
        )

    midnight_ns = _midnight_ns(trade_date)
    messages = messages.with_columns(
        sequence=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        ts_ns=pl.col("time_ns") + midnight_ns,
    )
    trades = _trades(messages, symbol, underlying)
    quotes, quote_stats = _quotes(book, messages, symbol, underlying)

    type_counts = dict(messages.group_by("type").len().iter_rows())
    stats: dict[str, int] = {"messages": messages.height}
    for k in KNOWN_TYPES:
        stats[f"messages_type_{k}"] = int(type_counts.get(k, 0))
    stats["executions_visible"] = stats["messages_type_4"]
    stats["executions_hidden"] = stats["messages_type_5"]
    stats["cross_trades"] = stats["messages_type_6"]
    stats["executions"] = trades.height
    stats["halt_messages"] = stats["messages_type_7"]
    stats["time_reversals"] = int((messages.get_column("time_ns").diff() < 0).sum())
    stats["orderbook_rows"] = book.height
    stats["orderbook_levels"] = levels
    stats.update(quote_stats)

    tables = {
        schemas.STOCK_TRADES.name: pl.from_arrow(schemas.conform(trades, schemas.STOCK_TRADES, origin=str(message_path))),
        schemas.STOCK_QUOTES.name: pl.from_arrow(schemas.conform(quotes, schemas.STOCK_QUOTES, origin=str(orderbook_path))),
    }
    return ReadResult(tables=tables, stats=stats)


# --- parsing ----------------------------------------------------------------------------


def _midnight_ns(trade_date: dt.date) -> int:
    """Midnight America/New_York of ``trade_date`` as ns since the epoch, UTC."""
    local = dt.datetime.combine(trade_date, dt.time(0), tzinfo=ZoneInfo(DEFAULT.sessions.timezone))
    return int(local.timestamp()) * _NS_PER_SECOND


def _read_lines(path: Path) -> list[str]:
    """The file's lines (gzip or plain), without line terminators; a final newline adds no line."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise SourceFormatError(str(path), None, None, f"cannot decompress gzip stream: {exc}") from exc
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise SourceFormatError(str(path), line, None, f"non-ASCII byte {raw[exc.start]:#04x}") from exc
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _split(path: Path, lines: list[str], names: tuple[str, ...] | None) -> tuple[pl.DataFrame, int]:
    """Split CSV lines into string columns, checking every row has the same width.

    With ``names`` the width is ``len(names)``; without, it is the first row's width
    (orderbook files) and columns are named ``f0, f1, ...``.
    """
    parts = pl.Series("line", lines, dtype=pl.String).str.split(",")
    widths = parts.list.len()
    expected = len(names) if names is not None else (int(widths[0]) if len(lines) else 0)
    bad = (widths != expected).arg_true()
    if len(bad):
        i = int(bad[0])
        got = int(widths[i])
        if names is not None and got < expected:
            field = names[got]
            reason = f"expected {expected} comma-separated fields, found {got} (missing {field!r} onwards)"
        else:
            field = None
            reason = f"expected {expected} comma-separated fields (as on line 1), found {got}"
        raise SourceFormatError(str(path), i + 1, field, reason)
    names = names or tuple(f"f{k}" for k in range(expected))
    frame = pl.DataFrame({name: parts.list.get(k, null_on_oob=True).str.strip_chars() for k, name in enumerate(names)})
    return frame, expected


def _integers(path: Path, frame: pl.DataFrame, columns: list[str], label: dict[str, str] | None = None) -> pl.DataFrame:
    """Cast string columns to Int64; the first value that is not an integer raises."""
    cast = frame.with_columns(pl.col(c).cast(pl.Int64, strict=False).alias(c) for c in columns)
    for c in columns:
        bad = cast.get_column(c).is_null().arg_true()
        if len(bad):
            i = int(bad[0])
            value = frame.get_column(c)[i]
            name = label.get(c, c) if label else c
            raise SourceFormatError(str(path), i + 1, name, f"expected an integer, found {value!r}")
    return cast


def _parse_messages(path: Path) -> pl.DataFrame:
    """Message file -> columns time_ns (ns after midnight), type, order_id, size, price, direction."""
    frame, _ = _split(path, _read_lines(path), MESSAGE_FIELDS)
    time = frame.get_column("time")
    bad = (~time.str.contains(_TIME_PATTERN)).arg_true()
    if len(bad):
        i = int(bad[0])
        raise SourceFormatError(
            str(path), i + 1, "time", f"expected seconds after midnight with at most 9 decimals, found {time[i]!r}"
        )
    seconds = time.str.split_exact(".", 1).struct.rename_fields(["s", "f"]).struct.unnest()
    time_ns = (
        seconds.get_column("s").cast(pl.Int64) * _NS_PER_SECOND
        + seconds.get_column("f").fill_null("0").str.pad_end(9, "0").cast(pl.Int64)
    )
    frame = _integers(path, frame, ["type", "order_id", "size", "price", "direction"])
    frame = frame.with_columns(time_ns=time_ns).drop("time")

    checks = [
        ("type", ~pl.col("type").is_in(KNOWN_TYPES), f"unknown message type (known: {list(KNOWN_TYPES)})"),
        ("direction", ~pl.col("direction").is_in([-1, 1]), "direction must be -1 (sell limit order) or 1 (buy limit order)"),
        (
            "price",
            pl.col("type").is_in(list(EXECUTION_CONDITIONS)) & (pl.col("price") <= 0),
            "execution with a price <= 0",
        ),
        (
            "size",
            pl.col("type").is_in(list(EXECUTION_CONDITIONS)) & (pl.col("size") <= 0),
            "execution with a size <= 0",
        ),
    ]
    for column, condition, reason in checks:
        bad = frame.select(condition.arg_true()).to_series()
        if len(bad):
            i = int(bad[0])
            raise SourceFormatError(str(path), i + 1, column, f"{reason}, found {frame.get_column(column)[i]}")
    return frame


def _parse_orderbook(path: Path) -> tuple[pl.DataFrame, int]:
    """Orderbook file -> level-1 columns ask_price_1, ask_size_1, bid_price_1, bid_size_1; and its level count."""
    lines = _read_lines(path)
    frame, width = _split(path, lines, None)
    if lines and (width < 4 or width % 4):
        raise SourceFormatError(str(path), 1, None, f"expected 4 x LEVEL fields per row, found {width}")
    sides = ("ask_price", "ask_size", "bid_price", "bid_size")
    label = {f"f{k}": f"{sides[k % 4]}_{k // 4 + 1}" for k in range(width)}
    if not lines:
        return pl.DataFrame({c: pl.Series([], dtype=pl.Int64) for c in LEVEL1_FIELDS}), 0
    frame = _integers(path, frame, list(frame.columns), label)
    return frame.select(pl.col(f"f{k}").alias(LEVEL1_FIELDS[k]) for k in range(4)), width // 4


# --- tables -----------------------------------------------------------------------------


def _dollars(expr: pl.Expr) -> pl.Expr:
    """USD x 10000 integers -> float64 dollars, correctly rounded.

    NumPy's true division is IEEE correctly rounded (2238200 / 10000 -> 223.82);
    polars 1.x rewrites division by a literal as multiplication by its reciprocal,
    which gives 223.82000000000002.
    """
    return expr.map_batches(lambda s: pl.Series(s.name, s.to_numpy() / PRICE_SCALE), return_dtype=pl.Float64)


def _trades(messages: pl.DataFrame, symbol: str, underlying: str) -> pl.DataFrame:
    executions = messages.filter(pl.col("type").is_in(list(EXECUTION_CONDITIONS)))
    return executions.select(
        "ts_ns",
        "sequence",
        symbol=pl.lit(symbol),
        underlying=pl.lit(underlying),
        price=_dollars(pl.col("price")),
        size=pl.col("size"),
        exchange=pl.lit(EXCHANGE),
        conditions=pl.concat_list(pl.col("type").replace_strict(EXECUTION_CONDITIONS, return_dtype=pl.String)),
        trade_id=pl.when(pl.col("order_id") == 0).then(None).otherwise(pl.col("order_id").cast(pl.String)),
        canceled=pl.lit(False),
        aggressor_side=pl.when(pl.col("type") == TYPE_CROSS_TRADE)
        .then(pl.lit("N"))
        .when(pl.col("direction") == -1)
        .then(pl.lit("B"))
        .otherwise(pl.lit("S")),
        source=pl.lit(TRADES_SOURCE),
    )


def _quotes(book: pl.DataFrame, messages: pl.DataFrame, symbol: str, underlying: str) -> tuple[pl.DataFrame, dict[str, int]]:
    frame = book.with_columns(messages.select("ts_ns", "sequence"))
    empty_ask = pl.col("ask_price_1") >= EMPTY_ASK_PRICE
    empty_bid = pl.col("bid_price_1") <= EMPTY_BID_PRICE
    changed = pl.any_horizontal(pl.col(c) != pl.col(c).shift(1) for c in LEVEL1_FIELDS).fill_null(True)
    frame = frame.with_columns(empty_ask=empty_ask, empty_bid=empty_bid)
    emitted = frame.filter(changed)
    quotes = emitted.select(
        "ts_ns",
        "sequence",
        symbol=pl.lit(symbol),
        underlying=pl.lit(underlying),
        bid=pl.when(pl.col("empty_bid")).then(None).otherwise(_dollars(pl.col("bid_price_1"))),
        bid_size=pl.when(pl.col("empty_bid")).then(None).otherwise(pl.col("bid_size_1")),
        ask=pl.when(pl.col("empty_ask")).then(None).otherwise(_dollars(pl.col("ask_price_1"))),
        ask_size=pl.when(pl.col("empty_ask")).then(None).otherwise(pl.col("ask_size_1")),
        bid_exchange=pl.when(pl.col("empty_bid")).then(None).otherwise(pl.lit(EXCHANGE)),
        ask_exchange=pl.when(pl.col("empty_ask")).then(None).otherwise(pl.lit(EXCHANGE)),
        source=pl.lit(QUOTES_SOURCE),
    )
    stats = {
        "quotes": quotes.height,
        "empty_bid_rows": int(frame.get_column("empty_bid").sum()),
        "empty_ask_rows": int(frame.get_column("empty_ask").sum()),
        "quotes_with_empty_side": int((emitted.get_column("empty_bid") | emitted.get_column("empty_ask")).sum()),
    }
    return quotes, stats
