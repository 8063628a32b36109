"""Cboe DataShop (LiveVol) option files, normalised into the raw tables.

Two DataShop products are read:

* **Option Trades** (``UnderlyingOptionsTrades_YYYY-MM-DD.csv``): one row per option
  print with the NBBO and the underlying quote the vendor joined to it, followed by a
  variable number of per-exchange quote blocks
  ``{exchange,bid_size,bid,ask_size,ask}[number_of_exchanges]``. Read with the
  :mod:`csv` module because rows have different widths;
  :func:`read_option_trades`.
* **Option Quotes, intervals with Calcs and OI**
  (``UnderlyingOptionsIntervals_<secs>sec_calcs_oi_YYYY-MM-DD.csv[.gz]``): interval
  snapshots of each series' NBBO with Cboe's implied volatility, greeks and open
  interest; :func:`read_option_intervals`.

Both files give ``quote_datetime`` as America/New_York wall-clock time (ms precision
in the trades file); it becomes ``ts_ns``, int64 nanoseconds since the epoch, UTC.
Underlying symbols lose the leading ``^`` of Cboe's index notation (``^VIX`` ->
``VIX``). A vendor price of 0.0 on both sides of a quote (with no exchange quote
behind it) means "no quote": both sides become null and the row is counted.

Every row is parsed or the reader raises :class:`~m17_platform.errors.SourceFormatError`
naming the file, the 1-based line (the header is line 1; lines of a ``.gz`` file are
lines of its decompressed text) and the field. No row is skipped.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import polars as pl

from m17_platform import calendar
from m17_platform.errors import CalendarError, SourceFormatError
from m17_platform.settings import DEFAULT, SessionSettings, UniverseSettings
from m17_platform.sources.base import ReadResult, conformed_tables
from m17_platform.symbols import occ_symbol

TRADES_SOURCE = "cboe_datashop.option_trades"
TRADES_NBBO_SOURCE = "cboe_datashop.option_trades.nbbo"
TRADES_UNDERLYING_SOURCE = "cboe_datashop.option_trades.underlying"
INTERVALS_SOURCE = "cboe_datashop.option_intervals"
INTERVALS_CALCS_SOURCE = "cboe_datashop.option_intervals.calcs"
INTERVALS_UNDERLYING_SOURCE = "cboe_datashop.option_intervals.underlying"

TRADE_FIXED_COLUMNS: tuple[str, ...] = (
    "underlying_symbol",
    "quote_datetime",
    "sequence_number",
    "root",
    "expiration",
    "strike",
    "option_type",
    "exchange_id",
    "trade_size",
    "trade_price",
    "trade_condition_id",
    "canceled_trade_condition_id",
    "best_bid",
    "best_ask",
    "underlying_bid",
    "underlying_ask",
    "number_of_exchanges",
)
TRADE_BLOCK_FIELDS: tuple[str, ...] = ("exchange", "bid_size", "bid", "ask_size", "ask")
TRADE_GROUP_SPEC = "{exchange,bid_size,bid,ask_size,ask}[number_of_exchanges]"

INTERVAL_COLUMNS: tuple[str, ...] = (
    "underlying_symbol",
    "quote_datetime",
    "root",
    "expiration",
    "strike",
    "option_type",
    "open",
    "high",
    "low",
    "close",
    "trade_volume",
    "bid_size",
    "bid",
    "ask_size",
    "ask",
    "underlying_bid",
    "underlying_ask",
    "implied_underlying_price",
    "active_underlying_price",
    "implied_volatility",
    "delta",
    "gamma",
    "theta",
    "vega",
    "rho",
    "open_interest",
)

# How each column is parsed. "str": non-empty text; "root": an OSI root; "int"/"float":
# required numbers (floats finite); "float?"/"int?": empty or NaN -> null; "date":
# YYYY-MM-DD; "ts_et": America/New_York wall clock -> UTC ns; "right": C or P.
_TRADE_KINDS: dict[str, str] = {
    "underlying_symbol": "str",
    "quote_datetime": "ts_et",
    "sequence_number": "int",
    "root": "root",
    "expiration": "date",
    "strike": "float",
    "option_type": "right",
    "exchange_id": "int",
    "trade_size": "int",
    "trade_price": "float",
    "trade_condition_id": "int",
    "canceled_trade_condition_id": "int",
    "best_bid": "float",
    "best_ask": "float",
    "underlying_bid": "float",
    "underlying_ask": "float",
    "number_of_exchanges": "int",
}
_INTERVAL_KINDS: dict[str, str] = {
    "underlying_symbol": "str",
    "quote_datetime": "ts_et",
    "root": "root",
    "expiration": "date",
    "strike": "float",
    "option_type": "right",
    "open": "float",
    "high": "float",
    "low": "float",
    "close": "float",
    "trade_volume": "int",
    "bid_size": "int",
    "bid": "float",
    "ask_size": "int",
    "ask": "float",
    "underlying_bid": "float",
    "underlying_ask": "float",
    "implied_underlying_price": "float?",
    "active_underlying_price": "float?",
    "implied_volatility": "float?",
    "delta": "float?",
    "gamma": "float?",
    "theta": "float?",
    "vega": "float?",
    "rho": "float?",
    "open_interest": "int?",
}
_KIND_WORDS = {
    "str": "a non-empty text",
    "root": "an option root (1-6 of A-Z, 0-9, '.')",
    "int": "an integer",
    "int?": "an integer (or empty)",
    "float": "a finite number",
    "float?": "a number (or empty / NaN)",
    "date": "a date YYYY-MM-DD",
    "ts_et": "a timestamp 'YYYY-MM-DD HH:MM:SS[.fff]' that exists in America/New_York",
    "right": "an option type C or P",
}
_TS_FORMAT = "%Y-%m-%d %H:%M:%S%.f"
_ROOT_RE = r"^[A-Z0-9.]{1,6}$"
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


# --- reading text ---------------------------------------------------------------------


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` for every row, header included; decoding and csv errors
    become :class:`SourceFormatError` naming the line."""
    with _open_text(path) as fh:
        reader = csv.reader(fh, strict=True)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise SourceFormatError(path, reader.line_num, None, f"malformed CSV: {exc}") from exc
            except (UnicodeDecodeError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise SourceFormatError(path, reader.line_num + 1, None, f"unreadable text: {exc}") from exc
            yield reader.line_num, row


# --- vectorised column parsing ----------------------------------------------------------


def _parse_expr(name: str, kind: str, tz: str) -> tuple[pl.Expr, pl.Expr]:
    """(parsed value, is-bad flag) for a string column."""
    text = pl.col(name).str.strip_chars()
    if kind == "str":
        return text, text.str.len_chars() == 0
    if kind == "root":
        up = text.str.to_uppercase()
        return up, ~up.str.contains(_ROOT_RE)
    if kind == "right":
        up = text.str.to_uppercase()
        return up, ~up.is_in(["C", "P"])
    if kind == "int":
        val = text.cast(pl.Int64, strict=False)
        return val, val.is_null()
    if kind == "int?":
        val = text.cast(pl.Int64, strict=False)
        return val, val.is_null() & (text.str.len_chars() > 0)
    if kind == "float":
        val = text.cast(pl.Float64, strict=False)
        return val, val.is_null() | ~val.is_finite() | ~text.str.contains(_FLOAT_TEXT.pattern)
    if kind == "float?":
        empty = (text.str.len_chars() == 0) | (text.str.to_lowercase() == "nan")
        val = text.cast(pl.Float64, strict=False)
        bad = ~empty & (val.is_null() | ~val.is_finite() | ~text.str.contains(_FLOAT_TEXT.pattern))
        return pl.when(empty).then(None).otherwise(val), bad
    if kind == "date":
        val = text.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
        return val, val.is_null()
    if kind == "ts_et":
        val = (
            text.str.strptime(pl.Datetime("ns"), _TS_FORMAT, strict=False)
            .dt.replace_time_zone(tz, ambiguous="null", non_existent="null")
            .dt.convert_time_zone("UTC")
            .cast(pl.Int64)
        )
        return val, val.is_null()
    raise ValueError(f"unknown column kind {kind!r}")


def _parse_columns(path: Path, raw: pl.DataFrame, kinds: dict[str, str], tz: str) -> pl.DataFrame:
    """Parse the string columns of ``raw`` (which has a ``_line`` column) by ``kinds``.

    Raises
    ------
    SourceFormatError
        For the first line (in file order) holding a value that does not parse,
        naming the first such column on that line.
    """
    names = list(kinds)
    pairs = {name: _parse_expr(name, kind, tz) for name, kind in kinds.items()}
    flags = raw.select([pl.col("_line")] + [bad.alias(name) for name, (_, bad) in pairs.items()])
    bad_rows = flags.with_row_index("_row").filter(pl.any_horizontal(names))
    if bad_rows.height:
        first = bad_rows.row(0, named=True)
        field = next(n for n in names if first[n])
        value = raw.get_column(field)[first["_row"]]
        raise SourceFormatError(path, first["_line"], field, f"cannot read {value!r} as {_KIND_WORDS[kinds[field]]}")
    return raw.select([pl.col("_line")] + [val.alias(name) for name, (val, _) in pairs.items()])


def _option_symbols(path: Path, frame: pl.DataFrame) -> pl.Series:
    """OCC symbols from root / expiration / option_type / strike; a strike OSI cannot
    write raises naming the line."""
    cache: dict[tuple, str] = {}
    out = []
    for root, exp, right, strike, line in zip(
        frame.get_column("root").to_list(),
        frame.get_column("expiration").to_list(),
        frame.get_column("option_type").to_list(),
        frame.get_column("strike").to_list(),
        frame.get_column("_line").to_list(),
        strict=True,
    ):
        key = (root, exp, right, strike)
        sym = cache.get(key)
        if sym is None:
            try:
                sym = occ_symbol(root, exp, right, strike)
            except ValueError as exc:
                raise SourceFormatError(path, line, "strike", str(exc)) from exc
            cache[key] = sym
        out.append(sym)
    return pl.Series("option_symbol", out, dtype=pl.String)


def _identity() -> list[pl.Expr]:
    return [
        pl.col("option_symbol"),
        pl.col("underlying"),
        pl.col("root"),
        pl.col("expiration"),
        pl.col("strike"),
        pl.col("option_type").alias("right"),
    ]


def _contracts(
    path: Path,
    frame: pl.DataFrame,
    source: str,
    universe: UniverseSettings,
    sessions: SessionSettings,
) -> pl.DataFrame:
    """One ``option_contracts`` row per distinct option_symbol (first occurrence)."""
    uniq = frame.unique("option_symbol", keep="first", maintain_order=True)
    expiry: dict[dt.date, int] = {}
    for exp, line in zip(uniq.get_column("expiration").to_list(), uniq.get_column("_line").to_list(), strict=True):
        if exp not in expiry:
            try:
                expiry[exp] = calendar.expiry_instant_ns(exp, sessions)
            except (CalendarError, ValueError, KeyError) as exc:
                raise SourceFormatError(path, line, "expiration", f"no expiry instant for {exp}: {exc}") from exc
    return uniq.select(
        _identity()
        + [
            pl.lit(universe.default_multiplier, dtype=pl.Int64).alias("multiplier"),
            pl.when(pl.col("root").is_in(list(universe.european_roots)))
            .then(pl.lit("E"))
            .otherwise(pl.lit("A"))
            .alias("exercise_style"),
            pl.Series("expiry_ts_ns", [expiry[e] for e in uniq.get_column("expiration").to_list()], dtype=pl.Int64),
            pl.lit(source).alias("source"),
        ]
    )


def _no_quote(bid: str, ask: str) -> pl.Expr:
    """Both sides 0.0: the vendor had no quote."""
    return (pl.col(bid) == 0.0) & (pl.col(ask) == 0.0)


def _strip_caret() -> pl.Expr:
    return pl.col("underlying_symbol").str.strip_prefix("^").alias("underlying")


# --- option trades --------------------------------------------------------------------


def _check_trade_header(path: Path, header: list[str]) -> None:
    fixed = [h.strip() for h in header[: len(TRADE_FIXED_COLUMNS)]]
    if fixed != list(TRADE_FIXED_COLUMNS):
        wrong = next(
            (i for i, name in enumerate(TRADE_FIXED_COLUMNS) if i >= len(fixed) or fixed[i] != name),
            len(TRADE_FIXED_COLUMNS),
        )
        expected = TRADE_FIXED_COLUMNS[wrong]
        got = fixed[wrong] if wrong < len(fixed) else "<missing>"
        raise SourceFormatError(path, 1, expected, f"header column {wrong + 1} is {got!r}, expected {expected!r}")
    # The repeated-group spec is written in one field; a csv reader splits it at its commas.
    tail = ",".join(header[len(TRADE_FIXED_COLUMNS) :]).replace(" ", "")
    if tail != TRADE_GROUP_SPEC:
        raise SourceFormatError(
            path, 1, TRADE_GROUP_SPEC, f"header ends with {tail!r}, expected the exchange group {TRADE_GROUP_SPEC!r}"
        )


def _parse_block_value(path: Path, line: int, field: str, text: str, integer: bool) -> float | int:
    text = text.strip()
    if integer:
        if not _INT_TEXT.match(text):
            raise SourceFormatError(path, line, field, f"cannot read {text!r} as an integer")
        return int(text)
    if not _FLOAT_TEXT.match(text):
        raise SourceFormatError(path, line, field, f"cannot read {text!r} as a finite number")
    return float(text)


def _read_trade_rows(path: Path) -> tuple[list[list[str]], list[int], list[list[tuple]]]:
    fixed_rows: list[list[str]] = []
    lines: list[int] = []
    blocks: list[list[tuple]] = []
    n_fixed = len(TRADE_FIXED_COLUMNS)
    rows = _csv_rows(path)
    try:
        _, header = next(rows)
    except StopIteration:
        raise SourceFormatError(path, 1, None, "empty file: no header") from None
    _check_trade_header(path, header)
    for line, row in rows:
        if len(row) < n_fixed:
            missing = TRADE_FIXED_COLUMNS[len(row)] if row else TRADE_FIXED_COLUMNS[0]
            raise SourceFormatError(
                path, line, missing, f"row has {len(row)} fields, the fixed columns alone need {n_fixed}"
            )
        n_text = row[n_fixed - 1].strip()
        if not _INT_TEXT.match(n_text) or int(n_text) < 0:
            raise SourceFormatError(
                path, line, "number_of_exchanges", f"cannot read {n_text!r} as a non-negative integer"
            )
        n = int(n_text)
        width = len(TRADE_BLOCK_FIELDS)
        if len(row) != n_fixed + width * n:
            raise SourceFormatError(
                path,
                line,
                TRADE_GROUP_SPEC,
                f"number_of_exchanges is {n}, so the row needs {n_fixed} + {width} x {n} = {n_fixed + width * n} "
                f"fields; it has {len(row)}",
            )
        row_blocks = []
        for k in range(n):
            cells = row[n_fixed + width * k : n_fixed + width * (k + 1)]
            row_blocks.append(
                tuple(
                    _parse_block_value(path, line, f"{name}[{k + 1}]", text, integer=name in ("exchange", "bid_size", "ask_size"))
                    for name, text in zip(TRADE_BLOCK_FIELDS, cells, strict=True)
                )
            )
        fixed_rows.append(row[:n_fixed])
        lines.append(line)
        blocks.append(row_blocks)
    return fixed_rows, lines, blocks


def _summarise_blocks(
    best_bid: list[float], best_ask: list[float], blocks: list[list[tuple]]
) -> tuple[dict[str, list], int, int]:
    """Sizes and exchanges at the NBBO from the per-exchange blocks of each row.

    Returns the four quote columns, the number of rows whose blocks disagree with the
    NBBO (no block at the best bid or ask, or a block better than it), and the number
    of rows without blocks.
    """
    cols: dict[str, list] = {"bid_size": [], "ask_size": [], "bid_exchange": [], "ask_exchange": []}
    disagree = 0
    without = 0
    for bb, ba, row_blocks in zip(best_bid, best_ask, blocks, strict=True):
        if not row_blocks:
            without += 1
            for v in cols.values():
                v.append(None)
            continue
        at_bid = [b for b in row_blocks if b[2] == bb]
        at_ask = [b for b in row_blocks if b[4] == ba]
        cols["bid_size"].append(sum(b[1] for b in at_bid) if at_bid else None)
        cols["ask_size"].append(sum(b[3] for b in at_ask) if at_ask else None)
        cols["bid_exchange"].append(",".join(dict.fromkeys(str(b[0]) for b in at_bid)) or None)
        cols["ask_exchange"].append(",".join(dict.fromkeys(str(b[0]) for b in at_ask)) or None)
        best_block_bid = max(b[2] for b in row_blocks)
        best_block_ask = min((b[4] for b in row_blocks if b[4] > 0), default=0.0)
        if best_block_bid != bb or best_block_ask != ba:
            disagree += 1
    return cols, disagree, without


def _underlying_quote_columns(no_quote: pl.Expr, source: str) -> list[pl.Expr]:
    """``stock_quotes`` columns (after the event-time ones) from the file's underlying_bid /
    underlying_ask: Cboe gives prices only, so sizes and exchanges are null; a 0/0 quote
    (no underlying value yet) becomes null prices."""
    return [
        pl.col("underlying").alias("symbol"),
        pl.col("underlying"),
        pl.when(no_quote).then(None).otherwise(pl.col("underlying_bid")).alias("bid"),
        pl.lit(None, dtype=pl.Int64).alias("bid_size"),
        pl.when(no_quote).then(None).otherwise(pl.col("underlying_ask")).alias("ask"),
        pl.lit(None, dtype=pl.Int64).alias("ask_size"),
        pl.lit(None, dtype=pl.String).alias("bid_exchange"),
        pl.lit(None, dtype=pl.String).alias("ask_exchange"),
        pl.lit(source).alias("source"),
    ]


def read_option_trades(
    path: str | Path,
    *,
    universe: UniverseSettings = DEFAULT.universe,
    sessions: SessionSettings = DEFAULT.sessions,
) -> ReadResult:
    """Read a Cboe DataShop Option Trades file (``UnderlyingOptionsTrades_*.csv[.gz]``).

    Parameters
    ----------
    path : str or pathlib.Path
        The CSV (plain or gzip). Header: 17 fixed columns then the group spec
        ``{exchange,bid_size,bid,ask_size,ask}[number_of_exchanges]``; each data row
        has ``17 + 5 x number_of_exchanges`` fields.
    universe : UniverseSettings
        ``default_multiplier`` and ``european_roots`` for ``option_contracts``.
    sessions : SessionSettings
        Time zone of ``quote_datetime`` and the calendar of expiry instants.

    Returns
    -------
    ReadResult
        ``tables`` (each frame conformed to its schema, sorted by the table's sort key):

        * ``option_trades``: one row per data row. ``ts_ns`` int64 UTC ns from
          ``quote_datetime`` (ET, ms); ``sequence`` = ``sequence_number``; price float64
          dollars, size int64 contracts; ``exchange`` = ``exchange_id`` as text;
          ``conditions`` = ``[trade_condition_id]``; ``trade_id`` = sequence number as
          text; ``canceled`` = ``canceled_trade_condition_id != 0``.
        * ``option_quotes``: the vendor's NBBO at each trade (same ts_ns and sequence);
          sizes (contracts) summed over the exchange blocks quoting the best price,
          exchanges = their ids joined by ','; null where the row has no block there.
          A 0.0/0.0 NBBO is "no quote": bid and ask null.
        * ``stock_quotes``: the underlying quote at each trade (``symbol`` = underlying
          without '^'; sizes and exchanges null; 0.0/0.0 -> null).
        * ``option_contracts``: one row per distinct contract; multiplier
          ``universe.default_multiplier``; exercise 'E' for ``european_roots`` else 'A';
          ``expiry_ts_ns`` from :func:`m17_platform.calendar.expiry_instant_ns`.

        ``stats`` (counts of rows): ``rows``, ``contracts_traded`` (sum of sizes),
        ``canceled``, ``nbbo_unavailable`` (0.0/0.0 NBBO), ``nbbo_crossed``
        (bid > ask), ``nbbo_locked`` (bid == ask > 0), ``nbbo_zero_bid`` (bid 0, ask > 0),
        ``nbbo_block_disagreements`` (exchange blocks that do not reproduce the NBBO),
        ``rows_without_exchange_blocks``, ``underlying_quote_unavailable``.

    Raises
    ------
    SourceFormatError
        Naming the file, the 1-based line (header = 1) and the field, for a header that
        is not this layout, a row whose field count does not match
        ``number_of_exchanges``, or a value that does not parse (non-numeric price,
        option type not C/P, timestamp that is not a valid ET wall-clock time, ...).
        Exchange block fields are named ``bid[k]`` etc., k counting blocks from 1.
    """
    path = Path(path)
    origin = str(path)
    fixed_rows, lines, blocks = _read_trade_rows(path)
    raw = pl.DataFrame(fixed_rows, schema={c: pl.String for c in TRADE_FIXED_COLUMNS}, orient="row").with_columns(
        pl.Series("_line", lines, dtype=pl.Int64)
    )
    df = _parse_columns(path, raw, _TRADE_KINDS, sessions.timezone)
    df = df.with_columns(_option_symbols(path, df), _strip_caret())
    quote_cols, disagree, without = _summarise_blocks(
        df.get_column("best_bid").to_list(), df.get_column("best_ask").to_list(), blocks
    )
    no_nbbo = _no_quote("best_bid", "best_ask")
    no_underlying = _no_quote("underlying_bid", "underlying_ask")
    event = [pl.col("quote_datetime").alias("ts_ns"), pl.col("sequence_number").alias("sequence")]

    trades = df.select(
        event
        + _identity()
        + [
            pl.col("trade_price").alias("price"),
            pl.col("trade_size").alias("size"),
            pl.col("exchange_id").cast(pl.String).alias("exchange"),
            pl.concat_list(pl.col("trade_condition_id").cast(pl.String)).alias("conditions"),
            pl.col("sequence_number").cast(pl.String).alias("trade_id"),
            (pl.col("canceled_trade_condition_id") != 0).alias("canceled"),
            pl.lit(TRADES_SOURCE).alias("source"),
        ]
    )
    with_blocks = df.with_columns(
        pl.Series(name, values, dtype=pl.Int64 if name.endswith("size") else pl.String)
        for name, values in quote_cols.items()
    )
    quotes = with_blocks.select(
        event
        + _identity()
        + [
            pl.when(no_nbbo).then(None).otherwise(pl.col("best_bid")).alias("bid"),
            pl.when(no_nbbo).then(None).otherwise(pl.col("bid_size")).alias("bid_size"),
            pl.when(no_nbbo).then(None).otherwise(pl.col("best_ask")).alias("ask"),
            pl.when(no_nbbo).then(None).otherwise(pl.col("ask_size")).alias("ask_size"),
            pl.when(no_nbbo).then(None).otherwise(pl.col("bid_exchange")).alias("bid_exchange"),
            pl.when(no_nbbo).then(None).otherwise(pl.col("ask_exchange")).alias("ask_exchange"),
            pl.lit(TRADES_NBBO_SOURCE).alias("source"),
        ]
    )
    stock = df.select(event + _underlying_quote_columns(no_underlying, TRADES_UNDERLYING_SOURCE))
    contracts = _contracts(path, df, TRADES_SOURCE, universe, sessions)

    bid, ask = pl.col("best_bid"), pl.col("best_ask")
    counts = df.select(
        pl.len().alias("rows"),
        pl.col("trade_size").sum().alias("contracts_traded"),
        (pl.col("canceled_trade_condition_id") != 0).sum().alias("canceled"),
        no_nbbo.sum().alias("nbbo_unavailable"),
        (bid > ask).sum().alias("nbbo_crossed"),
        ((bid == ask) & (bid > 0)).sum().alias("nbbo_locked"),
        ((bid == 0) & (ask > 0)).sum().alias("nbbo_zero_bid"),
        no_underlying.sum().alias("underlying_quote_unavailable"),
    ).row(0, named=True)
    stats = {k: int(v or 0) for k, v in counts.items()}
    stats["nbbo_block_disagreements"] = disagree
    stats["rows_without_exchange_blocks"] = without

    tables = conformed_tables(
        {"option_trades": trades, "option_quotes": quotes, "stock_quotes": stock, "option_contracts": contracts},
        origin,
    )
    return ReadResult(tables=tables, stats=stats)


# --- option quote intervals -----------------------------------------------------------


def _read_interval_rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    rows = _csv_rows(path)
    try:
        _, header = next(rows)
    except StopIteration:
        raise SourceFormatError(path, 1, None, "empty file: no header") from None
    header = [h.strip() for h in header]
    for name in INTERVAL_COLUMNS:
        if name not in header:
            raise SourceFormatError(path, 1, name, f"header has no column {name!r}")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise SourceFormatError(path, 1, dupes[0], f"header repeats column {dupes[0]!r}")
    data: list[list[str]] = []
    lines: list[int] = []
    width = len(header)
    for line, row in rows:
        if len(row) != width:
            field = header[len(row)] if len(row) < width else None
            raise SourceFormatError(path, line, field, f"row has {len(row)} fields, the header has {width}")
        data.append(row)
        lines.append(line)
    return header, data, lines


def read_option_intervals(
    path: str | Path,
    *,
    universe: UniverseSettings = DEFAULT.universe,
    sessions: SessionSettings = DEFAULT.sessions,
) -> ReadResult:
    """Read a Cboe DataShop Option Quotes intervals file with Calcs and open interest
    (``UnderlyingOptionsIntervals_<secs>sec_calcs_oi_*.csv[.gz]``).

    All underlyings in the file land in the same frames; callers filter by ``underlying``.

    Parameters
    ----------
    path : str or pathlib.Path
        The CSV (plain or gzip) with the columns of :data:`INTERVAL_COLUMNS` (in any
        order; further columns are read but not used).
    universe : UniverseSettings
        ``default_multiplier`` and ``european_roots`` for ``option_contracts``.
    sessions : SessionSettings
        Time zone of ``quote_datetime`` and the calendar of expiry instants.

    Returns
    -------
    ReadResult
        ``tables`` (each conformed to its schema, sorted by the table's sort key;
        ``sequence`` is the 1-based data row number in the file):

        * ``option_quotes``: one row per data row; ``ts_ns`` int64 UTC ns from
          ``quote_datetime`` (ET); bid/ask float64 dollars, sizes int64 contracts;
          exchanges null. The session ``open/high/low/close/trade_volume`` are
          validated but belong to no raw table.
        * ``option_vendor_greeks``: one row per data row, as the vendor gives them:
          ``implied_volatility`` (decimal), ``delta``, ``gamma``, ``theta`` (per
          calendar day), ``vega`` (per vol point), ``rho``, ``open_interest`` (int64);
          ``underlying_price`` = ``active_underlying_price``,
          ``implied_underlying_price`` = Cboe's parity forward; ``theoretical_value``
          null. Deep in-the-money rows carry Cboe's floor IV 0.02 with delta +-1;
          they are kept as given.
        * ``stock_quotes``: one row per distinct (underlying, ts_ns) from
          ``underlying_bid/ask`` (0.0/0.0 -> null); sequence of its first option row.
        * ``option_contracts``: one row per distinct contract (see
          :func:`read_option_trades`).

        ``stats``: ``rows``, ``quotes_zero_bid`` (bid 0), ``quotes_crossed`` (bid > ask),
        ``quotes_locked`` (bid == ask > 0), ``quotes_unavailable`` (0.0/0.0),
        ``snapshots`` (distinct ts_ns), ``underlying_quote_conflicts`` (rows whose
        underlying quote differs from the first at the same underlying and instant),
        ``underlying_quote_unavailable`` (stock quote rows with 0.0/0.0).

    Raises
    ------
    SourceFormatError
        Naming the file, the 1-based line (header = 1) and the field: a missing header
        column, a row with the wrong number of fields, or a value that does not parse.
    """
    path = Path(path)
    origin = str(path)
    header, data, lines = _read_interval_rows(path)
    raw = pl.DataFrame(data, schema={c: pl.String for c in header}, orient="row").with_columns(
        pl.Series("_line", lines, dtype=pl.Int64)
    )
    df = _parse_columns(path, raw, _INTERVAL_KINDS, sessions.timezone)
    df = df.with_columns(
        _option_symbols(path, df),
        _strip_caret(),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_seq"),
    )
    event = [pl.col("quote_datetime").alias("ts_ns"), pl.col("_seq").alias("sequence")]
    no_quote = _no_quote("bid", "ask")
    quotes = df.select(
        event
        + _identity()
        + [
            pl.when(no_quote).then(None).otherwise(pl.col("bid")).alias("bid"),
            pl.col("bid_size"),
            pl.when(no_quote).then(None).otherwise(pl.col("ask")).alias("ask"),
            pl.col("ask_size"),
            pl.lit(None, dtype=pl.String).alias("bid_exchange"),
            pl.lit(None, dtype=pl.String).alias("ask_exchange"),
            pl.lit(INTERVALS_SOURCE).alias("source"),
        ]
    )
    greeks = df.select(
        event
        + _identity()
        + [
            pl.col("active_underlying_price").alias("underlying_price"),
            pl.col("implied_underlying_price"),
            pl.col("implied_volatility"),
            pl.col("delta"),
            pl.col("gamma"),
            pl.col("theta"),
            pl.col("vega"),
            pl.col("rho"),
            pl.col("open_interest"),
            pl.lit(None, dtype=pl.Float64).alias("theoretical_value"),
            pl.lit(INTERVALS_CALCS_SOURCE).alias("source"),
        ]
    )
    first = df.with_columns(
        pl.col("underlying_bid").first().over("underlying", "quote_datetime").alias("_ub0"),
        pl.col("underlying_ask").first().over("underlying", "quote_datetime").alias("_ua0"),
    )
    conflicts = first.filter(
        (pl.col("underlying_bid") != pl.col("_ub0")) | (pl.col("underlying_ask") != pl.col("_ua0"))
    ).height
    no_underlying = _no_quote("underlying_bid", "underlying_ask")
    stock = df.unique(["underlying", "quote_datetime"], keep="first", maintain_order=True).select(
        event + _underlying_quote_columns(no_underlying, INTERVALS_UNDERLYING_SOURCE)
    )
    contracts = _contracts(path, df, INTERVALS_SOURCE, universe, sessions)

    counts = df.select(
        pl.len().alias("rows"),
        (pl.col("bid") == 0).sum().alias("quotes_zero_bid"),
        (pl.col("bid") > pl.col("ask")).sum().alias("quotes_crossed"),
        ((pl.col("bid") == pl.col("ask")) & (pl.col("bid") > 0)).sum().alias("quotes_locked"),
        no_quote.sum().alias("quotes_unavailable"),
        pl.col("quote_datetime").n_unique().alias("snapshots"),
    ).row(0, named=True)
    stats = {k: int(v or 0) for k, v in counts.items()}
    stats["underlying_quote_conflicts"] = conflicts
    stats["underlying_quote_unavailable"] = int(stock.get_column("bid").null_count())

    tables = conformed_tables(
        {"option_quotes": quotes, "option_vendor_greeks": greeks, "stock_quotes": stock, "option_contracts": contracts},
        origin,
    )
    return ReadResult(tables=tables, stats=stats)
