"""Every table's schema, written once, with dtypes and units.

Conventions (see ``DESIGN.md``, "Data model"):

* time is ``int64`` nanoseconds since the Unix epoch, UTC (``ts_ns``);
* prices are ``float64`` dollars; sizes are ``int64`` (contracts for options and
  futures, shares for stock);
* options are named by OCC/OSI symbol in Polygon's spelling (``O:SPY251110C00685000``)
  and every option row also carries ``underlying``, ``root``, ``expiration``,
  ``strike`` and ``right`` ('C' / 'P');
* every row carries ``underlying``: the Dagster partition's underlying. ES futures
  rows carry the underlying they serve as a proxy (``SPY``), not ``ES``;
* ``sequence`` is the vendor's sequence number, or the row's position in the source
  file when the vendor has none; with ``ts_ns`` it is the stable order of events.

Each column's unit and meaning are stored in the Arrow field metadata (keys
``unit`` and ``description``) so they travel with every Parquet file the lake writes.
"""

from __future__ import annotations

import pyarrow as pa

from m17_platform.table_schema import (  # noqa: F401 (re-exported)
    ENRICHED,
    GOLD,
    LAYERS,
    RAW,
    TableSchema,
    col,
    table_markdown,
)


# --- shared column groups -------------------------------------------------------------

def _event_time() -> list[pa.Field]:
    return [
        col("ts_ns", pa.int64(), "ns since epoch, UTC", "event time (exchange / vendor timestamp)"),
        col("sequence", pa.int64(), "count", "vendor sequence number, or row position in the source file"),
    ]


def _option_identity() -> list[pa.Field]:
    return [
        col("option_symbol", pa.string(), "OCC symbol", "OCC/OSI symbol, Polygon spelling O:ROOTYYMMDD[C|P]STRIKE*1000"),
        col("underlying", pa.string(), "ticker", "underlying of the contract; the partition's underlying"),
        col("root", pa.string(), "ticker", "option root / trading class (SPY, SPXW, VIX, VIXW, ...)"),
        col("expiration", pa.date32(), "date", "last trading day of the contract"),
        col("strike", pa.float64(), "dollars", "strike price"),
        col("right", pa.string(), "C|P", "C for call, P for put"),
    ]


def _source() -> pa.Field:
    return col("source", pa.string(), "text", "vendor and dataset the row came from (e.g. cboe_datashop.option_trades)")


def _quote_sides(size_unit: str) -> list[pa.Field]:
    return [
        col("bid", pa.float64(), "dollars", "best bid price", nullable=True),
        col("bid_size", pa.int64(), size_unit, "size at the best bid", nullable=True),
        col("ask", pa.float64(), "dollars", "best ask (offer) price", nullable=True),
        col("ask_size", pa.int64(), size_unit, "size at the best ask", nullable=True),
        col("bid_exchange", pa.string(), "vendor code", "exchange at the bid, in the source's code space", nullable=True),
        col("ask_exchange", pa.string(), "vendor code", "exchange at the ask, in the source's code space", nullable=True),
    ]


def _trade_body(size_unit: str) -> list[pa.Field]:
    return [
        col("price", pa.float64(), "dollars", "trade price"),
        col("size", pa.int64(), size_unit, "trade size"),
        col("exchange", pa.string(), "vendor code", "executing exchange, in the source's code space", nullable=True),
        col("conditions", pa.list_(pa.string()), "vendor codes", "trade condition codes as the vendor gives them", nullable=True),
        col("trade_id", pa.string(), "text", "vendor trade / execution id", nullable=True),
        col("canceled", pa.bool_(), "flag", "the vendor marks this print canceled or busted (kept, flagged)"),
    ]


AGGRESSOR_SIDE = col(
    "aggressor_side",
    pa.string(),
    "B|S|N",
    "vendor-reported aggressor: B buyer-initiated, S seller-initiated, N none; null when the vendor does not say",
    nullable=True,
)

# --- raw tables -----------------------------------------------------------------------

OPTION_TRADES = TableSchema(
    name="option_trades",
    layer=RAW,
    schema=pa.schema(_event_time() + _option_identity() + _trade_body("contracts") + [_source()]),
    sort_key=("option_symbol", "ts_ns", "sequence"),
    instrument="option_symbol",
    dedup_key=("option_symbol", "ts_ns", "sequence", "price", "size"),
    positive=("price", "strike"),
    session_kind="option",
    description="option prints (OPRA / vendor trades), one row per print",
)

OPTION_QUOTES = TableSchema(
    name="option_quotes",
    layer=RAW,
    schema=pa.schema(_event_time() + _option_identity() + _quote_sides("contracts") + [_source()]),
    sort_key=("option_symbol", "ts_ns", "sequence"),
    instrument="option_symbol",
    dedup_key=("option_symbol", "ts_ns", "sequence"),
    positive=("strike",),
    quote_pair=("bid", "ask"),
    session_kind="option",
    description="option NBBO quotes (consolidated best bid and offer), one row per update or snapshot",
)

STOCK_TRADES = TableSchema(
    name="stock_trades",
    layer=RAW,
    schema=pa.schema(
        _event_time()
        + [
            col("symbol", pa.string(), "ticker", "stock or index symbol"),
            col("underlying", pa.string(), "ticker", "the partition's underlying"),
        ]
        + _trade_body("shares")
        + [AGGRESSOR_SIDE, _source()]
    ),
    sort_key=("symbol", "ts_ns", "sequence"),
    instrument="symbol",
    dedup_key=("symbol", "ts_ns", "sequence", "price", "size"),
    positive=("price",),
    session_kind="stock",
    description="underlying (stock / ETF) prints",
)

STOCK_QUOTES = TableSchema(
    name="stock_quotes",
    layer=RAW,
    schema=pa.schema(
        _event_time()
        + [
            col("symbol", pa.string(), "ticker", "stock, ETF or index symbol"),
            col("underlying", pa.string(), "ticker", "the partition's underlying"),
        ]
        + _quote_sides("shares")
        + [_source()]
    ),
    sort_key=("symbol", "ts_ns", "sequence"),
    instrument="symbol",
    dedup_key=("symbol", "ts_ns", "sequence"),
    quote_pair=("bid", "ask"),
    session_kind="stock",
    description="underlying best bid and offer (NBBO, or one venue's BBO where the source has only that)",
)

FUTURES_TRADES = TableSchema(
    name="futures_trades",
    layer=RAW,
    schema=pa.schema(
        _event_time()
        + [
            col("ts_recv_ns", pa.int64(), "ns since epoch, UTC", "capture-server receive time", nullable=True),
            col("symbol", pa.string(), "ticker", "futures contract (raw symbol, e.g. ESH4)"),
            col("instrument_id", pa.int64(), "id", "vendor instrument id"),
            col("underlying", pa.string(), "ticker", "the underlying this futures contract serves as a proxy for"),
        ]
        + _trade_body("contracts")
        + [AGGRESSOR_SIDE, _source()]
    ),
    sort_key=("symbol", "ts_ns", "sequence"),
    instrument="symbol",
    # CME numbers packets, not prints: prints of one packet share ts and sequence, and
    # only the aggressor's order id (trade_id) tells apart two of the same price and size
    dedup_key=("symbol", "ts_ns", "ts_recv_ns", "sequence", "price", "size", "trade_id"),
    positive=("price",),
    session_kind="futures",
    description="futures prints with the exchange's aggressor side",
)

BOOK_DEPTH = 10


def _book_levels() -> list[pa.Field]:
    fields: list[pa.Field] = []
    for side, word in (("bid", "bid"), ("ask", "ask")):
        for i in range(BOOK_DEPTH):
            fields += [
                col(f"{side}_px_{i:02d}", pa.float64(), "dollars", f"{word} price at level {i} (0 = best)", nullable=True),
                col(f"{side}_sz_{i:02d}", pa.int64(), "contracts", f"aggregate {word} size at level {i}", nullable=True),
                col(f"{side}_ct_{i:02d}", pa.int64(), "orders", f"number of {word} orders at level {i}", nullable=True),
            ]
    return fields


FUTURES_MBP10 = TableSchema(
    name="futures_mbp10",
    layer=RAW,
    schema=pa.schema(
        _event_time()
        + [
            col("ts_recv_ns", pa.int64(), "ns since epoch, UTC", "capture-server receive time", nullable=True),
            col("symbol", pa.string(), "ticker", "futures contract (raw symbol, e.g. ESH4)"),
            col("instrument_id", pa.int64(), "id", "vendor instrument id"),
            col("underlying", pa.string(), "ticker", "the underlying this futures contract serves as a proxy for"),
            col("action", pa.string(), "A|C|M|T|F|R", "MBO action of the last event applied (Databento action codes)"),
            col("side", pa.string(), "B|A|N", "side of the last event applied"),
            col("event_price", pa.float64(), "dollars", "price of the last event applied", nullable=True),
            col("event_size", pa.int64(), "contracts", "size of the last event applied"),
        ]
        + _book_levels()
        + [_source()]
    ),
    sort_key=("symbol", "ts_ns", "sequence"),
    instrument="symbol",
    dedup_key=("symbol", "ts_ns", "sequence"),
    quote_pair=("bid_px_00", "ask_px_00"),
    session_kind="futures",
    description="futures market-by-price, top 10 levels, after each complete exchange event (rebuilt from MBO)",
)

OPTION_CONTRACTS = TableSchema(
    name="option_contracts",
    layer=RAW,
    schema=pa.schema(
        _option_identity()
        + [
            col("multiplier", pa.int64(), "shares per contract", "deliverable multiplier (premium = price x size x multiplier)"),
            col("exercise_style", pa.string(), "A|E", "American or European exercise", nullable=True),
            col("expiry_ts_ns", pa.int64(), "ns since epoch, UTC", "expiry instant: the session close of the expiration day"),
            _source(),
        ]
    ),
    sort_key=("option_symbol",),
    instrument=None,
    dedup_key=("option_symbol",),
    positive=("strike",),
    description="option contract reference, one row per contract seen in the partition",
)

OPTION_VENDOR_GREEKS = TableSchema(
    name="option_vendor_greeks",
    layer=RAW,
    schema=pa.schema(
        _event_time()
        + _option_identity()
        + [
            col("underlying_price", pa.float64(), "dollars", "underlying price the vendor used", nullable=True),
            col("implied_underlying_price", pa.float64(), "dollars", "vendor's put-call-parity forward", nullable=True),
            col("implied_volatility", pa.float64(), "annualised, decimal", "vendor implied volatility (0.20 = 20%)", nullable=True),
            col("delta", pa.float64(), "per $1 underlying", "vendor delta", nullable=True),
            col("gamma", pa.float64(), "per $1 underlying, per $1", "vendor gamma", nullable=True),
            col("theta", pa.float64(), "dollars per calendar day", "vendor theta", nullable=True),
            col("vega", pa.float64(), "dollars per vol point", "vendor vega (per 1% volatility)", nullable=True),
            col("rho", pa.float64(), "dollars per rate point", "vendor rho (per 1% rate)", nullable=True),
            col("open_interest", pa.int64(), "contracts", "open interest", nullable=True),
            col("theoretical_value", pa.float64(), "dollars", "vendor theoretical option value", nullable=True),
            _source(),
        ]
    ),
    sort_key=("option_symbol", "ts_ns", "sequence"),
    instrument="option_symbol",
    dedup_key=("option_symbol", "ts_ns", "sequence"),
    positive=("strike",),
    session_kind="option",
    description="vendor-computed implied volatility, greeks and open interest (reference for our own greeks)",
)

RATES = TableSchema(
    name="rates",
    layer=RAW,
    schema=pa.schema(
        [
            col("date", pa.date32(), "date", "trade date the rate applies to"),
            col("tenor_days", pa.int32(), "calendar days", "tenor of the rate"),
            col("rate", pa.float64(), "annualised, continuously compounded, decimal", "risk-free rate (0.05 = 5%)"),
            col("dividend_yield", pa.float64(), "annualised, continuously compounded, decimal", "underlying's dividend yield"),
            col("underlying", pa.string(), "ticker", "the partition's underlying"),
            _source(),
        ]
    ),
    sort_key=("tenor_days",),
    instrument=None,
    dedup_key=("date", "tenor_days"),
    description="risk-free rate curve and dividend yield per trade date (a configured constant unless a curve is given)",
)

RAW_TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (
        OPTION_TRADES,
        OPTION_QUOTES,
        STOCK_TRADES,
        STOCK_QUOTES,
        FUTURES_TRADES,
        FUTURES_MBP10,
        OPTION_CONTRACTS,
        OPTION_VENDOR_GREEKS,
        RATES,
    )
}

# --- enriched tables -------------------------------------------------------------------


def _nbbo_and_side() -> list[pa.Field]:
    return [
        col("bid", pa.float64(), "dollars", "prevailing best bid at the trade", nullable=True),
        col("ask", pa.float64(), "dollars", "prevailing best ask at the trade", nullable=True),
        col("bid_size", pa.int64(), "contracts or shares", "size at the prevailing bid", nullable=True),
        col("ask_size", pa.int64(), "contracts or shares", "size at the prevailing ask", nullable=True),
        col("quote_ts_ns", pa.int64(), "ns since epoch, UTC", "time of the prevailing quote", nullable=True),
        col("quote_age_ns", pa.int64(), "ns", "trade time minus quote time", nullable=True),
        col("nbbo_flag", pa.string(), "ok|no_quote|stale|one_sided|zero_bid|crossed|locked", "quality of the prevailing quote"),
        col("side", pa.string(), "buy|sell|unknown", "aggressor side by the platform's rule"),
        col("side_rule", pa.string(), "rule.step", "rule and step that decided the side (e.g. clnv.tick)"),
        col("side_confidence", pa.float64(), "0-1", "confidence of the side (quote distance from mid, or a fixed tick value)"),
        col("placement", pa.string(), "AA|A|MID|B|BB", "trade price against the NBBO", nullable=True),
    ]


def _fields(spec: TableSchema) -> list[pa.Field]:
    return list(spec.schema)


OPTION_TRADES_ENRICHED = TableSchema(
    name="option_trades_enriched",
    layer=ENRICHED,
    schema=pa.schema(
        _fields(OPTION_TRADES)
        + _nbbo_and_side()
        + [
            col("underlying_bid", pa.float64(), "dollars", "underlying's prevailing bid", nullable=True),
            col("underlying_ask", pa.float64(), "dollars", "underlying's prevailing ask", nullable=True),
            col("underlying_mid", pa.float64(), "dollars", "underlying's prevailing mid", nullable=True),
            col("underlying_quote_age_ns", pa.int64(), "ns", "age of the underlying quote at the trade", nullable=True),
            col("underlying_last", pa.float64(), "dollars", "underlying's last print at or before the trade", nullable=True),
            col("underlying_last_ts_ns", pa.int64(), "ns since epoch, UTC", "time of that print", nullable=True),
            col("multiplier", pa.int64(), "shares per contract", "contract multiplier (option_contracts, else the default)"),
            col("premium", pa.float64(), "dollars", "price x size x multiplier"),
        ]
    ),
    sort_key=OPTION_TRADES.sort_key,
    instrument="option_symbol",
    dedup_key=OPTION_TRADES.dedup_key,
    positive=("price", "strike"),
    quote_pair=("bid", "ask"),
    session_kind="option",
    description="option prints joined to the option NBBO and the underlying's quote and last print, with the aggressor",
)

STOCK_TRADES_ENRICHED = TableSchema(
    name="stock_trades_enriched",
    layer=ENRICHED,
    schema=pa.schema(_fields(STOCK_TRADES) + _nbbo_and_side()),
    sort_key=STOCK_TRADES.sort_key,
    instrument="symbol",
    dedup_key=STOCK_TRADES.dedup_key,
    positive=("price",),
    quote_pair=("bid", "ask"),
    session_kind="stock",
    description="stock prints joined to the prevailing quote, with the aggressor",
)

FUTURES_TRADES_ENRICHED = TableSchema(
    name="futures_trades_enriched",
    layer=ENRICHED,
    schema=pa.schema(_fields(FUTURES_TRADES) + _nbbo_and_side()),
    sort_key=FUTURES_TRADES.sort_key,
    instrument="symbol",
    dedup_key=FUTURES_TRADES.dedup_key,
    positive=("price",),
    session_kind="futures",
    description="futures prints joined to the top of book before each print (from MBP-10), with the aggressor",
)


def _greek_fields() -> list[pa.Field]:
    return [
        col("delta", pa.float64(), "per $1 underlying", "option delta (w.r.t. the forward for Black-76)", nullable=True),
        col("gamma", pa.float64(), "per $1 underlying, per $1", "option gamma", nullable=True),
        col("theta", pa.float64(), "dollars per calendar day", "option theta", nullable=True),
        col("vega", pa.float64(), "dollars per vol point", "option vega (per 1% volatility)", nullable=True),
        col("rho", pa.float64(), "dollars per rate point", "option rho (per 1% rate)", nullable=True),
    ]


def _pricing_inputs() -> list[pa.Field]:
    return [
        col("underlying_price", pa.float64(), "dollars", "spot (BSM) or forward (Black-76) used", nullable=True),
        col("underlying_price_source", pa.string(), "mid|trade|bid|ask|vendor|vendor_forward|parity_forward|none",
            "where underlying_price came from"),
        col("model", pa.string(), "bsm|black76", "pricing model: Black-Scholes-Merton on spot, Black-76 on a forward"),
        col("t_years", pa.float64(), "years (365-day)", "time from the observation to the expiry instant"),
        col("rate", pa.float64(), "annualised, continuous, decimal", "risk-free rate (rates table)"),
        col("dividend_yield", pa.float64(), "annualised, continuous, decimal", "dividend yield (rates table; unused by Black-76)"),
    ]


OPTION_TRADE_GREEKS = TableSchema(
    name="option_trade_greeks",
    layer=ENRICHED,
    schema=pa.schema(
        _event_time()
        + _option_identity()
        + [
            col("price", pa.float64(), "dollars", "trade price"),
            col("mid", pa.float64(), "dollars", "NBBO mid at the trade (null without a two-sided quote)", nullable=True),
        ]
        + _pricing_inputs()
        + [
            col("iv_trade", pa.float64(), "annualised, decimal", "implied volatility from the trade price", nullable=True),
            col("iv_trade_status", pa.string(), "IVStatus", "solver outcome for iv_trade"),
            col("iv_mid", pa.float64(), "annualised, decimal", "implied volatility from the NBBO mid", nullable=True),
            col("iv_mid_status", pa.string(), "IVStatus", "solver outcome for iv_mid"),
            col("greeks_iv_source", pa.string(), "mid|trade|none", "which IV the greeks use (mid when OK, else trade)"),
        ]
        + _greek_fields()
        + [_source()]
    ),
    sort_key=OPTION_TRADES.sort_key,
    instrument="option_symbol",
    dedup_key=OPTION_TRADES.dedup_key[:3],
    positive=("price", "strike"),
    session_kind="option",
    description="implied volatility (from the trade and from the NBBO mid) and greeks of every option print",
)

OPTION_QUOTE_GREEKS = TableSchema(
    name="option_quote_greeks",
    layer=ENRICHED,
    schema=pa.schema(
        _event_time()
        + _option_identity()
        + [
            col("bid", pa.float64(), "dollars", "best bid", nullable=True),
            col("ask", pa.float64(), "dollars", "best ask", nullable=True),
            col("mid", pa.float64(), "dollars", "(bid + ask) / 2 of a two-sided quote with bid > 0", nullable=True),
        ]
        + _pricing_inputs()
        + [
            col("iv", pa.float64(), "annualised, decimal", "implied volatility from the mid", nullable=True),
            col("iv_status", pa.string(), "IVStatus", "solver outcome"),
        ]
        + _greek_fields()
        + [
            col("vendor_iv", pa.float64(), "annualised, decimal", "vendor implied volatility at the same quote", nullable=True),
            col("vendor_delta", pa.float64(), "per $1 underlying", "vendor delta", nullable=True),
            col("vendor_gamma", pa.float64(), "per $1 underlying, per $1", "vendor gamma", nullable=True),
            col("vendor_theta", pa.float64(), "dollars per calendar day", "vendor theta", nullable=True),
            col("vendor_vega", pa.float64(), "dollars per vol point", "vendor vega", nullable=True),
            _source(),
        ]
    ),
    sort_key=OPTION_QUOTES.sort_key,
    instrument="option_symbol",
    dedup_key=OPTION_QUOTES.dedup_key,
    positive=("strike",),
    quote_pair=("bid", "ask"),
    session_kind="option",
    description="implied volatility and greeks of every option quote from its mid, beside the vendor's where it has them",
)

ENRICHED_TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (
        OPTION_TRADES_ENRICHED,
        STOCK_TRADES_ENRICHED,
        FUTURES_TRADES_ENRICHED,
        OPTION_TRADE_GREEKS,
        OPTION_QUOTE_GREEKS,
    )
}

# --- gold tables (flow analytics, m17_platform.flow) --------------------------------------


def _nullable_option_identity(what: str) -> list[pa.Field]:
    return [
        col("option_symbol", pa.string(), "OCC symbol", f"OCC/OSI symbol of the contract ({what})", nullable=True),
        col("root", pa.string(), "ticker", f"option root / trading class ({what})", nullable=True),
        col("expiration", pa.date32(), "date", f"last trading day of the contract ({what})", nullable=True),
        col("strike", pa.float64(), "dollars", "strike price (contract and strike grains)", nullable=True),
        col("right", pa.string(), "C|P", "C for call, P for put (contract and strike grains)", nullable=True),
    ]


def _flow_measures(prefix: str = "", what: str = "in the window") -> list[pa.Field]:
    return [
        col(f"{prefix}trades", pa.int64(), "count", f"prints {what} (canceled prints excluded)"),
        col(f"{prefix}volume", pa.int64(), "contracts", f"contracts traded {what}"),
        col(f"{prefix}premium", pa.float64(), "dollars", f"premium {what}: sum of price x size x multiplier"),
    ]


FLOW_WINDOWS = TableSchema(
    name="flow_windows",
    layer=GOLD,
    schema=pa.schema(
        [
            col("grain", pa.string(), "contract|strike|underlying",
                "roll-up: one contract, one strike and right (all expirations), or the whole underlying"),
            col("window_ns", pa.int64(), "ns", "window length (FlowSettings.window_seconds; 10 min = M17's SPY windows)"),
            col("window_start_ns", pa.int64(), "ns since epoch, UTC", "window start (inclusive), a multiple of window_ns"),
            col("window_end_ns", pa.int64(), "ns since epoch, UTC", "window end (exclusive)"),
            col("underlying", pa.string(), "ticker", "the partition's underlying"),
        ]
        + _nullable_option_identity("contract grain")
        + _flow_measures()
        + [
            col("buy_volume", pa.int64(), "contracts", "contracts of buyer-initiated prints (side buy)"),
            col("sell_volume", pa.int64(), "contracts", "contracts of seller-initiated prints (side sell)"),
            col("unknown_volume", pa.int64(), "contracts", "contracts of prints whose side is unknown"),
            col("buy_premium", pa.float64(), "dollars", "premium of buyer-initiated prints"),
            col("sell_premium", pa.float64(), "dollars", "premium of seller-initiated prints"),
            col("unknown_premium", pa.float64(), "dollars", "premium of prints whose side is unknown"),
            col("net_premium", pa.float64(), "dollars", "buy_premium - sell_premium"),
            col("delta_flow", pa.float64(), "dollars",
                "signed delta flow: sum of side x size x multiplier x delta x S (side +1 buy, -1 sell, 0 unknown)"),
            col("gamma_flow", pa.float64(), "dollars per 1% move",
                "signed gamma flow: sum of side x size x multiplier x gamma x S^2 x 0.01"),
            col("greeks_missing", pa.int64(), "count", "prints without delta, gamma or S (left out of the greek flows)"),
            col("cum_trades", pa.int64(), "count", "trades from the first window of the day through this one"),
            col("cum_volume", pa.int64(), "contracts", "volume from the first window of the day through this one"),
            col("cum_premium", pa.float64(), "dollars", "premium from the first window of the day through this one"),
            col("cum_net_premium", pa.float64(), "dollars", "net premium from the first window of the day through this one"),
            col("cum_delta_flow", pa.float64(), "dollars", "delta flow from the first window of the day through this one"),
            col("cum_gamma_flow", pa.float64(), "dollars per 1% move", "gamma flow from the first window of the day through this one"),
        ]
    ),
    sort_key=("grain", "window_ns", "option_symbol", "strike", "right", "window_start_ns"),
    instrument=None,
    dedup_key=("grain", "window_ns", "option_symbol", "strike", "right", "window_start_ns"),
    description="option flow per window (1 and 10 min) per contract, strike/right and underlying: volume, premium "
    "by aggressor, signed delta and gamma flow, and cumulative intraday series; a plain-text 10-min summary "
    "(windows.txt) beside it",
)

FLOW_PACKETS = TableSchema(
    name="flow_packets",
    layer=GOLD,
    schema=pa.schema(
        [
            col("packet_id", pa.string(), "text", "option_symbol@first print's ts_ns"),
            col("ts_ns", pa.int64(), "ns since epoch, UTC", "first print of the packet"),
            col("end_ts_ns", pa.int64(), "ns since epoch, UTC", "last print of the packet"),
        ]
        + _option_identity()
        + [
            col("prints", pa.int64(), "count", "prints in the packet"),
            col("size", pa.int64(), "contracts", "contracts in the packet"),
            col("premium", pa.float64(), "dollars", "sum of price x size x multiplier"),
            col("multiplier", pa.int64(), "shares per contract", "contract multiplier"),
            col("vwap", pa.float64(), "dollars", "size-weighted average price, sum(price x size) / sum(size)"),
            col("price_min", pa.float64(), "dollars", "lowest print price"),
            col("price_max", pa.float64(), "dollars", "highest print price"),
            col("bid", pa.float64(), "dollars", "NBBO bid at the first print", nullable=True),
            col("ask", pa.float64(), "dollars", "NBBO ask at the first print", nullable=True),
            col("price_max_vs_ask", pa.float64(), "dollars", "price_max - ask at the first print (> 0: through the ask)", nullable=True),
            col("price_min_vs_bid", pa.float64(), "dollars", "price_min - bid at the first print (< 0: through the bid)", nullable=True),
            col("exchanges", pa.list_(pa.string()), "vendor codes", "distinct exchanges the prints hit, sorted"),
            col("exchange_count", pa.int64(), "count", "number of distinct exchanges"),
            col("buy_volume", pa.int64(), "contracts", "contracts of buyer-initiated prints"),
            col("sell_volume", pa.int64(), "contracts", "contracts of seller-initiated prints"),
            col("unknown_volume", pa.int64(), "contracts", "contracts of prints whose side is unknown"),
            col("side", pa.string(), "buy|sell|mixed|unknown",
                "dominant side when its share of the contracts reaches ClassifierSettings.min_aggressor_ratio"),
            col("side_share", pa.float64(), "0-1", "share of the contracts on the larger of buy and sell"),
            col("above_ask_volume", pa.int64(), "contracts", "contracts printed above the ask (AA)"),
            col("at_ask_volume", pa.int64(), "contracts", "contracts printed at the ask (A)"),
            col("mid_volume", pa.int64(), "contracts", "contracts printed inside the spread (MID)"),
            col("at_bid_volume", pa.int64(), "contracts", "contracts printed at the bid (B)"),
            col("below_bid_volume", pa.int64(), "contracts", "contracts printed below the bid (BB)"),
            col("placement", pa.string(), "AA|A|MID|B|BB", "placement with the most contracts", nullable=True),
            col("nbbo_coverage", pa.float64(), "0-1", "share of prints with a usable NBBO (the enrichment's usable flags)"),
            col("nbbo_fresh_share", pa.float64(), "0-1",
                "share of prints with a usable NBBO no older than SignalFilterSettings.nbbo_max_age_ms"),
            col("side_confidence", pa.float64(), "0-1", "size-weighted mean side_confidence of the prints"),
            col("iso", pa.bool_(), "flag", "a print carries an intermarket sweep (ISO) condition"),
            col("delta_flow", pa.float64(), "dollars", "signed delta flow of the packet"),
            col("gamma_flow", pa.float64(), "dollars per 1% move", "signed gamma flow of the packet"),
            col("evidence_trade_ids", pa.list_(pa.string()), "trade ids",
                "the prints: trade_id, or option_symbol@ts_ns:sequence when the vendor gives none"),
            col("presets", pa.list_(pa.string()), "preset names", "signal-filtering presets the packet passes (seed 004)"),
        ]
    ),
    sort_key=("option_symbol", "ts_ns"),
    instrument="option_symbol",
    dedup_key=("packet_id",),
    description="flow packets: prints of one contract within FlowSettings.packet_window_ms of the first, with premium, "
    "exchanges, price vs NBBO, aggressor mix and the trade ids as evidence (seed 004)",
)

FLOW_ALERTS = TableSchema(
    name="flow_alerts",
    layer=GOLD,
    schema=pa.schema(
        [
            col("alert_id", pa.string(), "text", "classifier:option_symbol:ts_ns of the first evidence print"),
            col("ts_ns", pa.int64(), "ns since epoch, UTC", "when the alert is known: its last evidence print"),
            col("start_ts_ns", pa.int64(), "ns since epoch, UTC", "its first evidence print"),
        ]
        + _option_identity()
        + [
            col("classifier", pa.string(), "sweep|block|repeated_hits|spike|zero_dte_burst|vertical|straddle|strangle|multi_leg",
                "the classifier that fired (ClassifierSettings)"),
            col("side", pa.string(), "buy|sell|mixed|unknown", "aggressor side of the evidence"),
            col("confidence", pa.float64(), "0-1", "mean of the classifier's factors (see reasons)"),
            col("reasons", pa.list_(pa.string()), "text", "why it fired and what set the confidence, one line each"),
            col("evidence_trade_ids", pa.list_(pa.string()), "trade ids",
                "the prints behind it: trade_id, or option_symbol@ts_ns:sequence when the vendor gives none"),
            col("evidence_count", pa.int64(), "count", "number of evidence prints"),
            col("legs", pa.list_(pa.string()), "OCC symbols", "contracts involved (one, or the legs of a structure)"),
            col("premium", pa.float64(), "dollars", "premium of the evidence prints"),
            col("size", pa.int64(), "contracts", "contracts of the evidence prints"),
            col("premium_z", pa.float64(), "standard deviations", "spike: premium z-score against the baseline", nullable=True),
            col("size_z", pa.float64(), "standard deviations", "spike: size z-score against the baseline", nullable=True),
            col("baseline_n", pa.int64(), "count", "spike: prints in the baseline", nullable=True),
            col("baseline_premium_mean", pa.float64(), "dollars", "spike: mean premium of the baseline prints", nullable=True),
            col("baseline_size_mean", pa.float64(), "contracts", "spike: mean size of the baseline prints", nullable=True),
            col("baseline_first_ts_ns", pa.int64(), "ns since epoch, UTC", "spike: first baseline print", nullable=True),
            col("baseline_last_ts_ns", pa.int64(), "ns since epoch, UTC", "spike: last baseline print (before the alert's)", nullable=True),
            col("presets", pa.list_(pa.string()), "preset names", "signal-filtering presets the alert passes (seed 004)"),
        ]
    ),
    sort_key=("ts_ns", "classifier", "alert_id"),
    instrument=None,
    dedup_key=("alert_id",),
    description="one row per classifier hit (sweep, block, repeated hits, spike, 0DTE burst, multi-leg) with confidence, "
    "reasons, presets passed and evidence trade ids that resolve to the prints (seed 004)",
)

GAMMA_EXPOSURE = TableSchema(
    name="gamma_exposure",
    layer=GOLD,
    schema=pa.schema(
        [
            col("ts_ns", pa.int64(), "ns since epoch, UTC",
                "as-of instant: customer_flow uses prints strictly before it; open_interest the snapshots at or before it"),
            col("underlying", pa.string(), "ticker", "the partition's underlying"),
            col("source", pa.string(), "customer_flow|open_interest", "what the dealer position comes from"),
            col("grain", pa.string(), "strike|total", "one strike (calls and puts, all expirations) or the whole chain"),
            col("strike", pa.float64(), "dollars", "strike (strike grain)", nullable=True),
            col("underlying_price", pa.float64(), "dollars",
                "reference price: the front expiration's latest underlying price (forward for Black-76 roots) "
                "known at ts_ns; null before any", nullable=True),
            col("call_gamma", pa.float64(), "shares per $1", "dealer gamma of the calls: sum of position x gamma x multiplier"),
            col("put_gamma", pa.float64(), "shares per $1", "dealer gamma of the puts"),
            col("net_gamma", pa.float64(), "shares per $1", "call_gamma + put_gamma: dealer delta change per $1 up-move"),
            col("call_gex", pa.float64(), "dollars per 1% move", "dealer gamma exposure of the calls: position x gamma x multiplier x S^2 x 0.01"),
            col("put_gex", pa.float64(), "dollars per 1% move", "dealer gamma exposure of the puts"),
            col("net_gex", pa.float64(), "dollars per 1% move", "call_gex + put_gex"),
            col("dealer_position", pa.int64(), "contracts",
                "dealer's net contracts (customer_flow: minus the signed customer contracts; open_interest: +/- open interest)"),
            col("call_wall", pa.float64(), "dollars", "strike with the largest |call_gex| (total grain)", nullable=True),
            col("put_wall", pa.float64(), "dollars", "strike with the largest |put_gex| (total grain)", nullable=True),
            col("gamma_flip", pa.float64(), "dollars",
                "underlying price nearest the reference where the re-priced total gamma changes sign (total grain)", nullable=True),
        ]
    ),
    sort_key=("source", "grain", "ts_ns", "strike"),
    instrument=None,
    dedup_key=("source", "grain", "ts_ns", "strike"),
    description="dealer gamma exposure per strike and in total over the day, from customer flow (dealer takes the "
    "aggressor's other side) and from open interest, with call wall, put wall and gamma flip, without look-ahead",
)

OFF_EXCHANGE_PRINTS = TableSchema(
    name="off_exchange_prints",
    layer=GOLD,
    schema=pa.schema(
        _event_time()
        + [
            col("symbol", pa.string(), "ticker", "stock or ETF symbol"),
            col("underlying", pa.string(), "ticker", "the partition's underlying"),
            col("price", pa.float64(), "dollars", "trade price"),
            col("size", pa.int64(), "shares", "trade size"),
            col("exchange", pa.string(), "vendor code", "reporting exchange / facility, in the source's code space", nullable=True),
            col("trade_id", pa.string(), "text", "vendor trade id", nullable=True),
            col("evidence_id", pa.string(), "text", "trade_id, or symbol@ts_ns:sequence when the vendor gives none"),
            col("canceled", pa.bool_(), "flag", "the vendor marks this print canceled"),
            col("off_exchange", pa.bool_(), "flag", "reported to a TRF / the ADF (OffExchangeSettings.off_exchange_codes)"),
            col("bid", pa.float64(), "dollars", "prevailing best bid", nullable=True),
            col("ask", pa.float64(), "dollars", "prevailing best ask", nullable=True),
            col("quote_age_ns", pa.int64(), "ns", "trade time minus quote time", nullable=True),
            col("side", pa.string(), "buy|sell|unknown", "aggressor side by the platform's rule"),
            col("placement", pa.string(), "AA|A|MID|B|BB", "trade price against the quote", nullable=True),
            _source(),
        ]
    ),
    sort_key=STOCK_TRADES.sort_key,
    instrument="symbol",
    dedup_key=STOCK_TRADES.dedup_key,
    description="every stock print with its off-exchange flag (trade reporting facility / ADF in the source's code space)",
)

OFF_EXCHANGE_EVENTS = TableSchema(
    name="off_exchange_events",
    layer=GOLD,
    schema=pa.schema(
        [
            col("event_id", pa.string(), "text", "kind:symbol:ts_ns of the first evidence print"),
            col("ts_ns", pa.int64(), "ns since epoch, UTC", "first evidence print"),
            col("known_ts_ns", pa.int64(), "ns since epoch, UTC", "when the inference is complete (no look-ahead past it)"),
            col("symbol", pa.string(), "ticker", "stock or ETF symbol"),
            col("underlying", pa.string(), "ticker", "the partition's underlying"),
            col("kind", pa.string(), "absorbed_block|stealth_accumulation|stealth_distribution", "inferred event (seed 004)"),
            col("side", pa.string(), "buy|sell|unknown", "aggressor side of the evidence"),
            col("size", pa.int64(), "shares", "shares of the evidence prints"),
            col("notional", pa.float64(), "dollars", "sum of price x size of the evidence prints"),
            col("prints", pa.int64(), "count", "evidence prints"),
            col("vwap", pa.float64(), "dollars", "size-weighted average price of the evidence"),
            col("bid", pa.float64(), "dollars", "best bid at the first evidence print", nullable=True),
            col("ask", pa.float64(), "dollars", "best ask at the first evidence print", nullable=True),
            col("mid_after", pa.float64(), "dollars", "absorbed block: NBBO mid window_ms after the print", nullable=True),
            col("confidence", pa.float64(), "0-1", "mean of the inference's factors (see reasons)"),
            col("reasons", pa.list_(pa.string()), "text", "why it was inferred, one line each"),
            col("evidence_trade_ids", pa.list_(pa.string()), "trade ids",
                "the off-exchange prints (evidence_id of off_exchange_prints), at most OffExchangeSettings.max_evidence"),
            col("evidence_count", pa.int64(), "count", "evidence prints in all (may exceed the ids stored)"),
        ]
    ),
    sort_key=("symbol", "ts_ns", "kind"),
    instrument="symbol",
    dedup_key=("event_id",),
    description="inferred off-exchange events (absorbed block, stealth accumulation / distribution) with cooldown "
    "and evidence (seed 004)",
)

BARS = TableSchema(
    name="bars",
    layer=GOLD,
    schema=pa.schema(
        [
            col("kind", pa.string(), "stock|futures|futures_underlying_scale|option",
                "instrument kind; futures_underlying_scale: futures prices divided by the proxy ratio (ES / 10 = SPY)"),
            col("symbol", pa.string(), "ticker or OCC symbol", "instrument"),
            col("underlying", pa.string(), "ticker", "the partition's underlying"),
            col("bar_start_ns", pa.int64(), "ns since epoch, UTC", "bar start (inclusive), a multiple of the bar length"),
            col("bar_end_ns", pa.int64(), "ns since epoch, UTC", "bar end (exclusive)"),
            col("open", pa.float64(), "dollars", "first print's price"),
            col("high", pa.float64(), "dollars", "highest price"),
            col("low", pa.float64(), "dollars", "lowest price"),
            col("close", pa.float64(), "dollars", "last print's price"),
            col("volume", pa.int64(), "shares or contracts", "size traded (shares for stock, contracts otherwise)"),
            col("vwap", pa.float64(), "dollars", "volume-weighted average price, sum(price x size) / sum(size)"),
            col("trades", pa.int64(), "count", "prints in the bar (canceled prints excluded)"),
            col("price_ratio", pa.float64(), "ratio", "divisor applied to the prices (1, or the futures proxy ratio)"),
        ]
    ),
    sort_key=("kind", "symbol", "bar_start_ns"),
    instrument="symbol",
    dedup_key=("kind", "symbol", "bar_start_ns"),
    description="1-minute OHLCV and VWAP bars of the underlying, its futures proxy (also on the underlying's scale) "
    "and every option contract",
)

FLOW_TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (FLOW_WINDOWS, FLOW_PACKETS, FLOW_ALERTS, GAMMA_EXPOSURE, OFF_EXCHANGE_PRINTS, OFF_EXCHANGE_EVENTS, BARS)
}

# the level physics tables are declared beside their domain code (m17_platform/levels/schemas.py,
# which needs col and TableSchema from above)
from m17_platform.levels.schemas import LEVEL_TABLES  # noqa: E402

GOLD_TABLES: dict[str, TableSchema] = {**FLOW_TABLES, **LEVEL_TABLES}

ALL_TABLES: dict[str, TableSchema] = {**RAW_TABLES, **ENRICHED_TABLES, **GOLD_TABLES}


def table(name: str) -> TableSchema:
    """Look up a table by name; ``KeyError`` names the known tables."""
    try:
        return ALL_TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known tables: {sorted(ALL_TABLES)}") from None


def empty_frame(spec: TableSchema):
    """A zero-row polars DataFrame with the table's columns and dtypes."""
    import polars as pl

    return pl.from_arrow(spec.schema.empty_table())


def conform(frame, spec: TableSchema, *, origin: str = "<frame>"):
    """Cast a polars DataFrame to the table's schema, in the schema's column order.

    Parameters
    ----------
    frame : polars.DataFrame
        Rows for ``spec``; extra columns are an error (nothing is silently dropped).
    spec : TableSchema
        Target table.
    origin : str
        Where the rows came from (file path), used in error messages.

    Returns
    -------
    pyarrow.Table
        With exactly ``spec.schema`` (including the unit metadata).

    Raises
    ------
    SchemaError
        Naming the table, the origin and the offending column: missing or unexpected
        columns, a value that cannot be cast, or nulls in a non-nullable column.
    """
    import polars as pl
    import pyarrow.compute as pc

    from m17_platform.errors import SchemaError

    missing = [c for c in spec.columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in spec.columns]
    if missing or extra:
        raise SchemaError(spec.name, origin, f"missing columns {missing}, unexpected columns {extra}")
    frame = frame.select(spec.columns)
    arrays = []
    for fld in spec.schema:
        series = frame.get_column(fld.name)
        try:
            arr = series.to_arrow()
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            if arr.type != fld.type:
                if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
                    arr = arr.cast(pa.string())
                if pa.types.is_large_list(arr.type) or pa.types.is_list_view(arr.type):
                    arr = pl.Series(series).cast(pl.List(pl.String)).to_arrow()
                    arr = arr.cast(fld.type)
                arr = arr.cast(fld.type, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pl.exceptions.PolarsError) as exc:
            raise SchemaError(spec.name, origin, f"column {fld.name!r} cannot be cast to {fld.type}: {exc}") from exc
        if not fld.nullable and arr.null_count:
            first = pc.index(pc.is_null(arr), True).as_py()
            raise SchemaError(
                spec.name, origin, f"column {fld.name!r} is required but has {arr.null_count} nulls (first at row {first})"
            )
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def data_dictionary_markdown() -> str:
    """The data dictionary (``docs/data_dictionary.md``) rendered from the schemas above."""
    lines = [
        "# Data dictionary",
        "",
        "Generated from `m17_platform/schemas.py` by `m17 docs` (a test keeps it in sync).",
        "Lake path of a table: `<lake root>/<layer>/<table>/trade_date=YYYY-MM-DD/underlying=XYZ/`.",
        "",
    ]
    for spec in ALL_TABLES.values():
        lines += table_markdown(spec)
    return "\n".join(lines)
