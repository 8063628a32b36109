"""Every threshold and window of the level physics, with its unit (``LevelSettings``).

The lead composes :class:`LevelSettings` into :class:`m17_platform.settings.Settings`
later; until then every function of :mod:`m17_platform.levels` takes either a
``LevelSettings`` or a ``Settings`` (whose ``levels`` attribute, when it has one, is
used) and resolves the pair with :func:`split_settings`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from m17_platform.settings import DEFAULT, Settings


@dataclass(frozen=True)
class LevelSettings:
    """Level universe, touches, barrier / tape / fuel physics, approach context and
    outcome labels (``m17_platform.levels``). Prices on the SPY scale are dollars; ES
    prices are index points (ES "dollars" in the lake's price columns).

    Conversion ES <-> SPY (:mod:`.convert`)
    ratio_window_minutes : the measured ratio at instant t is the median of ES mid /
        SPY mid over samples in [t - window, t) (minutes; past data only).
    ratio_sample_seconds : spacing of those samples (seconds, aligned to the epoch).
    ratio_min_samples : fewer samples than this in the window -> the settings ratio
        (count).
    ratio_max_quote_age_seconds : a sample needs an ES book row and a SPY quote each at
        most this old (seconds).
    fallback_ratio : ES / SPY used where no ratio can be measured (no SPY quotes);
        ``None`` = ``UniverseSettings.futures_price_ratio`` of the contract's root (10.0).
    es_tick : ES price grid (index points; 0.25).

    Universe (:mod:`.universe`)
    bar_seconds : bar length of the level universe, touches and windows (seconds; 60).
    grid_range : ROUND and STRIKE levels are listed within this distance of the bar's
        low / high (dollars, SPY scale; other kinds are always listed).
    round_step : spacing of ROUND levels (dollars; $1).
    premarket_start : start of the PM_HIGH / PM_LOW window, ET wall clock (04:00; it
        ends at the regular open, 09:30 from the exchange calendar).
    opening_range_minutes : OR_HIGH / OR_LOW cover [open, open + this) (minutes; 15).
    sma_bar_seconds / sma_length : SMA_200 is the mean of the last ``sma_length`` closes
        of ``sma_bar_seconds`` bars (seconds 120, count 200), SPY scale.
    sma_warmup_partitions : the SMA is warmed up from this many earlier partitions of the
        same underlying in the lake, when present (count; 2 covers 200 x 2 minutes).
    gamma_sources : gamma_exposure sources in order of preference (walls, flip, fuel).
    futures_roll_days : the proxy contract is the nearest quarterly expiry more than this
        many calendar days after the trade date (days; 8, as the synthetic source rolls).

    Touches (:mod:`.touches`)
    touch_band : a level is touched when bar low - band <= level <= bar high + band
        (dollars, SPY scale; 0.05 = two ES ticks at ratio 10).
    critical_zone : |close - level| <= this marks the critical zone (dollars; 0.25).
    decision_seconds : decision time = bar start + this; physics window
        [bar start, decision) (seconds; 60: one bar).

    Barrier (:mod:`.barrier`; ES order book, defending side: asks for UP, bids for DOWN)
    barrier_zone_ticks : depth is summed within +/- this many ES ticks of the level
        (ticks; 8 = +/- 2 index points = +/- $0.20 SPY).
    fill_match_ms : a removal of resting size (MBP-10 inferred) is a fill up to the
        volume traded at that price and side within this long before it (milliseconds);
        the rest is a cancel.
    baseline_minutes : the wall-ratio baseline is the mean defending depth within the
        zone's width from the best price, sampled at earlier bar starts of the last
        ``baseline_minutes`` (minutes; strictly earlier than the touch's bar).
    baseline_min_samples : fewer samples -> wall ratio null (count).
    min_contracts : every state but WEAK / NEUTRAL needs at least this many contracts of
        its kind (canceled for VACUUM, filled for CONSUMED / ABSORPTION) (contracts).
    vacuum_min_canceled_share : VACUUM: canceled >= this share of the start depth (0-1),
        filled / (canceled + filled) <= ``vacuum_max_fill_share`` (0-1) and the zone's depth
        down by >= ``vacuum_min_drop`` (0-1): pulled, not hit.
    consumed_min_filled_share : CONSUMED: filled >= this share of the start depth (0-1),
        fill share >= ``consumed_min_fill_share`` (0-1), depth down by >= ``consumed_min_drop``
        (0-1): eaten by the aggressors.
    absorption_min_filled_share : ABSORPTION: filled >= this share of the start depth (0-1)
        while the depth fell by at most ``absorption_max_drop`` (0-1): hit and refilled.
    wall_min_ratio : WALL: wall ratio at least this (dimensionless) with replenishment
        ratio at least ``wall_min_replenishment`` (dimensionless; or no removals at all).
    weak_max_ratio : WEAK: wall ratio at most this (dimensionless), or, without a
        baseline, end depth at most ``weak_max_depth`` (contracts).
    book_stale_seconds : a gap between book rows (or from the last row before the window)
        longer than this inside the window marks the book stale (seconds).
    sequence_gap_min : a step of more than this between consecutive book sequence numbers
        is a gap (count; CME numbers packets per channel, so steps of a few dozen are
        normal: 37 at most on the ESH4 sample).

    Tape (:mod:`.tape`; ES prints)
    tape_band : prints within +/- this of the level (dollars, SPY scale; 0.50).
    sweep_window_ms : a sweep is one aggressor side walking at least ``sweep_min_levels``
        distinct prices (count; 2) in its direction within this long (milliseconds; 1: CME
        fills an aggressor's walk through the book in one matching event, one timestamp
        for 36 of the 40 multi-price aggressor orders of the ESH4 sample; at 100 ms
        independent prints join, 96% of touches of the full-size synthetic tape, which has
        no sweeps, would show one).

    Fuel (:mod:`.fuel`)
    fuel_strike_range : dealer gamma of strikes within +/- this of the level (dollars).
    fuel_neutral_share : |GEX near the level| below this share of the chain's gross
        |GEX| at that instant is NEUTRAL (0-1); otherwise negative GEX AMPLIFY, positive
        DAMPEN.

    Approach (:mod:`.approach`)
    approach_minutes : lookback before the bar start (minutes; 10).
    prior_touch_tolerance : earlier touches of the same kind within this distance count
        as touches of this level (dollars).

    Labels (:mod:`.labels`)
    label_minutes : label window (decision, decision + this] (minutes; 5).
    outcome_threshold : BREAK / BOUNCE move (dollars, SPY scale; 2.00).
    time_thresholds : moves whose first-reach times are reported (dollars; 1 and 2).
    """

    ratio_window_minutes: float = 10.0
    ratio_sample_seconds: int = 1
    ratio_min_samples: int = 30
    ratio_max_quote_age_seconds: float = 60.0
    fallback_ratio: float | None = None
    es_tick: float = 0.25

    bar_seconds: int = 60
    grid_range: float = 3.0
    round_step: float = 1.0
    premarket_start: dt.time = dt.time(4, 0)
    opening_range_minutes: int = 15
    sma_bar_seconds: int = 120
    sma_length: int = 200
    sma_warmup_partitions: int = 2
    gamma_sources: tuple[str, ...] = ("customer_flow", "open_interest")
    futures_roll_days: int = 8

    touch_band: float = 0.05
    critical_zone: float = 0.25
    decision_seconds: int = 60

    barrier_zone_ticks: int = 8
    fill_match_ms: float = 1_000.0
    baseline_minutes: int = 30
    baseline_min_samples: int = 5
    min_contracts: int = 10
    vacuum_min_canceled_share: float = 0.30
    vacuum_max_fill_share: float = 0.25
    vacuum_min_drop: float = 0.30
    consumed_min_filled_share: float = 0.30
    consumed_min_fill_share: float = 0.50
    consumed_min_drop: float = 0.30
    absorption_min_filled_share: float = 0.30
    absorption_max_drop: float = 0.10
    wall_min_ratio: float = 1.5
    wall_min_replenishment: float = 1.0
    weak_max_ratio: float = 0.5
    weak_max_depth: int = 5
    book_stale_seconds: float = 30.0
    sequence_gap_min: int = 100

    tape_band: float = 0.50
    sweep_window_ms: float = 1.0
    sweep_min_levels: int = 2

    fuel_strike_range: float = 2.0
    fuel_neutral_share: float = 0.05

    approach_minutes: int = 10
    prior_touch_tolerance: float = 0.05

    label_minutes: int = 5
    outcome_threshold: float = 2.0
    time_thresholds: tuple[float, float] = field(default=(1.0, 2.0))

    @property
    def bar_ns(self) -> int:
        return int(self.bar_seconds) * 1_000_000_000

    @property
    def decision_ns(self) -> int:
        return int(self.decision_seconds) * 1_000_000_000

    @property
    def label_ns(self) -> int:
        return int(self.label_minutes) * 60 * 1_000_000_000


def split_settings(settings: LevelSettings | Settings | None) -> tuple[LevelSettings, Settings]:
    """(level settings, platform settings) from either.

    A :class:`LevelSettings` comes with :data:`m17_platform.settings.DEFAULT`; a
    :class:`~m17_platform.settings.Settings` brings its ``levels`` attribute when it has
    one (the lead composes it there), else the defaults; ``None`` is both defaults.

    Raises
    ------
    TypeError
        For anything else.
    """
    if settings is None:
        return LevelSettings(), DEFAULT
    if isinstance(settings, LevelSettings):
        return settings, DEFAULT
    if isinstance(settings, Settings):
        levels = getattr(settings, "levels", None)
        return (levels if isinstance(levels, LevelSettings) else LevelSettings()), settings
    raise TypeError(f"expected LevelSettings or Settings, got {type(settings).__name__}")
