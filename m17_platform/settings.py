"""Settings: one frozen object per concern, every threshold and window with its unit.

Engines take these objects as arguments; no threshold is repeated as a literal
elsewhere. Dagster resources expose the same fields as run config, and build these
objects from it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
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
    """

    max_null_rate: float = 0.05
    min_bid_le_ask_rate: float = 0.999
    min_in_session_rate: float = 0.999
    max_duplicate_rate: float = 0.001
    min_nbbo_coverage: float = 0.95
    min_aggressor_accuracy: float = 0.81
    max_vendor_delta_median: float = 0.02
    max_reprice_error: float = 1e-8


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
    """

    bucket_minutes: int = 5
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
    post_event_quote_sources : str prefixes of quote ``source`` values whose rows are
        the book *after* an event that shares the trade's (ts_ns, sequence) (books
        rebuilt from LOBSTER messages or Databento MBO). Trades join those quotes
        strictly before (ts_ns, sequence).
    at_trade_quote_sources : str prefixes of quote ``source`` values whose rows carry
        the trades' own sequence numbers and are in force at the trade (Cboe's NBBO at
        each print): trades join them at or before (ts_ns, sequence). Other quotes join
        at or before ts_ns.
    """

    lag_ns: int = 0
    max_quote_age_ns: int = 1_000_000_000
    post_event_quote_sources: tuple[str, ...] = ("lobster.", "databento.")
    at_trade_quote_sources: tuple[str, ...] = ("cboe_datashop.option_trades",)


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

    chunk_rows : rows per chunk a streaming source yields and the lake spills (rows).
    sort_memory_limit : DuckDB memory limit for the out-of-core sort of a spilled
        partition (DuckDB size string, e.g. ``"2GB"``).
    sort_threads : DuckDB threads for that sort.
    target_file_rows : rows per Parquet file of a partition written from chunks.
    """

    chunk_rows: int = 2_000_000
    sort_memory_limit: str = "2GB"
    sort_threads: int = 2
    target_file_rows: int = 5_000_000


@dataclass(frozen=True)
class PolygonSettings:
    """Polygon / Massive REST and flat files (owned by ``sources/polygon.py``).

    rest_base_url : REST API base (``M17_REST_BASE_URL`` overrides it).
    flatfiles_endpoint : S3-compatible flat-file endpoint (``M17_FLATFILES_ENDPOINT`` overrides).
    flatfiles_bucket : flat-file bucket.
    page_limit : rows per REST page (the v3 endpoints' maximum is 50,000).
    max_retries : retries of a 429 / 5xx response before giving up.
    backoff_seconds : first retry delay (s), doubled per retry.
    timeout_seconds : HTTP read timeout (s).
    """

    rest_base_url: str = "https://api.massive.com"
    flatfiles_endpoint: str = "https://files.massive.com"
    flatfiles_bucket: str = "flatfiles"
    page_limit: int = 50_000
    max_retries: int = 5
    backoff_seconds: float = 0.5
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class DatabentoSettings:
    """Databento DBN files and the Historical client (owned by ``sources/databento.py``).

    futures_dataset / options_dataset / equities_dataset : dataset codes per asset class.
    gateway : Historical API gateway URL (``M17_DATABENTO_GATEWAY`` overrides it).
    """

    futures_dataset: str = "GLBX.MDP3"
    options_dataset: str = "OPRA.PILLAR"
    equities_dataset: str = "XNAS.ITCH"
    gateway: str = "https://hist.databento.com"


@dataclass(frozen=True)
class SyntheticSettings:
    """The seeded synthetic SPY session (owned by ``sources/synthetic.py``).

    seed : random seed; the same seed gives the same day, bit for bit.
    option_quotes : option quote updates in the day (count).
    option_trades : option prints in the day (count).
    """

    seed: int = 17
    option_quotes: int = 20_000_000
    option_trades: int = 500_000


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


DEFAULT = Settings()
