"""TD Ameritrade ``marketdata/chains`` responses (option chain JSON), normalised into
the raw tables.

A chain response holds request-level facts (``symbol``, ``strategy``, ``interestRate``
and ``volatility`` in percent, ``underlyingPrice``, ...), the ``underlying`` quote, and
two maps ``callExpDateMap`` / ``putExpDateMap``: ``"YYYY-MM-DD:days"`` ->
``"strike"`` -> list of contracts. Each contract carries its quote, TDA's implied
volatility (``volatility``, in percent), greeks (theta per calendar day, vega per
volatility point, rho per rate point), open interest and theoretical value.

TDA writes -999 where it has no volatility or greeks (and NaN / "NaN" in some
responses): those values become null, the row is kept and counted. A contract TDA
never quoted has ``quoteTimeInLong`` 0 and bid = ask = 0; it is given the chain's
snapshot instant (the latest ``quoteTimeInLong`` in the file) and a null quote.

Errors name the file, the 1-based line of the offending field in the (decompressed)
JSON text and the field.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import re
import zlib
from dataclasses import dataclass
from json.decoder import scanstring
from pathlib import Path
from typing import Any

import polars as pl

from m17_platform import calendar
from m17_platform.errors import CalendarError, SourceFormatError
from m17_platform.settings import DEFAULT, SessionSettings, UniverseSettings
from m17_platform.sources.base import ReadResult, conformed_tables
from m17_platform.symbols import occ_symbol

SOURCE = "tda.option_chain"
UNDERLYING_SOURCE = "tda.option_chain.underlying"
MAPS: dict[str, str] = {"callExpDateMap": "C", "putExpDateMap": "P"}
PUT_CALL: dict[str, str] = {"CALL": "C", "PUT": "P"}
PLACEHOLDER = -999.0
GREEK_FIELDS: tuple[str, ...] = ("volatility", "delta", "gamma", "theta", "vega", "rho")
NS_PER_MS = 1_000_000

_SYMBOL = re.compile(r"^(?P<root>[A-Z0-9.]{1,6})_(?P<mm>\d{2})(?P<dd>\d{2})(?P<yy>\d{2})(?P<right>[CP])(?P<strike>\d+(?:\.\d+)?)$")
_EXP_KEY = re.compile(r"^(?P<date>\d{4}-\d{2}-\d{2}):(?P<days>-?\d+)$")
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ChainFacts:
    """Request-level facts of a chain response (the documented top-level fields).

    Attributes
    ----------
    symbol : str
        Underlying symbol as TDA spells it (``SPY``; index chains use ``$SPX.X``).
    status : str
        ``SUCCESS`` for a usable response.
    strategy : str | None
        ``SINGLE``, ``ANALYTICAL``, ... (ANALYTICAL uses the request's volatility,
        interest rate and underlying price for ``theoreticalOptionValue``).
    interval : float | None
        Strike interval of spread strategies.
    is_delayed : bool | None
        Whether the quotes are delayed.
    is_index : bool | None
        Whether the underlying is an index.
    interest_rate : float | None
        Annual rate as a decimal (TDA's ``interestRate`` is in percent: 0.1 -> 0.001).
    volatility : float | None
        Request-level theoretical volatility as a decimal (TDA's 29 -> 0.29).
    underlying_price : float | None
        Underlying price used for the chain (dollars).
    days_to_expiration : float | None
        Request-level days to expiration (-1 when not set).
    number_of_contracts : int | None
        Contracts TDA says the response holds.
    """

    symbol: str
    status: str
    strategy: str | None
    interval: float | None
    is_delayed: bool | None
    is_index: bool | None
    interest_rate: float | None
    volatility: float | None
    underlying_price: float | None
    days_to_expiration: float | None
    number_of_contracts: int | None


# --- locating a field in the JSON text ----------------------------------------------------


def _skip_ws(text: str, pos: int) -> int:
    return _WS.match(text, pos).end()


def _locate(text: str, keys: tuple[Any, ...]) -> int | None:
    """Character offset of the last element of ``keys`` (an object member's name, or an
    array element) along the path ``keys`` in ``text``; ``None`` if it is not there."""
    try:
        pos = _skip_ws(text, 0)
        for depth, key in enumerate(keys):
            last = depth == len(keys) - 1
            if isinstance(key, str):
                if text[pos] != "{":
                    return None
                pos = _skip_ws(text, pos + 1)
                while text[pos] != "}":
                    start = pos
                    name, pos = scanstring(text, pos + 1)
                    pos = _skip_ws(text, pos)
                    pos = _skip_ws(text, pos + 1)  # past ':'
                    if name == key:
                        if last:
                            return start
                        break
                    _, pos = _DECODER.raw_decode(text, pos)
                    pos = _skip_ws(text, pos)
                    if text[pos] == ",":
                        pos = _skip_ws(text, pos + 1)
                else:
                    return None
            else:
                if text[pos] != "[":
                    return None
                pos = _skip_ws(text, pos + 1)
                index = 0
                while text[pos] != "]":
                    if index == key:
                        if last:
                            return pos
                        break
                    _, pos = _DECODER.raw_decode(text, pos)
                    pos = _skip_ws(text, pos)
                    if text[pos] == ",":
                        pos = _skip_ws(text, pos + 1)
                    index += 1
                else:
                    return None
        return pos
    except (IndexError, ValueError):
        return None


class _Doc:
    """The text of the file and a way to fail naming the line of a JSON path."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text

    def fail(self, keys: tuple[Any, ...], field: str | None, reason: str) -> SourceFormatError:
        where = keys + ((field,) if field is not None else ())
        offset = None
        while where and offset is None:
            offset = _locate(self.text, where)
            where = where[:-1]
        line = None if offset is None else self.text.count("\n", 0, offset) + 1
        return SourceFormatError(self.path, line, field, reason)


def _read_text(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
        return raw.decode("utf-8")
    except (gzip.BadGzipFile, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise SourceFormatError(path, None, None, f"unreadable file: {exc}") from exc


def _load(path: Path) -> tuple[_Doc, dict]:
    text = _read_text(path)
    if not text.strip():
        raise SourceFormatError(path, None, None, "empty file, expected a TD Ameritrade option chain JSON object")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceFormatError(path, exc.lineno, None, f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
    d = _Doc(path, text)
    if not isinstance(doc, dict):
        raise d.fail((), None, "the top level is not a JSON object")
    return d, doc


# --- typed field access -------------------------------------------------------------------


def _is_nan(value: Any) -> bool:
    return (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and value.strip().lower() == "nan")


def _number(d: _Doc, obj: dict, keys: tuple, field: str, *, nullable: bool) -> float | None:
    """A finite float; with ``nullable``, JSON null / NaN / "NaN" give ``None``."""
    if field not in obj:
        raise d.fail(keys, field, f"missing field {field!r}")
    value = obj[field]
    if value is None or _is_nan(value):
        if nullable:
            return None
        raise d.fail(keys, field, f"{value!r} where a number is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isinf(value):
        raise d.fail(keys, field, f"cannot read {value!r} as a number")
    return float(value)


def _integer(d: _Doc, obj: dict, keys: tuple, field: str) -> int:
    if field not in obj:
        raise d.fail(keys, field, f"missing field {field!r}")
    value = obj[field]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value):
        raise d.fail(keys, field, f"cannot read {value!r} as an integer")
    return int(value)


def _text(d: _Doc, obj: dict, keys: tuple, field: str) -> str:
    if field not in obj:
        raise d.fail(keys, field, f"missing field {field!r}")
    value = obj[field]
    if not isinstance(value, str) or not value:
        raise d.fail(keys, field, f"cannot read {value!r} as a non-empty text")
    return value


def _opt(doc: dict, field: str, kind: type) -> Any:
    value = doc.get(field)
    if value is None or (isinstance(value, bool) and kind is not bool):
        return None
    if kind is float and isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    if kind is int and isinstance(value, (int, float)) and math.isfinite(value):
        return int(value)
    if kind in (bool, str) and isinstance(value, kind):
        return value
    return None


def _facts(d: _Doc, doc: dict) -> ChainFacts:
    status = _text(d, doc, (), "status")
    if status != "SUCCESS":
        raise d.fail((), "status", f"chain status is {status!r}, not 'SUCCESS'")
    rate = _opt(doc, "interestRate", float)
    vol = _opt(doc, "volatility", float)
    return ChainFacts(
        symbol=_text(d, doc, (), "symbol"),
        status=status,
        strategy=_opt(doc, "strategy", str),
        interval=_opt(doc, "interval", float),
        is_delayed=_opt(doc, "isDelayed", bool),
        is_index=_opt(doc, "isIndex", bool),
        interest_rate=None if rate is None else rate / 100.0,
        volatility=None if vol is None else vol / 100.0,
        underlying_price=_opt(doc, "underlyingPrice", float),
        days_to_expiration=_opt(doc, "daysToExpiration", float),
        number_of_contracts=_opt(doc, "numberOfContracts", int),
    )


def _underlying_name(symbol: str) -> str:
    """TDA's underlying symbol in the platform's spelling (``$SPX.X`` -> ``SPX``)."""
    return symbol.lstrip("$").removesuffix(".X")


def read_chain_facts(path: str | Path) -> ChainFacts:
    """The request-level facts of a chain response (see :class:`ChainFacts`).

    Raises
    ------
    SourceFormatError
        If the file is not JSON, not an object, or its ``status`` is not ``SUCCESS``.
    """
    d, doc = _load(Path(path))
    return _facts(d, doc)


# --- the chain ------------------------------------------------------------------------------


def _contracts_in_order(d: _Doc, doc: dict):
    """Yield ``(keys, map_right, expiration, strike_key, contract)`` in file order."""
    present = [name for name in doc if name in MAPS]
    for name in MAPS:
        if name not in doc:
            raise d.fail((), None, f"missing field {name!r}")
    for name in present:
        exp_map = doc[name]
        if not isinstance(exp_map, dict):
            raise d.fail((), name, "expected an object of expirations")
        for exp_key, strikes in exp_map.items():
            m = _EXP_KEY.match(exp_key)
            try:
                expiration = dt.date.fromisoformat(m["date"]) if m else None
            except ValueError:
                expiration = None
            if expiration is None:
                raise d.fail((name,), exp_key, f"expiration key {exp_key!r} is not 'YYYY-MM-DD:days'")
            if not isinstance(strikes, dict):
                raise d.fail((name,), exp_key, "expected an object of strikes")
            for strike_key, contracts in strikes.items():
                if not isinstance(contracts, list):
                    raise d.fail((name, exp_key), strike_key, "expected a list of contracts")
                for i, contract in enumerate(contracts):
                    keys = (name, exp_key, strike_key, i)
                    if not isinstance(contract, dict):
                        raise d.fail(keys, None, "a contract is not a JSON object")
                    yield keys, MAPS[name], expiration, strike_key, contract


def read_chain(
    path: str | Path,
    *,
    universe: UniverseSettings = DEFAULT.universe,
    sessions: SessionSettings = DEFAULT.sessions,
) -> ReadResult:
    """Read a TD Ameritrade option chain response (``.json`` or ``.json.gz``).

    Parameters
    ----------
    path : str or pathlib.Path
        The chain JSON as the ``marketdata/chains`` endpoint returned it.
    universe : UniverseSettings
        ``european_roots`` for the exercise style of ``option_contracts``.
    sessions : SessionSettings
        Calendar of the expiry instants.

    Returns
    -------
    ReadResult
        ``tables`` (each conformed to its schema, sorted by the table's sort key;
        ``sequence`` = 1-based position of the contract in file order, calls and puts
        in the order their maps appear):

        * ``option_quotes``: one row per contract. ``ts_ns`` = ``quoteTimeInLong`` (ms)
          x 1e6, int64 UTC ns (never-quoted contracts: the chain's latest quote time);
          bid/ask float64 dollars (0/0 or NaN -> null), sizes int64 contracts; exchanges
          null (TDA names only the feed, ``OPR``).
        * ``option_vendor_greeks``: one row per contract: ``implied_volatility`` =
          ``volatility`` / 100 (decimal); ``delta``, ``gamma``, ``theta`` (dollars per
          calendar day), ``vega`` (per vol point), ``rho`` (per rate point) as given;
          -999 / NaN -> null. ``open_interest`` int64; ``theoretical_value`` =
          ``theoreticalOptionValue`` (negative placeholder -> null);
          ``underlying_price`` = top-level ``underlyingPrice``;
          ``implied_underlying_price`` null.
        * ``option_contracts``: one row per contract; ``multiplier`` from the contract;
          exercise 'E' for ``european_roots`` else 'A'; ``expiry_ts_ns`` from
          :func:`m17_platform.calendar.expiry_instant_ns`.
        * ``stock_quotes``: one row from the top-level ``underlying`` object (bid/ask
          dollars, sizes shares, ``ts_ns`` from its ``quoteTime`` ms); zero rows when
          the response has no underlying quote.

        ``stats``: ``contracts``, ``declared_contracts`` (``numberOfContracts``),
        ``placeholder_greek_rows`` (rows with a -999 / NaN volatility or greek),
        ``placeholder_values`` (such values nulled), ``null_iv_rows``,
        ``theoretical_value_placeholders``, ``never_quoted`` (quoteTimeInLong 0),
        ``quotes_unavailable`` (bid = ask = 0, or NaN: bid, ask and sizes null), ``quotes_zero_bid`` (bid 0,
        ask > 0), ``quotes_crossed`` (bid > ask), ``underlying_quote_missing``.

    Raises
    ------
    SourceFormatError
        Naming the file, the line of the offending field in the JSON text and the
        field: invalid JSON, ``status`` not ``SUCCESS``, a missing or non-numeric
        field (e.g. ``"bid": "x"``), an expiration key that is not
        ``YYYY-MM-DD:days``, a ``putCall`` / ``symbol`` / ``strikePrice`` that
        contradicts the map the contract sits in.
    """
    path = Path(path)
    d, doc = _load(path)
    facts = _facts(d, doc)
    underlying = _underlying_name(facts.symbol)
    underlying_price = facts.underlying_price

    cols: dict[str, list] = {
        name: []
        for name in (
            "quote_ms", "sequence", "option_symbol", "root", "expiration", "strike", "right",
            "bid", "bid_size", "ask", "ask_size", "multiplier",
            "implied_volatility", "delta", "gamma", "theta", "vega", "rho",
            "open_interest", "theoretical_value",
        )
    }  # fmt: skip
    stats = {
        "placeholder_greek_rows": 0,
        "placeholder_values": 0,
        "theoretical_value_placeholders": 0,
        "never_quoted": 0,
        "quotes_unavailable": 0,
    }
    exp_keys: dict[dt.date, tuple] = {}
    for seq, (keys, map_right, expiration, strike_key, c) in enumerate(_contracts_in_order(d, doc), start=1):
        exp_keys.setdefault(expiration, keys[:2])
        symbol = _text(d, c, keys, "symbol")
        m = _SYMBOL.match(symbol)
        if m is None:
            raise d.fail(keys, "symbol", f"{symbol!r} is not ROOT_MMDDYY[C|P]STRIKE")
        right = PUT_CALL.get(_text(d, c, keys, "putCall"))
        if right != map_right:
            raise d.fail(keys, "putCall", f"putCall {c['putCall']!r} in {keys[0]} (expected {map_right!r})")
        strike = _number(d, c, keys, "strikePrice", nullable=False)
        try:
            key_strike = float(strike_key)
        except ValueError:
            key_strike = None
        if key_strike != strike:
            raise d.fail(keys, "strikePrice", f"strikePrice {strike} is not the map's strike key {strike_key!r}")
        try:
            sym_date = dt.date(2000 + int(m["yy"]), int(m["mm"]), int(m["dd"]))
        except ValueError:
            sym_date = None
        if sym_date != expiration or m["right"] != right or float(m["strike"]) != strike:
            raise d.fail(keys, "symbol", f"{symbol!r} contradicts expiration {expiration}, {right}, strike {strike}")
        try:
            option_symbol = occ_symbol(m["root"], expiration, right, strike)
        except ValueError as exc:
            raise d.fail(keys, "strikePrice", str(exc)) from exc

        quote_ms = _integer(d, c, keys, "quoteTimeInLong")
        if quote_ms < 0:
            raise d.fail(keys, "quoteTimeInLong", f"negative quote time {quote_ms}")
        bid = _number(d, c, keys, "bid", nullable=True)
        ask = _number(d, c, keys, "ask", nullable=True)
        if quote_ms == 0:
            stats["never_quoted"] += 1
        bid_size = _integer(d, c, keys, "bidSize")
        ask_size = _integer(d, c, keys, "askSize")
        if bid is None or ask is None or (bid == 0.0 and ask == 0.0):
            stats["quotes_unavailable"] += 1
            bid = ask = bid_size = ask_size = None
        multiplier = _integer(d, c, keys, "multiplier")
        if multiplier <= 0:
            raise d.fail(keys, "multiplier", f"multiplier {multiplier} is not positive")

        greeks = {}
        nulled = 0
        for name in GREEK_FIELDS:
            value = _number(d, c, keys, name, nullable=True)
            if value is None or value == PLACEHOLDER:
                nulled += 1
                value = None
            greeks[name] = value
        stats["placeholder_values"] += nulled
        stats["placeholder_greek_rows"] += nulled > 0
        theo = _number(d, c, keys, "theoreticalOptionValue", nullable=True)
        if theo is None or theo < 0:
            stats["theoretical_value_placeholders"] += 1
            theo = None

        row = {
            "quote_ms": quote_ms,
            "sequence": seq,
            "option_symbol": option_symbol,
            "root": m["root"],
            "expiration": expiration,
            "strike": strike,
            "right": right,
            "bid": bid,
            "bid_size": bid_size,
            "ask": ask,
            "ask_size": ask_size,
            "multiplier": multiplier,
            "implied_volatility": None if greeks["volatility"] is None else greeks["volatility"] / 100.0,
            "delta": greeks["delta"],
            "gamma": greeks["gamma"],
            "theta": greeks["theta"],
            "vega": greeks["vega"],
            "rho": greeks["rho"],
            "open_interest": _integer(d, c, keys, "openInterest"),
            "theoretical_value": theo,
        }
        for name, value in row.items():
            cols[name].append(value)

    # The underlying quote.
    stock_rows: dict[str, list] = {"ts_ns": [], "bid": [], "ask": [], "bid_size": [], "ask_size": [], "symbol": []}
    u = doc.get("underlying")
    if u is not None:
        if not isinstance(u, dict):
            raise d.fail((), "underlying", "expected an object")
        uk = ("underlying",)
        u_ms = _integer(d, u, uk, "quoteTime")
        u_bid = _number(d, u, uk, "bid", nullable=True)
        u_ask = _number(d, u, uk, "ask", nullable=True)
        if u_bid == 0.0 and u_ask == 0.0:
            u_bid = u_ask = None
        stock_rows["ts_ns"].append(u_ms * NS_PER_MS)
        stock_rows["bid"].append(u_bid)
        stock_rows["ask"].append(u_ask)
        stock_rows["bid_size"].append(_integer(d, u, uk, "bidSize"))
        stock_rows["ask_size"].append(_integer(d, u, uk, "askSize"))
        stock_rows["symbol"].append(_underlying_name(u.get("symbol") or facts.symbol))

    # Never-quoted contracts (quoteTimeInLong 0) take the chain's snapshot instant.
    quoted = [ms for ms in cols["quote_ms"] if ms > 0]
    if quoted:
        snapshot_ms = max(quoted)
    elif stock_rows["ts_ns"] and stock_rows["ts_ns"][0] > 0:
        snapshot_ms = stock_rows["ts_ns"][0] // NS_PER_MS
    else:
        snapshot_ms = None
    if stats["never_quoted"] and snapshot_ms is None:
        raise d.fail((), None, "no contract has a quote time and the underlying has none: cannot time the chain")
    ts_ns = [(ms if ms > 0 else snapshot_ms) * NS_PER_MS for ms in cols["quote_ms"]]

    base = pl.DataFrame(
        {
            "ts_ns": pl.Series(ts_ns, dtype=pl.Int64),
            "sequence": pl.Series(cols["sequence"], dtype=pl.Int64),
            "option_symbol": pl.Series(cols["option_symbol"], dtype=pl.String),
            "underlying": pl.Series([underlying] * len(ts_ns), dtype=pl.String),
            "root": pl.Series(cols["root"], dtype=pl.String),
            "expiration": pl.Series(cols["expiration"], dtype=pl.Date),
            "strike": pl.Series(cols["strike"], dtype=pl.Float64),
            "right": pl.Series(cols["right"], dtype=pl.String),
        }
    )
    floats = ("bid", "ask", "implied_volatility", "delta", "gamma", "theta", "vega", "rho", "theoretical_value")
    ints = ("bid_size", "ask_size", "multiplier", "open_interest")
    values = pl.DataFrame(
        {name: pl.Series(cols[name], dtype=pl.Float64) for name in floats}
        | {name: pl.Series(cols[name], dtype=pl.Int64) for name in ints}
    )
    frame = pl.concat([base, values], how="horizontal")
    ident = ["option_symbol", "underlying", "root", "expiration", "strike", "right"]
    null_str = pl.lit(None, dtype=pl.String)

    quotes = frame.select(
        ["ts_ns", "sequence", *ident, "bid", "bid_size", "ask", "ask_size"],
        bid_exchange=null_str,
        ask_exchange=null_str,
        source=pl.lit(SOURCE),
    )
    greeks_frame = frame.select(
        ["ts_ns", "sequence", *ident],
        underlying_price=pl.lit(underlying_price, dtype=pl.Float64),
        implied_underlying_price=pl.lit(None, dtype=pl.Float64),
        implied_volatility=pl.col("implied_volatility"),
        delta=pl.col("delta"),
        gamma=pl.col("gamma"),
        theta=pl.col("theta"),
        vega=pl.col("vega"),
        rho=pl.col("rho"),
        open_interest=pl.col("open_interest"),
        theoretical_value=pl.col("theoretical_value"),
        source=pl.lit(SOURCE),
    )
    expiry: dict[dt.date, int] = {}
    for exp, keys in exp_keys.items():
        try:
            expiry[exp] = calendar.expiry_instant_ns(exp, sessions)
        except (CalendarError, ValueError, KeyError) as exc:
            raise d.fail(keys[:1], keys[1], f"no expiry instant for {exp}: {exc}") from exc
    uniq = frame.unique("option_symbol", keep="first", maintain_order=True)
    contracts = uniq.select(
        [*ident, "multiplier"],
        exercise_style=pl.when(pl.col("root").is_in(list(universe.european_roots))).then(pl.lit("E")).otherwise(pl.lit("A")),
        expiry_ts_ns=pl.Series([expiry[e] for e in uniq.get_column("expiration").to_list()], dtype=pl.Int64),
        source=pl.lit(SOURCE),
    )
    stock = pl.DataFrame(
        {
            "ts_ns": pl.Series(stock_rows["ts_ns"], dtype=pl.Int64),
            "sequence": pl.Series(list(range(1, len(stock_rows["ts_ns"]) + 1)), dtype=pl.Int64),
            "symbol": pl.Series(stock_rows["symbol"], dtype=pl.String),
            "underlying": pl.Series([underlying] * len(stock_rows["ts_ns"]), dtype=pl.String),
            "bid": pl.Series(stock_rows["bid"], dtype=pl.Float64),
            "bid_size": pl.Series(stock_rows["bid_size"], dtype=pl.Int64),
            "ask": pl.Series(stock_rows["ask"], dtype=pl.Float64),
            "ask_size": pl.Series(stock_rows["ask_size"], dtype=pl.Int64),
            "bid_exchange": pl.Series([None] * len(stock_rows["ts_ns"]), dtype=pl.String),
            "ask_exchange": pl.Series([None] * len(stock_rows["ts_ns"]), dtype=pl.String),
            "source": pl.Series([UNDERLYING_SOURCE] * len(stock_rows["ts_ns"]), dtype=pl.String),
        }
    )

    counts = frame.select(
        pl.len().alias("contracts"),
        pl.col("implied_volatility").is_null().sum().alias("null_iv_rows"),
        ((pl.col("bid") == 0) & (pl.col("ask") > 0)).sum().alias("quotes_zero_bid"),
        (pl.col("bid") > pl.col("ask")).sum().alias("quotes_crossed"),
    ).row(0, named=True)
    stats.update({k: int(v or 0) for k, v in counts.items()})
    stats["declared_contracts"] = int(facts.number_of_contracts or 0)
    stats["underlying_quote_missing"] = int(stock.height == 0)

    tables = conformed_tables(
        {"option_quotes": quotes, "option_vendor_greeks": greeks_frame, "option_contracts": contracts, "stock_quotes": stock},
        str(path),
    )
    return ReadResult(tables=tables, stats=stats)
