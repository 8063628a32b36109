"""The gold tables of the level physics, declared like :mod:`m17_platform.schemas`
(the lead registers them in ``GOLD_TABLES``).

Prices: ``*_es`` columns are ES index points; every other price is dollars on the SPY
scale, converted with the signal's ``es_spy_ratio`` (:func:`m17_platform.levels.convert.convert`).
Times are int64 ns since the epoch, UTC.
"""

from __future__ import annotations

import pyarrow as pa

from m17_platform.table_schema import GOLD, TableSchema, col

LEVEL_KINDS = (
    "STRIKE",
    "ROUND",
    "PM_HIGH",
    "PM_LOW",
    "OR_HIGH",
    "OR_LOW",
    "SESSION_HIGH",
    "SESSION_LOW",
    "VWAP",
    "SMA_200",
    "CALL_WALL",
    "PUT_WALL",
    "GAMMA_FLIP",
)
BARRIER_STATES = ("VACUUM", "WALL", "ABSORPTION", "CONSUMED", "WEAK", "NEUTRAL")
FUEL_EFFECTS = ("AMPLIFY", "DAMPEN", "NEUTRAL")
OUTCOMES = ("BREAK", "BOUNCE", "CHOP")

_NS = "ns since epoch, UTC"


def _bar() -> list[pa.Field]:
    return [
        col("bar_start_ns", pa.int64(), _NS, "start of the 1-minute bar (inclusive)"),
        col("underlying", pa.string(), "ticker", "the partition's underlying"),
        col("symbol", pa.string(), "ticker", "the futures contract whose book and prints are used (e.g. ESZ5)"),
    ]


def _level() -> list[pa.Field]:
    return [
        col("level_kind", pa.string(), "|".join(LEVEL_KINDS), "kind of level"),
        col("level_price", pa.float64(), "dollars", "level on the SPY scale"),
        col("level_price_es", pa.float64(), "ES points", "level on the ES scale (level_price x es_spy_ratio)"),
        col(
            "known_from_ts_ns",
            pa.int64(),
            _NS,
            "first instant whose earlier data determine the level (bars by their end, rows strictly before it)",
        ),
    ]


def _ratio() -> list[pa.Field]:
    return [
        col("es_spy_ratio", pa.float64(), "ratio", "ES / SPY used to convert this row's prices"),
        col(
            "ratio_source",
            pa.string(),
            "measured|settings",
            "measured: median ES mid / SPY mid over the previous minutes; settings: the configured ratio",
        ),
    ]


def _touch_core() -> list[pa.Field]:
    return [
        col("touch_id", pa.string(), "text", "symbol:bar_start_ns:level_kind:level_price (4 decimals)"),
        *_bar(),
        col("decision_ts_ns", pa.int64(), _NS, "bar start + decision_seconds: features use data strictly before it"),
        *_level(),
        col("direction", pa.string(), "UP|DOWN", "UP: the close is below the level (testing resistance); else DOWN"),
    ]


LEVELS = TableSchema(
    name="levels",
    layer=GOLD,
    schema=pa.schema(_bar() + [col("bar_end_ns", pa.int64(), _NS, "bar end (exclusive)")] + _level() + _ratio()),
    sort_key=("bar_start_ns", "level_kind", "level_price"),
    instrument=None,
    dedup_key=("bar_start_ns", "level_kind", "level_price"),
    description="the level universe per 1-minute bar: each level known at the bar's start, with the instant it "
    "became known (no level uses data from after its bar start)",
)

LEVEL_TOUCHES = TableSchema(
    name="level_touches",
    layer=GOLD,
    schema=pa.schema(
        _touch_core()
        + [
            col("open", pa.float64(), "dollars", "bar open (ES / ratio)"),
            col("high", pa.float64(), "dollars", "bar high (ES / ratio)"),
            col("low", pa.float64(), "dollars", "bar low (ES / ratio)"),
            col("close", pa.float64(), "dollars", "bar close (ES / ratio): the spot at the decision"),
            col("distance", pa.float64(), "dollars", "|close - level_price|"),
            col("critical", pa.bool_(), "flag", "distance <= LevelSettings.critical_zone"),
        ]
        + _ratio()
    ),
    sort_key=("bar_start_ns", "level_kind", "level_price"),
    instrument=None,
    dedup_key=("touch_id",),
    description="one row per (bar, level) whose price lies within the bar's range widened by the touch band",
)

_BARRIER = [
    col(
        "barrier_source",
        pa.string(),
        "mbo|mbp10_inferred",
        "mbo: adds / cancels / fills from MBO records; mbp10_inferred: from MBP-10 changes matched to prints",
    ),
    col("barrier_side", pa.string(), "bid|ask", "defending side: ask for UP, bid for DOWN"),
    col(
        "barrier_depth_start",
        pa.int64(),
        "contracts",
        "defending depth within the zone at the window start",
        nullable=True,
    ),
    col("barrier_depth_end", pa.int64(), "contracts", "defending depth within the zone at the decision", nullable=True),
    col("barrier_delta_liq", pa.int64(), "contracts", "depth_end - depth_start", nullable=True),
    col("barrier_added", pa.int64(), "contracts", "size added to the zone in the window", nullable=True),
    col("barrier_canceled", pa.int64(), "contracts", "size canceled from the zone in the window", nullable=True),
    col("barrier_filled", pa.int64(), "contracts", "size filled in the zone in the window", nullable=True),
    col(
        "barrier_replenishment_ratio",
        pa.float64(),
        "ratio",
        "added / (canceled + filled); null when nothing left",
        nullable=True,
    ),
    col(
        "barrier_baseline_depth",
        pa.float64(),
        "contracts",
        "mean defending depth over the zone's width from the best price at earlier bar starts",
        nullable=True,
    ),
    col("wall_ratio", pa.float64(), "ratio", "depth_end / baseline", nullable=True),
    col(
        "barrier_state",
        pa.string(),
        "|".join(BARRIER_STATES),
        "LevelSettings thresholds (see its docstring)",
        nullable=True,
    ),
]

_TAPE = [
    col("tape_buy_vol", pa.int64(), "contracts", "buyer-initiated ES volume within the tape band (CME aggressor)"),
    col("tape_sell_vol", pa.int64(), "contracts", "seller-initiated ES volume within the tape band"),
    col("tape_trades", pa.int64(), "count", "ES prints within the band"),
    col("tape_imbalance", pa.float64(), "-1..1", "(buy - sell) / (buy + sell); null without volume", nullable=True),
    col("tape_velocity", pa.float64(), "prints per second", "tape_trades / window seconds"),
    col("sweep_detected", pa.bool_(), "flag", "an aggressor walked >= sweep_min_levels prices within sweep_window_ms"),
    col("sweep_count", pa.int64(), "count", "sweeps in the window"),
]

_FUEL = [
    col(
        "gamma_exposure",
        pa.float64(),
        "dollars per 1% move",
        "dealer net GEX of strikes within fuel_strike_range of the level, as of the decision; null without options",
        nullable=True,
    ),
    col(
        "fuel_effect",
        pa.string(),
        "|".join(FUEL_EFFECTS),
        "AMPLIFY (dealers short gamma), DAMPEN (long) or NEUTRAL",
        nullable=True,
    ),
    col("fuel_source", pa.string(), "customer_flow|open_interest", "gamma_exposure source used", nullable=True),
    col(
        "gamma_ts_ns",
        pa.int64(),
        _NS,
        "instant of the gamma_exposure rows used (strictly before the decision)",
        nullable=True,
    ),
]

_APPROACH = [
    col(
        "approach_velocity",
        pa.float64(),
        "dollars per minute",
        "move toward the level over the lookback / minutes",
        nullable=True,
    ),
    col("approach_bars", pa.int64(), "count", "consecutive bars before this one whose close moved toward the level"),
    col("approach_distance", pa.float64(), "dollars", "net move toward the level over the lookback", nullable=True),
    col("prior_touches", pa.int64(), "count", "earlier touches today of this kind within prior_touch_tolerance"),
    col("bars_since_open", pa.int64(), "count", "minutes from the regular open to the bar start (negative before it)"),
]

_QUALITY = [
    col("book_rows", pa.int64(), "count", "book rows in the window"),
    col("book_crossed_rows", pa.int64(), "count", "crossed book rows in the window (skipped, never used)"),
    col("book_max_gap_ns", pa.int64(), "ns", "longest time without a book row in the window", nullable=True),
    col("sequence_gaps", pa.int64(), "count", "book sequence steps > sequence_gap_min in the window"),
    col("out_of_order_events", pa.int64(), "count", "book rows or prints in the window out of (ts, sequence) order"),
    col(
        "book_quality",
        pa.string(),
        "ok|no_book|crossed|stale|sequence_gap|out_of_order",
        "ok, or the problems found joined with '+'",
    ),
]

LEVEL_PHYSICS = TableSchema(
    name="level_physics",
    layer=GOLD,
    schema=pa.schema(_touch_core() + _BARRIER + _TAPE + _FUEL + _APPROACH + _QUALITY),
    sort_key=("bar_start_ns", "level_kind", "level_price"),
    instrument=None,
    dedup_key=("touch_id",),
    description="per touch: barrier (ES book), tape (ES prints), fuel (dealer gamma) over [bar start, decision), "
    "approach context over the lookback, and the book's quality in the window",
)

_LABEL = [
    col("label_end_ts_ns", pa.int64(), _NS, "decision + label_minutes: the window is (decision, label_end]"),
    col("label_status", pa.string(), "ok|incomplete", "incomplete: the window extends past the data (label null)"),
    col(
        "outcome",
        pa.string(),
        "|".join(OUTCOMES),
        "BREAK: move through the level >= threshold and > move away; BOUNCE: move away >= threshold; else CHOP",
        nullable=True,
    ),
    col("future_price_5min", pa.float64(), "dollars", "last ES print at or before label_end / ratio", nullable=True),
    col("excursion_through", pa.float64(), "dollars", "largest move beyond the level in the direction", nullable=True),
    col(
        "excursion_away",
        pa.float64(),
        "dollars",
        "largest move back from the level against the direction",
        nullable=True,
    ),
    col("time_to_through_1_ns", pa.int64(), "ns", "decision to the first print $1 through the level", nullable=True),
    col("time_to_through_2_ns", pa.int64(), "ns", "decision to the first print $2 through the level", nullable=True),
    col("time_to_away_1_ns", pa.int64(), "ns", "decision to the first print $1 away from the level", nullable=True),
    col("time_to_away_2_ns", pa.int64(), "ns", "decision to the first print $2 away from the level", nullable=True),
    col("label_trades", pa.int64(), "count", "ES prints in the window", nullable=True),
]

OUTCOME_LABELS = TableSchema(
    name="outcome_labels",
    layer=GOLD,
    schema=pa.schema(
        [
            col("touch_id", pa.string(), "text", "the touch labelled"),
            col("underlying", pa.string(), "ticker", "the partition's underlying"),
            col("bar_start_ns", pa.int64(), _NS, "bar of the touch"),
            col("decision_ts_ns", pa.int64(), _NS, "start of the label window (exclusive)"),
            col("level_kind", pa.string(), "|".join(LEVEL_KINDS), "kind of level"),
            col("level_price", pa.float64(), "dollars", "level on the SPY scale"),
            col("direction", pa.string(), "UP|DOWN", "direction of the touch"),
        ]
        + _LABEL
    ),
    sort_key=("bar_start_ns", "level_kind", "level_price"),
    instrument=None,
    dedup_key=("touch_id",),
    description="per touch, what ES (SPY scale) did over (decision, decision + 5 min]; null where the window "
    "extends past the data",
)

LABEL_COLUMNS = tuple(f.name for f in _LABEL)
"""The label columns of ``level_signals`` (everything else is a feature or identity)."""

LEVEL_SIGNALS = TableSchema(
    name="level_signals",
    layer=GOLD,
    schema=pa.schema(
        [
            col("event_id", pa.string(), "UUID", "UUID5 of the touch id: the same signal has the same id on every run"),
            col("ts_ns", pa.int64(), _NS, "bar start of the touch"),
            col("decision_ts_ns", pa.int64(), _NS, "when the signal is known: features use data strictly before it"),
            col("date", pa.date32(), "date", "trade date"),
            col("symbol", pa.string(), "ticker", "the underlying (SPY)"),
            col("underlying", pa.string(), "ticker", "the partition's underlying (the same as symbol)"),
            col("futures_symbol", pa.string(), "ticker", "the ES contract"),
            col("touch_id", pa.string(), "text", "the touch"),
            *_level(),
            col("direction", pa.string(), "UP|DOWN", "UP: testing resistance from below; DOWN: support from above"),
            col("distance", pa.float64(), "dollars", "|spot - level_price|, <= critical_zone"),
            col("spot", pa.float64(), "dollars", "bar close on the SPY scale"),
            *_ratio(),
        ]
        + _BARRIER
        + _TAPE
        + _FUEL
        + _APPROACH
        + _QUALITY
        + _LABEL
    ),
    sort_key=("ts_ns", "level_kind", "level_price"),
    instrument=None,
    dedup_key=("event_id",),
    description="touches in the critical zone with their physics and outcome (identity, level context, barrier, tape, fuel, approach, outcome), one row "
    "per signal",
)

LEVEL_TABLES: dict[str, TableSchema] = {
    t.name: t for t in (LEVELS, LEVEL_TOUCHES, LEVEL_PHYSICS, OUTCOME_LABELS, LEVEL_SIGNALS)
}
