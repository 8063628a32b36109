"""Settings: one frozen object per concern, every threshold and window with its unit.

Engines take these objects as arguments; no threshold is repeated as a literal
elsewhere. Dagster resources expose the same fields as run config, and build these
objects from it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LakeSettings:
    """Where the lake lives.

    root : local path (default ``data/lake`` under the project). Object-store roots
        (``s3://``) are planned, see docs/operations.md.
    reports_root : where HTML reports are written.
    """

    root: Path = PROJECT_ROOT / "data" / "lake"
    reports_root: Path = PROJECT_ROOT / "data" / "reports"


@dataclass(frozen=True)
class SessionSettings:
    """Trading sessions: which exchange calendar bounds which table.

    equity_calendar : exchange_calendars name for stocks and equity options (XNYS).
    futures_calendar : exchange_calendars name for CME futures (CMES); its evening
        session belongs to the next trade date.
    first_day : first trade date the platform has partitions for.
    late_close_roots : option roots that trade past the equity close, until 16:15 ET:
        cash-settled index options (SPX, SPXW, VIX, VIXW, XSP, NDX, RUT) and the broad
        ETFs whose options trade the same extra quarter hour (SPY, QQQ, IWM).
    late_close_minutes : minutes past the equity close those roots trade (15 min).
    stock_extended_open : start of the extended (pre-market) stock session, ET wall clock.
    stock_extended_after_close_minutes : minutes the post-market runs after the close (240 min: 16:00 to 20:00).
    futures_preopen_minutes : minutes before the CME open that order-entry events are
        expected (Globex pre-open: 60 min).
    year_days : days in the year used for time to expiry (365, calendar days).
    """

    equity_calendar: str = "XNYS"
    futures_calendar: str = "CMES"
    first_day: dt.date = dt.date(2010, 1, 4)
    late_close_roots: tuple[str, ...] = (
        "SPX", "SPXW", "VIX", "VIXW", "XSP", "NDX", "NDXP", "RUT", "RUTW", "SPY", "QQQ", "IWM",
    )
    late_close_minutes: int = 15
    stock_extended_open: dt.time = dt.time(4, 0)
    stock_extended_after_close_minutes: int = 240
    futures_preopen_minutes: int = 60
    year_days: float = 365.0
    timezone: str = "America/New_York"


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of the raw-table quality checks (Great Expectations suites).

    Rates are fractions of the table's rows (0.01 = 1%).

    max_null_rate : share of nulls tolerated in a nullable price column before the
        ``nulls`` check fails (required columns tolerate none).
    min_bid_le_ask_rate : share of two-sided quotes that must have bid <= ask; crossed
        quotes beyond that fail the ``bid_le_ask`` check.
    min_in_session_rate : share of rows whose ``ts_ns`` must lie in the table's session window.
    max_duplicate_rate : share of rows that may repeat another row's dedup key.
    min_nbbo_coverage : share of trades that must find a usable prevailing quote
        (``nbbo_flag`` ok, stale, locked or zero_bid) in the enriched tables.
    min_aggressor_accuracy : share of trades with a vendor aggressor whose side the
        default rule must match (0.81 = Lee-Ready on Nasdaq data, Ellis, Michaely and
        O'Hara 2000, the published baseline).
    max_vendor_delta_median : largest median |delta - vendor delta| tolerated where a
        vendor publishes greeks (per $1 underlying).
    max_reprice_error : largest |model price at our IV - input price| / input price for
        rows whose IV status is OK (dimensionless).
    batch_rows : rows per Great Expectations batch: a larger partition is validated
        batch by batch (never splitting an instrument) and the counts merged, so the
        checks of a day larger than memory stay bounded (rows).
    """

    max_null_rate: float = 0.05
    min_bid_le_ask_rate: float = 0.999
    min_in_session_rate: float = 0.999
    max_duplicate_rate: float = 0.001
    min_nbbo_coverage: float = 0.95
    min_aggressor_accuracy: float = 0.81
    max_vendor_delta_median: float = 0.02
    max_reprice_error: float = 1e-8
    batch_rows: int = 2_000_000


@dataclass(frozen=True)
class RatesSettings:
    """The configured constant rate used when no Treasury curve is given.

    risk_free_rate : annualised, continuously compounded, decimal (0.045 = 4.5%).
    dividend_yield : per-underlying annualised continuous yield, decimal; missing = 0.
    tenor_days : tenor written for the constant (calendar days).
    parity_min_pairs : call/put pairs of one expiry and snapshot needed to estimate a
        put-call-parity implied rate (count).
    parity_min_years : shortest time to expiry used for it (years; 0.02 = about 7 days,
        shorter expiries make e^{-rT} indistinguishable from 1).
    parity_min_groups : (expiry, snapshot) estimates needed before their median is used.
    parity_max_abs_rate : an implied rate beyond +/- this (decimal, 0.25 = 25%) is
        rejected as a failed estimate, not used.
    """

    risk_free_rate: float = 0.045
    dividend_yield: dict[str, float] = field(default_factory=lambda: {"SPY": 0.013})
    tenor_days: int = 30
    parity_min_pairs: int = 5
    parity_min_years: float = 0.02
    parity_min_groups: int = 10
    parity_max_abs_rate: float = 0.25


@dataclass(frozen=True)
class UniverseSettings:
    """Which underlyings the platform knows, and which futures serve which underlying.

    underlyings : the underlying partitions registered by default (more can be added
        as Dagster dynamic partitions, from the UI or ``m17 underlyings add``).
    futures_proxies : futures root -> underlying it is a liquidity proxy for
        (ES serves SPY: ES price = SPY price x 10).
    futures_price_ratio : futures root -> futures price / underlying price.
    european_roots : option roots with European exercise (cash-settled index options);
        every other root is American.
    default_multiplier : shares per contract when the source does not say (100).
    forward_roots : option roots priced off a forward with Black-76, not off spot
        (VIX options price off the VIX future / Cboe's implied forward, not the index).
    """

    underlyings: tuple[str, ...] = ("SPY", "VIX", "A", "AMZN")
    futures_proxies: dict[str, str] = field(default_factory=lambda: {"ES": "SPY"})
    futures_price_ratio: dict[str, float] = field(default_factory=lambda: {"ES": 10.0})
    european_roots: tuple[str, ...] = ("SPX", "SPXW", "VIX", "VIXW", "XSP", "NDX", "NDXP", "RUT", "RUTW")
    default_multiplier: int = 100
    forward_roots: tuple[str, ...] = ("VIX", "VIXW")


@dataclass(frozen=True)
class ReportSettings:
    """Daily report rendering.

    bucket_minutes : width of the time buckets in the intraday plots (minutes).
    dpi : resolution of the embedded PNG plots.
    max_full_rows : a table with more rows than this is read with only the columns the
        plots need (rows).
    """

    bucket_minutes: int = 5
    max_full_rows: int = 2_000_000
    dpi: int = 90


@dataclass(frozen=True)
class NbboSettings:
    """Settings of the trade-to-quote as-of join.

    Attributes
    ----------
    lag_ns : int
        Nanoseconds subtracted from the trade time before matching (default 0). Lee &
        Ready (1991) used 5 s for 1980s TAQ reporting delays; modern feeds need 0.
    max_quote_age_ns : int
        A matched quote older than this (``trade.ts_ns - quote.ts_ns``, ns) is flagged
        ``stale`` (default 1 s = 1_000_000_000 ns).
    post_event_quote_sources : glob patterns (fnmatch) of quote ``source`` values whose
        rows are the book *after* an event that shares the trade's (ts_ns, sequence)
        (books rebuilt from LOBSTER messages or Databento MBO, Databento MBP-1/10).
        Trades join those quotes strictly before (ts_ns, sequence).
    at_trade_quote_sources : glob patterns of quote ``source`` values whose rows carry
        the trades' own sequence numbers and are in force at the trade (Cboe's NBBO at
        each print; Databento tbbo / tcbbo, the quote just before each trade): trades
        join them at or before (ts_ns, sequence). They win over the post-event
        patterns. Other quotes join at or before ts_ns.
    """

    lag_ns: int = 0
    max_quote_age_ns: int = 1_000_000_000
    post_event_quote_sources: tuple[str, ...] = ("lobster.*", "databento.*")
    at_trade_quote_sources: tuple[str, ...] = ("cboe_datashop.option_trades*", "databento.*.tbbo", "databento.*.tcbbo")


@dataclass(frozen=True)
class AggressorSettings:
    """Thresholds of the classification rules.

    Attributes
    ----------
    clnv_zone : float
        Fraction of the spread (dimensionless, 0-0.5) next to each quote that the CLNV
        rule classifies by the quote (default 0.3 = 30 %, Chakrabarty et al. 2007).
    price_tolerance : float
        Dollars: two prices closer than this are equal (at the ask, at the mid, zero
        tick). Default 1e-9 (exact for prices parsed from decimal strings).
    size_tolerance : float
        Shares / contracts: sizes closer than this are equal (trade-size rule, depth
        rule). Default 0 (sizes are integers).
    tick_confidence : float
        ``side_confidence`` of tick- and reverse-tick-decided rows (0-1, default 0.6).
    depth_confidence : float
        ``side_confidence`` of depth-rule-decided rows (0-1, default 0.55).
    trade_size_confidence : float
        ``side_confidence`` of trade-size-rule-decided rows (0-1, default 0.7).
    unusable_flags : tuple of str
        ``nbbo_flag`` values whose quote is not used (the row falls back to ticks).
    default_rule : str
        The rule the enriched tables use: the best rule of ``m17 eval aggressor`` on the
        samples with ground truth (CLNV 97.24% vs Lee-Ready 97.23% on LOBSTER AMZN; both
        100% on CME ESH4, where the book before each print decides it).
    """

    clnv_zone: float = 0.3
    price_tolerance: float = 1e-9
    size_tolerance: float = 0.0
    tick_confidence: float = 0.6
    depth_confidence: float = 0.55
    trade_size_confidence: float = 0.7
    unusable_flags: tuple[str, ...] = ("no_quote", "one_sided", "crossed")
    default_rule: str = "clnv"


@dataclass(frozen=True)
class GreeksSettings:
    """Implied-volatility solver and greek conventions.

    iv_tolerance : float
        Stop when a Newton step changes the annualised vol by less than this (vol units,
        decimal, 1e-13 = 1e-11 vol points).
    max_iterations : int
        Cap on solver iterations per option (Newton + bisection steps).
    min_vol, max_vol : float
        Search bracket for sigma (annualised, decimal: 1e-4 = 0.01 %, 20.0 = 2000 %).
        A time value below the price at ``min_vol`` is ``BELOW_MIN_VOL``, above the price
        at ``max_vol`` is ``ABOVE_MAX_VOL``.
    min_time_value : float
        Dollars per share. A price whose time value (price minus the discounted
        forward intrinsic value) is at or below this is ``NO_TIME_VALUE`` (the IV is not
        determined by the quote).
    intrinsic_tolerance : float
        Dollars per share. A price up to this far below the intrinsic bound counts as at
        intrinsic (``NO_TIME_VALUE``, absorbing float noise); further below is
        ``BELOW_INTRINSIC``.
    reprice_rtol : float
        Relative tolerance (dimensionless) on the repriced out-of-the-money time value
        that an ``OK`` IV must meet; otherwise the status is ``NOT_CONVERGED``.
    theta_days_per_year : float
        Calendar days per year used to express theta per calendar day (365; keep equal
        to ``SessionSettings.year_days``).
    underlying_price_source : which underlying price feeds spot-priced greeks: ``mid``,
        ``trade`` (last underlying print), ``bid`` or ``ask``; recorded per row.
    forward_window_minutes : window (minutes) over which a put-call-parity forward is
        estimated for forward-priced roots when the source gives none.
    """

    iv_tolerance: float = 1e-13
    max_iterations: int = 100
    min_vol: float = 1e-4
    max_vol: float = 20.0
    min_time_value: float = 1e-6
    intrinsic_tolerance: float = 1e-9
    reprice_rtol: float = 1e-9
    theta_days_per_year: float = 365.0
    underlying_price_source: str = "mid"
    forward_window_minutes: int = 30


# --- sources (issue: real sources). Each source module owns its class below; edit only yours.


@dataclass(frozen=True)
class IngestSettings:
    """How a raw partition is streamed into the lake.

    chunk_rows : rows per chunk a streaming source yields and the lake spills, and per
        batch of the enrichments that stream a large partition (rows).
    sort_memory_limit : DuckDB memory limit for the out-of-core sort of a spilled
        partition (DuckDB size string, e.g. ``"2GB"``).
    sort_threads : DuckDB threads for that sort.
    target_file_rows : rows per Parquet file of a partition (rows); files are cut at
        this count whatever the chunking, so the same rows give the same files.
    row_group_rows : rows per Parquet row group (rows), cut the same way.
    """

    chunk_rows: int = 2_000_000
    sort_memory_limit: str = "2GB"
    sort_threads: int = 2
    target_file_rows: int = 5_000_000
    row_group_rows: int = 1_000_000


@dataclass(frozen=True)
class PolygonSettings:
    """Polygon / Massive REST and flat files (owned by ``sources/polygon.py``).

    rest_base_url : REST API base (``M17_REST_BASE_URL`` overrides it).
    flatfiles_endpoint : S3-compatible flat-file endpoint (``M17_FLATFILES_ENDPOINT`` overrides).
    flatfiles_bucket : flat-file bucket.
    page_limit : rows per REST page of v3 trades and quotes (rows; the endpoints' maximum is 50,000).
    max_retries : retries of a 429 / 5xx response (or a dropped connection) before giving up (count).
    backoff_seconds : first retry delay (s), doubled per retry (0.5, 1, 2, 4, ... s); a larger
        ``Retry-After`` header from the server wins.
    timeout_seconds : HTTP connect and read timeout (s).
    contracts_page_limit : rows per page of ``/v3/reference/options/contracts`` (rows; maximum 1,000).
    snapshot_page_limit : rows per page of the option chain snapshot (rows; maximum 250).
    reference_page_limit : rows per page of ``/v3/reference/conditions`` (rows; maximum 1,000).
    max_days_to_expiry : REST option tables cover contracts expiring from the trade date to this
        many calendar days after it (calendar days; 0 = 0DTE only).
    strike_window : REST option tables cover strikes within this fraction of the underlying's
        unadjusted daily-bar open on the trade date (dimensionless; 0.05 = open x [0.95, 1.05]).
        The defaults select SPY's 0DTE and next-day contracts within 5% (about 250 contracts,
        two requests each plus paging).
    max_contracts : most contracts a REST partition may request trades and quotes for (count);
        a selection above it is an error (narrow ``strike_window`` or ``max_days_to_expiry``),
        never silently truncated.
    option_roots : underlying -> option roots of its contracts besides the underlying's own
        name (trading classes such as SPXW for SPX); the flat-file filter keeps ``O:<root>``
        tickers of these roots.
    index_underlyings : underlyings that are indices: their daily bar is read as ``I:<ticker>``
        and they have no stock trades or quotes.
    stock_quote_sizes_in_shares_from : first trade date whose stock quote sizes Polygon publishes
        in shares; earlier sizes are round lots (date; Polygon blog "Upcoming Changes to Bid
        and Ask Sizes in Stocks Quotes", 2025-10-27, effective 2025-11-03).
    round_lot_shares : shares per round lot before that date (shares; 100 for US equities).
    flatfiles_block_bytes : bytes of decompressed CSV parsed per batch when streaming a flat
        file (bytes); memory per batch is a small multiple of it.
    """

    rest_base_url: str = "https://api.massive.com"
    flatfiles_endpoint: str = "https://files.massive.com"
    flatfiles_bucket: str = "flatfiles"
    page_limit: int = 50_000
    max_retries: int = 5
    backoff_seconds: float = 0.5
    timeout_seconds: float = 30.0
    contracts_page_limit: int = 1_000
    snapshot_page_limit: int = 250
    reference_page_limit: int = 1_000
    max_days_to_expiry: int = 1
    strike_window: float = 0.05
    max_contracts: int = 1_000
    option_roots: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "SPX": ("SPXW",), "VIX": ("VIXW",), "NDX": ("NDXP",), "RUT": ("RUTW",),
        }
    )
    index_underlyings: tuple[str, ...] = ("SPX", "VIX", "NDX", "RUT", "XSP", "DJX")
    stock_quote_sizes_in_shares_from: dt.date = dt.date(2025, 11, 3)
    round_lot_shares: int = 100
    flatfiles_block_bytes: int = 4 << 20


@dataclass(frozen=True)
class DatabentoSettings:
    """Databento DBN files and the Historical client (owned by ``sources/databento.py``).

    futures_dataset / options_dataset / equities_dataset : dataset codes the Historical
        source requests per asset class.
    gateway : Historical API gateway URL (``M17_DATABENTO_GATEWAY`` overrides it).
    dataset_asset_classes : dataset code -> ``futures`` / ``options`` / ``equities``: how
        the rows of a file of that dataset are read (which raw tables they fill).
    option_root_underlyings : option root -> underlying, for contracts whose definition
        does not name the underlying (SPXW options serve SPX); other roots are their own
        underlying.
    table_schemas : raw table -> the schema the Historical source requests for it
        (``cbbo-1s``: OPRA's consolidated BBO sampled each second, the NBBO without the
        volume of ``cmbp-1``; ``mbp-10`` for the futures book).
    option_parents : underlying -> OPRA parent symbols requested for its options (default
        ``<UNDERLYING>.OPT``; SPX also lists SPXW).
    futures_symbols : underlying -> (symbols, stype_in) of the futures requested as its
        proxy (``ES.v.0``: the ES contract with the most volume, continuous symbology).
    """

    futures_dataset: str = "GLBX.MDP3"
    options_dataset: str = "OPRA.PILLAR"
    equities_dataset: str = "XNAS.ITCH"
    gateway: str = "https://hist.databento.com"
    dataset_asset_classes: dict[str, str] = field(
        default_factory=lambda: {
            "GLBX.MDP3": "futures",
            "IFEU.IMPACT": "futures",
            "IFUS.IMPACT": "futures",
            "IFLL.IMPACT": "futures",
            "NDEX.IMPACT": "futures",
            "XEUR.EOBI": "futures",
            "XEEE.EOBI": "futures",
            "OPRA.PILLAR": "options",
            "XNAS.ITCH": "equities",
            "XBOS.ITCH": "equities",
            "XPSX.ITCH": "equities",
            "XNAS.BASIC": "equities",
            "XNAS.QBBO": "equities",
            "XNAS.NLS": "equities",
            "XNYS.PILLAR": "equities",
            "XNYS.BBO": "equities",
            "XNYS.TRADES": "equities",
            "XCHI.PILLAR": "equities",
            "XCIS.TRADESBBO": "equities",
            "XASE.PILLAR": "equities",
            "ARCX.PILLAR": "equities",
            "BATS.PITCH": "equities",
            "BATY.PITCH": "equities",
            "EDGA.PITCH": "equities",
            "EDGX.PITCH": "equities",
            "IEXG.TOPS": "equities",
            "MEMX.MEMOIR": "equities",
            "EPRL.DOM": "equities",
            "DBEQ.BASIC": "equities",
            "EQUS.MINI": "equities",
            "EQUS.SUMMARY": "equities",
            "EQUS.PLUS": "equities",
            "EQUS.ALL": "equities",
        }
    )
    option_root_underlyings: dict[str, str] = field(
        default_factory=lambda: {"SPXW": "SPX", "VIXW": "VIX", "NDXP": "NDX", "RUTW": "RUT", "XSPW": "XSP"}
    )
    table_schemas: dict[str, str] = field(
        default_factory=lambda: {
            "option_trades": "trades",
            "option_quotes": "cbbo-1s",
            "option_contracts": "definition",
            "stock_trades": "trades",
            "stock_quotes": "mbp-1",
            "futures_trades": "trades",
            "futures_mbp10": "mbp-10",
        }
    )
    option_parents: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"SPX": ("SPX.OPT", "SPXW.OPT")})
    futures_symbols: dict[str, tuple[tuple[str, ...], str]] = field(
        default_factory=lambda: {"SPY": (("ES.v.0",), "continuous")}
    )


@dataclass(frozen=True)
class SyntheticSettings:
    """The seeded synthetic session (owned by ``sources/synthetic``): one regular session
    of an underlying (SPY by default), its quotes and trades, its futures proxy (ES) book
    and trades, and a 0DTE + weekly option chain priced off an SSVI volatility surface.

    Every count is exact: the source emits exactly this many rows per table and day.

    Identity and sizes
    ------------------
    seed : random seed; the same seed, date and underlying give the same rows, bit for bit.
    demo_day : the trade date ``m17 demo`` simulates (an XNYS session).
    demo_scale : row counts of the demo's synthetic day relative to the full day (0.02:
        400,000 option quotes and 10,000 prints; ``m17 ingest --source synthetic`` makes
        the full day).
    option_quotes : option NBBO updates in the day, all contracts (count).
    option_trades : option prints in the day, all contracts (count).
    stock_quotes : underlying NBBO updates in the day (count).
    stock_trades : underlying prints in the day (count).
    futures_mbp10 : futures MBP-10 book events in the day (count); must cover one row per
        fair-price move of the underlying, two per futures trade (the print and its fill)
        and the opening book; 0 leaves both futures tables empty.
    futures_trades : futures prints in the day (count).
    source_prefix : ``source`` column prefix (``synthetic`` -> ``synthetic.option_quotes``).

    Underlying price path
    ---------------------
    start_price : underlying -> reference open price (dollars). Only underlyings listed
        here can be simulated.
    open_price_jitter : standard deviation of the log of the open around ``start_price``,
        drawn once per trade date (decimal; 0.005 = 0.5 %).
    annual_vol : volatility of the efficient price (annualised over
        ``trading_days_per_year`` sessions, decimal per sqrt(year)).
    trading_days_per_year : sessions per year; one session carries variance
        ``annual_vol**2 / trading_days_per_year`` spread evenly over its hours (sessions).
    jumps_per_session : mean number of price jumps per session (Poisson; count).
    jump_std : standard deviation of a jump's log size (decimal; 0.001 = 10 bp).
    intraday_u_shape : intraday activity profile ``1 + u (2x - 1)^2`` over the session
        fraction ``x``: open and close are ``1 + u`` times as busy as midday (dimensionless).
    buy_share : share of buyer-initiated prints in every trade table (0-1).

    Underlying quotes and trades
    ----------------------------
    stock_tick : price grid of the underlying's quotes (dollars).
    stock_spread_tick_probs : probability of a spread of 1, 2, 3, ... ticks (sums to 1).
    stock_quote_min_gap_ns : smallest gap between two underlying quotes (ns).
    stock_lot_size : shares per round lot (shares).
    stock_quote_size_mean_lots : mean displayed size at the bid / ask (round lots).
    stock_exchanges : exchange codes of the underlying's quotes and prints (synthetic
        code space: tape participant letters).
    stock_trade_mid_share : share of prints at the midpoint (may be a half tick; 0-1).
    stock_trade_improve_share : share of prints one tick inside the spread when the spread
        is at least two ticks (0-1); the rest print at the bid (sells) or the ask (buys).
    stock_odd_lot_share : share of prints of fewer than ``stock_lot_size`` shares (0-1).
    stock_trade_size_alpha : Pareto tail index of round-lot print sizes (dimensionless).
    stock_trade_max_lots : largest round-lot print (round lots).
    stock_condition_regular / stock_condition_odd_lot : condition codes of round- and
        odd-lot prints (synthetic code space).

    Futures proxy (ES)
    ------------------
    futures_tick : futures price grid (dollars; 0.25 for ES).
    futures_instrument_id : vendor instrument id written for the synthetic contract.
    futures_exchange : ``exchange`` of futures prints (Databento venue code).
    futures_roll_days : calendar days before a quarterly contract's expiry (third Friday)
        at which the front contract rolls to the next quarter (days).
    futures_contract_months : listed contract months (1-12; ES: the March quarterly cycle).
    futures_level_size_mean : mean resting size at the best level (contracts).
    futures_level_size_growth : relative growth of the mean size per level deeper
        (level k has mean ``futures_level_size_mean (1 + growth k)``; dimensionless).
    futures_order_size_mean : mean resting order size, for the order counts (contracts).
    futures_noise_level_decay : book updates hit level k with probability proportional
        to ``exp(-decay k)`` (per level).
    futures_noise_add_share : share of book updates that add resting quantity; the rest
        cancel some (0-1). Bid and ask are hit alike.
    futures_trade_size_alpha : Pareto tail index of futures print sizes (dimensionless).
    futures_trade_max_size : largest futures print (contracts).
    futures_fill_latency_ns : delay of the book update a print causes after the print (ns).
    futures_recv_latency_ns : mean capture latency, ``ts_recv_ns - ts_ns`` (ns).

    Option chain
    ------------
    daily_expiration : whether the chain has a contract expiring on the trade date (0DTE).
    weekly_expirations : Friday expirations after the trade date in the chain (count); a
        holiday Friday expires on the session before it.
    strike_step : strike spacing (dollars).
    strikes_each_side : strikes on each side of the open rounded to ``strike_step`` (count).

    Volatility surface (SSVI, Gatheral & Jacquier 2014)
    ---------------------------------------------------
    atm_vol_short, atm_vol_long : ATM implied volatility at T = 0 and T -> infinity
        (annualised, decimal), joined by ``exp(-T / atm_vol_decay_years)``.
    atm_vol_decay_years : decay time of the ATM term structure (years).
    atm_vol_spot_elasticity : d ln(ATM vol) / d ln(spot / open) (dimensionless, < 0 for the
        equity skew dynamics).
    ssvi_rho : SSVI correlation parameter (-1 < rho < 1; < 0 for the equity skew).
    ssvi_eta, ssvi_gamma : SSVI power-law curvature ``phi(theta) = eta / (theta^gamma
        (1 + theta)^(1 - gamma))``; ``eta (1 + |rho|) <= 2`` and ``0 < gamma <= 1/2`` keep
        the surface free of butterfly arbitrage.

    Option quotes
    -------------
    option_tick_small, option_tick_large : quote grid below / at or above
        ``option_tick_break`` (dollars); the large tick must be a multiple of the small one.
    option_tick_break : price at which the grid changes (dollars).
    option_spread_min_ticks : narrowest bid-ask spread (ticks).
    option_spread_rel : spread as a share of the model price before rounding up to ticks
        (0.01 = 1 %).
    option_spread_extra_ticks_mean : mean extra ticks of spread per update (geometric noise).
    option_quote_size_mean : mean size at the bid / ask (contracts).
    option_quote_move_share : share of a contract's updates triggered by a move of the
        underlying's mid (the rest are noise updates at random instants; 0-1).
    option_quote_latency_ns : mean delay of a move-triggered update after the move (ns).
    option_quote_min_gap_ns : smallest gap between two updates of one contract (ns).
    min_quotes_per_contract : updates every contract gets before the activity split (count).
    expiry_activity : relative activity per expiration, nearest first (0DTE first); the
        last value repeats for further expirations (dimensionless).
    quote_activity_z_scale, quote_activity_floor : quote activity of a contract is
        ``expiry_activity (floor + exp(-|z| / z_scale))`` with ``z`` the open's standardised
        log-moneyness ``ln(K / S0) / (sigma_atm sqrt(T))`` (dimensionless).
    trade_activity_z_scale, trade_activity_floor : the same for the prints.
    option_exchanges : OPRA participant codes quotes and prints come from.
    option_exchange_weights : relative share of each code (same length).

    Option trades
    -------------
    option_trade_inside_share : share of single prints one tick inside the spread, on the
        aggressor's side (0-1).
    option_trade_mid_share : share of single prints at the mid, rounded to the grid toward
        the aggressor (0-1); the rest print at the ask (buys) or bid (sells).
    option_trade_size_alpha : Pareto tail index of print sizes (dimensionless).
    option_trade_max_size : largest ordinary print (contracts).
    sweep_share : share of orders that sweep several exchanges (0-1).
    sweep_extra_legs_mean : mean legs beyond two per sweep (geometric; count).
    sweep_max_legs : most legs (exchanges) in one sweep (count, <= exchanges).
    sweep_leg_spacing_ns : time between the legs of a sweep (ns).
    block_share : share of orders that are blocks (0-1).
    block_min_size : smallest block (contracts).
    block_size_alpha : Pareto tail index of block sizes (dimensionless).
    block_max_size : largest block (contracts).
    canceled_share : share of prints flagged canceled (0-1).
    option_condition_regular / option_condition_sweep / option_condition_block :
        condition codes of single, sweep (intermarket sweep order) and block prints.
    """

    seed: int = 17
    demo_day: dt.date = dt.date(2025, 11, 10)
    demo_scale: float = 0.02
    option_quotes: int = 20_000_000
    option_trades: int = 500_000
    stock_quotes: int = 1_500_000
    stock_trades: int = 200_000
    futures_mbp10: int = 500_000
    futures_trades: int = 100_000
    source_prefix: str = "synthetic"

    start_price: dict[str, float] = field(default_factory=lambda: {"SPY": 680.0})
    open_price_jitter: float = 0.005
    annual_vol: float = 0.15
    trading_days_per_year: float = 252.0
    jumps_per_session: float = 2.0
    jump_std: float = 0.001
    intraday_u_shape: float = 2.0
    buy_share: float = 0.5

    stock_tick: float = 0.01
    stock_spread_tick_probs: tuple[float, ...] = (0.85, 0.12, 0.03)
    stock_quote_min_gap_ns: int = 1_000
    stock_lot_size: int = 100
    stock_quote_size_mean_lots: float = 20.0
    stock_exchanges: tuple[str, ...] = ("P", "Q", "Z", "K", "N", "V")
    stock_trade_mid_share: float = 0.1
    stock_trade_improve_share: float = 0.05
    stock_odd_lot_share: float = 0.3
    stock_trade_size_alpha: float = 1.5
    stock_trade_max_lots: int = 500
    stock_condition_regular: str = "regular"
    stock_condition_odd_lot: str = "odd_lot"

    futures_tick: float = 0.25
    futures_instrument_id: int = 900_001
    futures_exchange: str = "GLBX"
    futures_roll_days: int = 8
    futures_contract_months: tuple[int, ...] = (3, 6, 9, 12)
    futures_level_size_mean: float = 25.0
    futures_level_size_growth: float = 0.15
    futures_order_size_mean: float = 4.0
    futures_noise_level_decay: float = 0.4
    futures_noise_add_share: float = 0.5
    futures_trade_size_alpha: float = 1.6
    futures_trade_max_size: int = 200
    futures_fill_latency_ns: int = 2_000
    futures_recv_latency_ns: int = 15_000

    daily_expiration: bool = True
    weekly_expirations: int = 2
    strike_step: float = 1.0
    strikes_each_side: int = 40

    atm_vol_short: float = 0.16
    atm_vol_long: float = 0.14
    atm_vol_decay_years: float = 0.02
    atm_vol_spot_elasticity: float = -4.0
    ssvi_rho: float = -0.6
    ssvi_eta: float = 1.0
    ssvi_gamma: float = 0.5

    option_tick_small: float = 0.01
    option_tick_large: float = 0.05
    option_tick_break: float = 3.0
    option_spread_min_ticks: int = 1
    option_spread_rel: float = 0.01
    option_spread_extra_ticks_mean: float = 0.3
    option_quote_size_mean: float = 40.0
    option_quote_move_share: float = 0.7
    option_quote_latency_ns: int = 200_000
    option_quote_min_gap_ns: int = 1_000
    min_quotes_per_contract: int = 20
    expiry_activity: tuple[float, ...] = (1.0, 0.2, 0.12)
    quote_activity_z_scale: float = 1.5
    quote_activity_floor: float = 0.02
    trade_activity_z_scale: float = 1.0
    trade_activity_floor: float = 0.005
    option_exchanges: tuple[str, ...] = ("A", "B", "C", "E", "H", "I", "M", "N", "Q", "T", "W", "X", "Z")
    option_exchange_weights: tuple[float, ...] = (6.0, 3.0, 14.0, 5.0, 3.0, 8.0, 7.0, 7.0, 6.0, 2.0, 4.0, 12.0, 6.0)

    option_trade_inside_share: float = 0.1
    option_trade_mid_share: float = 0.1
    option_trade_size_alpha: float = 1.3
    option_trade_max_size: int = 2_000
    sweep_share: float = 0.03
    sweep_extra_legs_mean: float = 1.5
    sweep_max_legs: int = 8
    sweep_leg_spacing_ns: int = 150_000
    block_share: float = 0.002
    block_min_size: int = 500
    block_size_alpha: float = 1.5
    block_max_size: int = 20_000
    canceled_share: float = 0.0005
    option_condition_regular: str = "regular"
    option_condition_sweep: str = "intermarket_sweep"
    option_condition_block: str = "block"


# --- gold: flow analytics (issue: flow analytics; owned by ``m17_platform/flow``).

    def scaled(self, factor: float) -> SyntheticSettings:
        """The same day with the quote and trade counts (options, stock, ES trades) multiplied
        by ``factor`` (a smaller day for tests and demos). The ES book keeps its rows: the
        underlying's path, which a smaller day shares, sets how many book moves it needs.

        Raises
        ------
        ValueError
            If ``factor`` is not positive.
        """
        if not factor > 0:
            raise ValueError(f"synthetic scale must be positive, got {factor}")
        counts = ("option_quotes", "option_trades", "stock_quotes", "stock_trades", "futures_trades")
        return replace(self, **{name: max(1, round(getattr(self, name) * factor)) for name in counts})

@dataclass(frozen=True)
class FlowSettings:
    """Flow windows and flow packets (``m17_platform.flow.windows`` / ``.packets``).

    window_seconds : window lengths of ``flow_windows`` (seconds; 60 = 1 min and 600 =
        10 min, M17's SPY aggregation windows, seed 000). A window is aligned to multiples
        of its length since the epoch, which in New York are wall-clock boundaries (09:30,
        09:40, ...), since the UTC offset is a whole number of hours.
    artifact_window_seconds : window length summarised in the plain-text artifact beside
        ``flow_windows``, one line per finished window (seconds; M17's 10 min, seed 000).
    artifact_name : file name of that artifact in the partition folder (M17 wrote
        ``OUTPUT.txt`` plus one file per window; one file per partition here).
    packet_window_ms : prints of one contract at most this long after a packet's first
        print belong to that packet (milliseconds; seed 004 clusters prints into flow
        packets). Anchored at the first print, so a packet never spans more than this.
    gamma_move : the underlying move gamma flow and gamma exposure are quoted for
        (fraction of the underlying price; 0.01 = a 1% move: gamma x S^2 x 0.01, in dollars
        of delta change per 1% move).
    check_rel_tol : relative tolerance of the gold checks when they compare float sums
        added up in different orders (dimensionless; 1e-9).

    The contract multiplier comes from ``option_trades_enriched.multiplier``, which the
    enrichment fills from ``option_contracts`` or ``UniverseSettings.default_multiplier``.
    """

    window_seconds: tuple[int, ...] = (60, 600)
    artifact_window_seconds: int = 600
    artifact_name: str = "windows.txt"
    packet_window_ms: float = 500.0
    gamma_move: float = 0.01
    check_rel_tol: float = 1e-9


@dataclass(frozen=True)
class ClassifierSettings:
    """Thresholds of the flow classifiers (``m17_platform.flow.classifiers``, seed 004).

    Seed 004 names these settings (``CLASSIFIER_*``) but publishes no numbers for them;
    the defaults below are the platform's.

    Shared
    ------
    min_aggressor_ratio : share of a packet's (or a burst's) contracts on its dominant
        side, unknown-side contracts counting against it (0-1; ``CLASSIFIER_MIN_AGGRESSOR_RATIO``).
    min_nbbo_coverage : share of the evidence prints with a usable NBBO (``nbbo_flag`` one
        of the enrichment's usable flags: the side was decided against a quote) that the
        sweep classifier requires (0-1; ``CLASSIFIER_MIN_NBBO_COVERAGE``). A packet or alert
        with fewer prints than this share under a fresh NBBO (within
        ``SignalFilterSettings.nbbo_max_age_ms``) counts as "NBBO missing or stale" for the
        signal presets.
    iso_conditions : trade condition codes that mark an intermarket sweep order (ISO), in
        each source's code space: Polygon options 219 (ISO), 228 (single-leg auction ISO),
        230 (single-leg cross ISO); the synthetic source's ``intermarket_sweep``.
    multi_leg_conditions : condition codes that mark a leg of a multi-leg order: Polygon
        options 232-236, 238, 239, 246.

    Sweep
    -----
    sweep_min_prints : prints in one packet (count; ``CLASSIFIER_SWEEP_MIN_COUNT``).
    sweep_min_exchanges : distinct exchanges those prints hit; more than one (count).
    sweep_min_premium : packet premium (dollars; ``CLASSIFIER_SWEEP_MIN_PREMIUM``).

    Block
    -----
    block_min_size : a single print of at least this many contracts (contracts; 500, the
        seed's "500+ contract prints").
    block_min_premium : and at least this premium (dollars).

    Repeated hits
    -------------
    repeat_window_seconds : packets of one contract and side within this span (seconds).
    repeat_min_packets : that many packets (count).
    repeat_min_premium : with at least this premium together (dollars).

    Spike
    -----
    spike_baseline_prints : the baseline is at most this many prints of the same contract
        immediately before the print (count; ``ROLLING_WINDOW_SIZE``).
    spike_baseline_max_age_seconds : baseline prints older than this before the print are
        dropped (seconds; ``ROLLING_TTL_SEC``).
    spike_min_samples : fewest baseline prints for a z-score (count; ``CLASSIFIER_Z_MIN_SAMPLES``).
    spike_min_premium, spike_min_premium_z : premium (dollars) and premium z-score
        (standard deviations) a print needs to be a premium spike.
    spike_min_size, spike_min_size_z : size (contracts) and size z-score (standard
        deviations) a print needs to be a size spike.

    0DTE near-the-money burst
    -------------------------
    zero_dte_max_atm_pct : |strike / underlying - 1| at most this (fraction; 0.01 = 1%;
        ``CLASSIFIER_0DTE_MAX_ATM_PCT``).
    zero_dte_window_seconds : packets of one right and side within this span (seconds).
    zero_dte_min_packets : that many packets (count).
    zero_dte_min_premium : premium together (dollars; ``CLASSIFIER_0DTE_MIN_PREMIUM``).
    zero_dte_min_size : contracts together (contracts; ``CLASSIFIER_0DTE_MIN_SIZE``).

    Multi-leg structures
    --------------------
    multi_leg_tolerance_ms : prints of different contracts of one underlying at most this
        far apart are legs of one structure (milliseconds; 0 = the same timestamp).
    multi_leg_max_legs : groups with more contracts than this are not reported (count).
    """

    min_aggressor_ratio: float = 0.8
    min_nbbo_coverage: float = 0.5
    iso_conditions: tuple[str, ...] = ("219", "228", "230", "intermarket_sweep")
    multi_leg_conditions: tuple[str, ...] = ("232", "233", "234", "235", "236", "238", "239", "246")
    sweep_min_prints: int = 2
    sweep_min_exchanges: int = 2
    sweep_min_premium: float = 5_000.0
    block_min_size: int = 500
    block_min_premium: float = 0.0
    repeat_window_seconds: float = 60.0
    repeat_min_packets: int = 3
    repeat_min_premium: float = 10_000.0
    spike_baseline_prints: int = 50
    spike_baseline_max_age_seconds: float = 1_800.0
    spike_min_samples: int = 20
    spike_min_premium: float = 10_000.0
    spike_min_premium_z: float = 3.0
    spike_min_size: int = 100
    spike_min_size_z: float = 3.0
    zero_dte_max_atm_pct: float = 0.01
    zero_dte_window_seconds: float = 60.0
    zero_dte_min_packets: int = 3
    zero_dte_min_premium: float = 25_000.0
    zero_dte_min_size: int = 100
    multi_leg_tolerance_ms: float = 0.0
    multi_leg_max_legs: int = 4


@dataclass(frozen=True)
class SignalPreset:
    """One signal-filtering preset (seed 004, ``OPTIONS_SIGNAL_*``); every amount in
    dollars of premium, sizes in contracts. Rules apply in this order, the first that
    decides wins:

    1. keep at ``auto_keep_notional`` or more;
    2. reject below ``min_notional``;
    3. reject an ETF underlying below ``etf_min_notional``;
    4. reject bid-side (B / BB) below ``bid_side_min_notional``;
    5. reject MID that is not a sweep / ISO below ``mid_min_notional``;
    6. reject a missing or stale NBBO below ``stale_min_notional``;
    7. keep ask-side (A / AA) at ``ask_side_keep_notional`` or more;
    8. keep a sweep / ISO at ``sweep_keep_notional`` or more;
    9. keep ``large_size`` contracts or more at ``large_size_keep_notional`` or more;
    10. otherwise reject (the keep rules are the whitelist; were the default "keep", they
        could never change an outcome).

    keep_all : the ``all`` preset: every print passes.
    """

    min_notional: float = 0.0
    etf_min_notional: float = 0.0
    bid_side_min_notional: float = 0.0
    mid_min_notional: float = 0.0
    stale_min_notional: float = 0.0
    auto_keep_notional: float = 0.0
    ask_side_keep_notional: float = 0.0
    sweep_keep_notional: float = 0.0
    large_size: int = 0
    large_size_keep_notional: float = 0.0
    keep_all: bool = False


@dataclass(frozen=True)
class SignalFilterSettings:
    """Signal-filtering presets ``smart-money``, ``balanced`` and ``all`` (seed 004).

    presets : preset name -> :class:`SignalPreset`. ``smart-money`` carries the seed's
        numbers (10k floor, ETF 50k, bid side 25k, non-sweep MID 20k, missing / stale NBBO
        50k, auto-keep 100k, ask side 10k, sweep / ISO 25k, 500+ contracts at 10k).
        ``balanced`` is "the same shape with lower thresholds" in the seed, which gives no
        numbers: the platform halves every amount and the size. ``all`` keeps everything.
    default_preset : the preset operators see first (seed: ``smart-money``).
    nbbo_max_age_ms : an NBBO older than this at the print is stale (milliseconds;
        ``OPTIONS_SIGNAL_NBBO_MAX_AGE_MS``).
    etf_underlyings : underlyings held to ``etf_min_notional`` (``OPTIONS_SIGNAL_ETF_UNDERLYINGS``).
    """

    presets: dict[str, SignalPreset] = field(
        default_factory=lambda: {
            "smart-money": SignalPreset(
                min_notional=10_000.0, etf_min_notional=50_000.0, bid_side_min_notional=25_000.0,
                mid_min_notional=20_000.0, stale_min_notional=50_000.0, auto_keep_notional=100_000.0,
                ask_side_keep_notional=10_000.0, sweep_keep_notional=25_000.0, large_size=500,
                large_size_keep_notional=10_000.0,
            ),
            "balanced": SignalPreset(
                min_notional=5_000.0, etf_min_notional=25_000.0, bid_side_min_notional=12_500.0,
                mid_min_notional=10_000.0, stale_min_notional=25_000.0, auto_keep_notional=50_000.0,
                ask_side_keep_notional=5_000.0, sweep_keep_notional=12_500.0, large_size=250,
                large_size_keep_notional=5_000.0,
            ),
            "all": SignalPreset(keep_all=True),
        }
    )
    default_preset: str = "smart-money"
    nbbo_max_age_ms: float = 1_500.0
    etf_underlyings: tuple[str, ...] = (
        "SPY", "QQQ", "IWM", "DIA", "TLT", "GLD", "SLV", "XLF", "XLE", "XLV", "XLI", "XLP", "XLU", "XLY", "SMH", "ARKK",
    )


@dataclass(frozen=True)
class GammaSettings:
    """Dealer gamma exposure (``m17_platform.flow.gamma``).

    interval_seconds : spacing of the customer-flow time series from the session open
        (seconds); the value at each instant uses only prints strictly before it.
    flip_range_pct : the gamma flip is searched for over underlying prices within this
        fraction of the current one (0.10 = +/- 10%).
    flip_grid_points : underlying prices evaluated over that range (count, odd so the
        current price is one of them).
    oi_call_sign, oi_put_sign : dealer position per contract of open interest in calls and
        puts (+1 long, -1 short). The open-interest profile cannot know who holds the
        contracts; the defaults are the common convention (SqueezeMetrics, "Gauging GEX",
        2017): customers buy puts and sell calls, so dealers are long calls, short puts.
    """

    interval_seconds: int = 60
    flip_range_pct: float = 0.10
    flip_grid_points: int = 201
    oi_call_sign: float = 1.0
    oi_put_sign: float = -1.0


@dataclass(frozen=True)
class OffExchangeSettings:
    """Off-exchange prints and the inferred events of seed 004 (``m17_platform.flow.offexchange``).

    off_exchange_codes : source prefix (the ``source`` column starts with it) -> exchange
        codes, in that source's code space, of trade reporting facilities: Polygon ``4``
        (FINRA; its TRFs and the ADF share id 4, told apart only by ``trf_id``);
        Databento venues FINN, FINC (FINRA/Nasdaq TRF Carteret, Chicago), FINY (FINRA/NYSE
        TRF), XADF (FINRA ADF); Cboe DataShop ids 2 (Nasdaq ADF), 57 (NSX TRF), 59 (NYSE
        TRF), 118 (FINRA ADF), 119 (FINRA/Nasdaq TRF Chicago); the synthetic source's tape
        letter D (FINRA). LOBSTER is one exchange's book (Nasdaq): no print is off-exchange.
    quote_max_age_ms : an off-exchange print's quote older than this is not used
        (milliseconds; ``EQUITY_QUOTE_MAX_AGE_MS``).
    max_spread_pct : nor is a quote wider than this fraction of its mid (0.005 = 0.5%;
        ``DARK_INFER_MAX_SPREAD_PCT``).
    window_ms : span of a stealth accumulation / distribution, and the time after a block
        over which absorption is judged (milliseconds; ``DARK_INFER_WINDOW_MS``).
    cooldown_ms : after an event of one kind and symbol, none of the same kind for this
        long (milliseconds; ``DARK_INFER_COOLDOWN_MS``).
    min_block_size : an absorbed block is one off-exchange print of at least this many
        shares (shares; 10,000, the classic block; ``DARK_INFER_MIN_BLOCK_SIZE``).
    min_print_size : prints counted toward accumulation / distribution (shares;
        ``DARK_INFER_MIN_PRINT_SIZE``).
    min_accum_count, min_accum_size : prints (count) and shares (shares) an accumulation /
        distribution window needs (``DARK_INFER_MIN_ACCUM_COUNT`` / ``_SIZE``).
    min_side_share : share of the window's shares on its side (0-1).
    max_evidence : most evidence trade ids stored per event (count; ``DARK_INFER_MAX_EVIDENCE``;
        ``evidence_count`` keeps the total).
    """

    off_exchange_codes: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "polygon.": ("4",),
            "databento.": ("FINN", "FINC", "FINY", "XADF"),
            "cboe_datashop.": ("2", "57", "59", "118", "119"),
            "synthetic.": ("D",),
        }
    )
    quote_max_age_ms: float = 1_000.0
    max_spread_pct: float = 0.005
    window_ms: float = 60_000.0
    cooldown_ms: float = 300_000.0
    min_block_size: int = 10_000
    min_print_size: int = 100
    min_accum_count: int = 5
    min_accum_size: int = 5_000
    min_side_share: float = 0.7
    max_evidence: int = 50


@dataclass(frozen=True)
class BarSettings:
    """OHLCV and VWAP bars (``m17_platform.flow.bars``).

    bar_seconds : bar length (seconds; 60 = 1 min), aligned like flow windows.
    Futures bars are also written on the underlying's scale, dividing prices by
    ``UniverseSettings.futures_price_ratio`` (ES / 10 = SPY).
    """

    bar_seconds: int = 60


@dataclass(frozen=True)
class CaptureSettings:
    """Streaming capture over Polygon's websocket protocol (owned by ``m17_platform/capture/``).

    stocks_ws_url / options_ws_url : websocket endpoints (``M17_STOCKS_WS_URL`` /
        ``M17_OPTIONS_WS_URL`` override them; the replay server serves ``/stocks`` and
        ``/options`` on its bind address).
    landing_root : where micro-batches, their manifest, gaps and rejects land
        (``M17_LANDING_ROOT`` overrides it).
    strikes_each_side : the strike window is the ATM strike plus this many listed strikes
        above and below it, calls and puts (count; 3 gives 7 strikes, 14 contracts).
    recenter_dollars : re-centre the window when the underlying has moved more than this
        from the price it was last centred on (dollars).
    recenter_seconds : re-centre at least this often, in event time of the underlying's
        feed, so a replay at any speed re-centres at the same events (s).
    contract_refresh_seconds : reload the listed 0DTE contracts (REST
        ``/v3/reference/options/contracts``) this often, wall clock (s).
    batch_seconds : a micro-batch is written at least this often while events arrive (s).
    batch_events : ... or as soon as it holds this many events (events).
    backoff_initial_seconds : first reconnect delay after a dropped connection (s); doubled
        per failed attempt up to ``backoff_max_seconds``.
    backoff_max_seconds : longest reconnect delay (s).
    backoff_jitter : each delay is multiplied by a uniform factor in [1 - jitter, 1 + jitter]
        so many clients do not reconnect in lockstep (fraction).
    auth_timeout_seconds : how long to wait for the server's connected / auth / subscribe
        replies before treating the connection as failed (s).
    metrics_host / metrics_port : Prometheus ``/metrics`` endpoint (127.0.0.1:9095; port 0
        picks a free port).
    max_frame_events : most events the replay server bundles into one frame (events).
    replay_speed : replay pace: event time advances this many times faster than wall time;
        0 serves as fast as the client reads (dimensionless).
    source_name : the ``source`` column of captured rows.
    max_frame_chars : a frame longer than this is rejected unparsed (``too_large``) (characters).
    max_frame_depth : a frame nesting arrays / objects deeper than this is rejected
        (``too_deep``) (levels; a frame of events with the ``m17`` extension uses 4).
    event_window_slack_seconds : an event's time must lie in its trade date's extended
        session (the equity calendar's, ``SessionSettings.stock_extended_open`` to the close +
        ``stock_extended_after_close_minutes``: 04:00-20:00 ET, 17:00 on a half day) widened
        by this much at each end, on a trading day; others are rejected
        (``outside_session``, ``not_trading_day``) (s).
    reject_frame_chars : ``rejects.jsonl`` keeps at most this much of a rejected frame's
        text, with its full length (characters).
    """

    stocks_ws_url: str = "wss://socket.massive.com/stocks"
    options_ws_url: str = "wss://socket.massive.com/options"
    landing_root: Path = PROJECT_ROOT / "data" / "landing"
    strikes_each_side: int = 3
    recenter_dollars: float = 0.50
    recenter_seconds: float = 60.0
    contract_refresh_seconds: float = 60.0
    batch_seconds: float = 5.0
    batch_events: int = 50_000
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    backoff_jitter: float = 0.25
    auth_timeout_seconds: float = 10.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9095
    max_frame_events: int = 1_000
    replay_speed: float = 1.0
    source_name: str = "polygon.ws"
    max_frame_chars: int = 16 * 2**20
    max_frame_depth: int = 16
    event_window_slack_seconds: float = 60.0
    reject_frame_chars: int = 65_536


@dataclass(frozen=True)
class Settings:
    """All settings, one object per concern."""

    lake: LakeSettings = field(default_factory=LakeSettings)
    sessions: SessionSettings = field(default_factory=SessionSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    rates: RatesSettings = field(default_factory=RatesSettings)
    universe: UniverseSettings = field(default_factory=UniverseSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    nbbo: NbboSettings = field(default_factory=NbboSettings)
    aggressor: AggressorSettings = field(default_factory=AggressorSettings)
    greeks: GreeksSettings = field(default_factory=GreeksSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    polygon: PolygonSettings = field(default_factory=PolygonSettings)
    databento: DatabentoSettings = field(default_factory=DatabentoSettings)
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    flow: FlowSettings = field(default_factory=FlowSettings)
    classifiers: ClassifierSettings = field(default_factory=ClassifierSettings)
    signals: SignalFilterSettings = field(default_factory=SignalFilterSettings)
    gamma: GammaSettings = field(default_factory=GammaSettings)
    off_exchange: OffExchangeSettings = field(default_factory=OffExchangeSettings)
    bars: BarSettings = field(default_factory=BarSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)

    def fingerprint(self) -> str:
        """Hex sha256 of every setting's value: results recorded under one fingerprint
        are stale under another (e.g. the check outcomes the daily report reuses)."""
        import hashlib

        return hashlib.sha256(repr(self).encode()).hexdigest()


DEFAULT = Settings()
