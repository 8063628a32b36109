"""The gold flow tables of one partition, from its enriched frames: one function per table
(what each Dagster asset calls) and :func:`gold_tables` for all of them at once (what a
benchmark or a notebook calls on a day's frames).

Every function is pure: polars DataFrames and a :class:`~m17_platform.settings.Settings`
in, DataFrames with the gold schemas and counts for the manifest out.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from m17_platform.flow.bars import bars
from m17_platform.flow.classifiers import flow_alerts, signal_presets, sweep_mask
from m17_platform.flow.gamma import gamma_exposure
from m17_platform.flow.offexchange import off_exchange_events, off_exchange_prints
from m17_platform.flow.packets import flow_packets, packet_table
from m17_platform.flow.prints import option_flow_prints
from m17_platform.flow.windows import flow_windows, window_artifact
from m17_platform.schemas import (
    BARS,
    FLOW_ALERTS,
    FLOW_PACKETS,
    FLOW_WINDOWS,
    FUTURES_TRADES_ENRICHED,
    GAMMA_EXPOSURE,
    OFF_EXCHANGE_EVENTS,
    OFF_EXCHANGE_PRINTS,
    OPTION_CONTRACTS,
    OPTION_QUOTE_GREEKS,
    OPTION_TRADE_GREEKS,
    OPTION_TRADES_ENRICHED,
    OPTION_VENDOR_GREEKS,
    STOCK_QUOTES,
    STOCK_TRADES_ENRICHED,
    empty_frame,
)
from m17_platform.schemas import table as table_spec
from m17_platform.settings import DEFAULT, Settings

INPUTS: dict[str, tuple[str, ...]] = {
    FLOW_WINDOWS.name: (OPTION_TRADES_ENRICHED.name, OPTION_TRADE_GREEKS.name),
    FLOW_PACKETS.name: (OPTION_TRADES_ENRICHED.name, OPTION_TRADE_GREEKS.name),
    FLOW_ALERTS.name: (OPTION_TRADES_ENRICHED.name, OPTION_TRADE_GREEKS.name),
    GAMMA_EXPOSURE.name: (OPTION_TRADES_ENRICHED.name, OPTION_TRADE_GREEKS.name, OPTION_VENDOR_GREEKS.name,
                          OPTION_QUOTE_GREEKS.name, OPTION_CONTRACTS.name),
    OFF_EXCHANGE_PRINTS.name: (STOCK_TRADES_ENRICHED.name,),
    OFF_EXCHANGE_EVENTS.name: (OFF_EXCHANGE_PRINTS.name, STOCK_QUOTES.name),
    BARS.name: (STOCK_TRADES_ENRICHED.name, FUTURES_TRADES_ENRICHED.name, OPTION_TRADES_ENRICHED.name),
}
"""The tables each gold table is built from, in the order its builder takes them."""


def packet_presets(table: pl.DataFrame, settings: Settings = DEFAULT) -> pl.Series:
    """The signal presets each packet passes: a packet is a sweep / ISO when it
    classifies as a sweep or a print carries an ISO condition, and its NBBO is missing or
    stale when fewer than ``ClassifierSettings.min_nbbo_coverage`` of its prints have a
    fresh one (``nbbo_fresh_share``)."""
    frame = table.with_columns(
        (sweep_mask(settings) | pl.col("iso")).alias("is_sweep"),
        (pl.col("nbbo_fresh_share") < settings.classifiers.min_nbbo_coverage).alias("nbbo_stale"),
    )
    return signal_presets(frame, settings)


def windows_from_prints(prints: pl.DataFrame, stats: dict, settings: Settings = DEFAULT,
                        *, now_ns: int | None = None) -> tuple[pl.DataFrame, dict, str]:
    """(``flow_windows`` rows, manifest counts, M17's plain-text window artifact) from
    :func:`.prints.option_flow_prints` output and its counts."""
    windows = flow_windows(prints, settings)
    return windows, dict(stats), window_artifact(windows, settings, now_ns=now_ns)


def packets_from_table(table: pl.DataFrame, stats: dict, settings: Settings = DEFAULT) -> tuple[pl.DataFrame, dict]:
    """(``flow_packets`` rows, manifest counts) from :func:`.packets.packet_table` output."""
    packets = flow_packets(table, packet_presets(table, settings))
    return packets, {**stats, **_preset_counts(packets)}


def alerts_from_prints(prints: pl.DataFrame, table: pl.DataFrame, stats: dict, trade_date: dt.date,
                       settings: Settings = DEFAULT) -> tuple[pl.DataFrame, dict]:
    """(``flow_alerts`` rows, manifest counts per classifier and preset) from the prints
    and their packet table."""
    alerts = flow_alerts(prints, table, trade_date, settings)
    counts = {f"classifier/{k}": v for k, v in _counts(alerts.get_column("classifier"))}
    return alerts, {**stats, **counts, **_preset_counts(alerts)}


def gamma_from_prints(prints: pl.DataFrame, stats: dict, vendor: pl.DataFrame, quote_greeks: pl.DataFrame,
                      contracts: pl.DataFrame, trade_date: dt.date, underlying: str,
                      settings: Settings = DEFAULT) -> tuple[pl.DataFrame, dict]:
    """(``gamma_exposure`` rows, manifest counts per source) from the prints."""
    frame = gamma_exposure(prints, trade_date, underlying, vendor=vendor, quote_greeks=quote_greeks,
                           contracts=contracts, settings=settings)
    totals = frame.filter(pl.col("grain") == "total")
    counts = {f"instants/{k}": v for k, v in _counts(totals.get_column("source"))}
    counts["prints_without_iv"] = int(prints.get_column("iv").null_count()) if prints.height else 0
    return frame, {**stats, **counts}


def build_flow_windows(enriched: pl.DataFrame, greeks: pl.DataFrame, settings: Settings = DEFAULT,
                       *, now_ns: int | None = None) -> tuple[pl.DataFrame, dict, str]:
    """(``flow_windows`` rows, manifest counts, M17's plain-text window artifact) of a
    partition's ``option_trades_enriched`` and ``option_trade_greeks``."""
    prints, stats = option_flow_prints(enriched, greeks, settings)
    return windows_from_prints(prints, stats, settings, now_ns=now_ns)


def build_flow_packets(enriched: pl.DataFrame, greeks: pl.DataFrame, settings: Settings = DEFAULT
                       ) -> tuple[pl.DataFrame, dict]:
    """(``flow_packets`` rows, manifest counts)."""
    prints, stats = option_flow_prints(enriched, greeks, settings)
    return packets_from_table(packet_table(prints, settings), stats, settings)


def build_flow_alerts(enriched: pl.DataFrame, greeks: pl.DataFrame, trade_date: dt.date,
                      settings: Settings = DEFAULT) -> tuple[pl.DataFrame, dict]:
    """(``flow_alerts`` rows, manifest counts per classifier and preset)."""
    prints, stats = option_flow_prints(enriched, greeks, settings)
    return alerts_from_prints(prints, packet_table(prints, settings), stats, trade_date, settings)


def build_gamma_exposure(enriched: pl.DataFrame, greeks: pl.DataFrame, vendor: pl.DataFrame, quote_greeks: pl.DataFrame,
                         contracts: pl.DataFrame, trade_date: dt.date, underlying: str,
                         settings: Settings = DEFAULT) -> tuple[pl.DataFrame, dict]:
    """(``gamma_exposure`` rows, manifest counts per source)."""
    prints, stats = option_flow_prints(enriched, greeks, settings)
    return gamma_from_prints(prints, stats, vendor, quote_greeks, contracts, trade_date, underlying, settings)


SNAPSHOT_QUOTE_GREEKS_COLUMNS = ["option_symbol", "ts_ns", "iv", "underlying_price", "model", "rate", "dividend_yield"]
"""The ``option_quote_greeks`` columns :func:`m17_platform.flow.gamma.open_interest_panel` reads."""


def snapshot_quote_greeks(batches, vendor: pl.DataFrame) -> pl.DataFrame:
    """The ``option_quote_greeks`` rows at the vendor's open-interest snapshots, from the
    partition's quote greeks given in batches (a day of quotes never in memory at once).

    Parameters
    ----------
    batches : iterable of polars.DataFrame
        ``option_quote_greeks`` with at least :data:`SNAPSHOT_QUOTE_GREEKS_COLUMNS`.
    vendor : polars.DataFrame
        ``option_vendor_greeks`` rows; only those with ``open_interest`` matter.

    Returns
    -------
    polars.DataFrame
        :data:`SNAPSHOT_QUOTE_GREEKS_COLUMNS` of the quotes at the same (option_symbol,
        ts_ns) as an open-interest row; empty when the vendor has no open interest.
    """
    keys = vendor.filter(pl.col("open_interest").is_not_null()).select("option_symbol", "ts_ns").unique()
    frames = [b.select(SNAPSHOT_QUOTE_GREEKS_COLUMNS).join(keys, on=["option_symbol", "ts_ns"], how="semi")
              for b in batches] if keys.height else []
    if not frames:
        return pl.DataFrame(schema={c: dt for c, dt in zip(SNAPSHOT_QUOTE_GREEKS_COLUMNS, (
            pl.String, pl.Int64, pl.Float64, pl.Float64, pl.String, pl.Float64, pl.Float64))})
    return pl.concat(frames)


def build_off_exchange_prints(stock_enriched: pl.DataFrame, settings: Settings = DEFAULT) -> tuple[pl.DataFrame, dict]:
    """(``off_exchange_prints`` rows, manifest counts)."""
    frame = off_exchange_prints(stock_enriched, settings)
    return frame, {"prints": frame.height, "off_exchange": int(frame.get_column("off_exchange").sum() or 0)}


def build_off_exchange_events(prints: pl.DataFrame, stock_quotes: pl.DataFrame, settings: Settings = DEFAULT
                              ) -> tuple[pl.DataFrame, dict]:
    """(``off_exchange_events`` rows, manifest counts incl. cooldown suppressions)."""
    return off_exchange_events(prints, stock_quotes, settings)


def build_bars(stock_enriched: pl.DataFrame, futures_enriched: pl.DataFrame, option_enriched: pl.DataFrame,
               settings: Settings = DEFAULT) -> tuple[pl.DataFrame, dict]:
    """(``bars`` rows, manifest counts per kind)."""
    frame = bars(stock_enriched, futures_enriched, option_enriched, settings)
    return frame, {f"bars/{k}": v for k, v in _counts(frame.get_column("kind"))}


def _counts(values: pl.Series) -> list[tuple[object, int]]:
    """(value, rows) per distinct value, sorted by value: manifest counts in the same order
    on every run (``value_counts`` lists them in any order)."""
    return sorted(((k, int(v)) for k, v in values.value_counts().iter_rows()), key=lambda r: (r[0] is None, r[0]))


def _preset_counts(frame: pl.DataFrame) -> dict:
    if frame.height == 0:
        return {}
    return {f"preset/{k}": v for k, v in _counts(frame.get_column("presets").explode().drop_nulls())}


@dataclass
class GoldResult:
    """Every gold flow table of a partition.

    tables : table name -> rows (the gold schemas).
    stats : table name -> manifest counts.
    extras : table name -> {file name: text} written beside the Parquet (``windows.txt``).
    seconds : table name -> wall time of its builder (s); ``option_prints_and_packets``
        the shared preparation (prints with greeks, packet table).
    """

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    stats: dict[str, dict] = field(default_factory=dict)
    extras: dict[str, dict[str, str]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def gold_tables(trade_date: dt.date, underlying: str, frames: Mapping[str, pl.DataFrame],
                settings: Settings = DEFAULT) -> GoldResult:
    """All gold flow tables of one partition from its enriched (and a few raw) frames.

    Parameters
    ----------
    trade_date : datetime.date
    underlying : str
    frames : mapping of table name -> polars.DataFrame
        Any of ``option_trades_enriched``, ``option_trade_greeks``,
        ``stock_trades_enriched``, ``futures_trades_enriched``, ``stock_quotes``,
        ``option_vendor_greeks``, ``option_quote_greeks``, ``option_contracts``; a
        missing table counts as empty.
    settings : Settings

    Returns
    -------
    GoldResult

    Raises
    ------
    CalendarError
        If there are option prints and ``trade_date`` is not a session.
    """
    def get(name: str) -> pl.DataFrame:
        return frames[name] if name in frames else empty_frame(table_spec(name))

    out = GoldResult()

    def run(name: str, fn, *args):
        started = time.perf_counter()
        result = fn(*args)
        out.seconds[name] = time.perf_counter() - started
        out.tables[name] = result[0]
        out.stats[name] = result[1]
        if len(result) > 2:
            out.extras[name] = {settings.flow.artifact_name: result[2]}

    enriched = get(OPTION_TRADES_ENRICHED.name)
    started = time.perf_counter()
    prints, stats = option_flow_prints(enriched, get(OPTION_TRADE_GREEKS.name), settings)
    table = packet_table(prints, settings)
    out.seconds["option_prints_and_packets"] = time.perf_counter() - started
    run(FLOW_WINDOWS.name, windows_from_prints, prints, stats, settings)
    run(FLOW_PACKETS.name, packets_from_table, table, stats, settings)
    run(FLOW_ALERTS.name, alerts_from_prints, prints, table, stats, trade_date, settings)
    run(GAMMA_EXPOSURE.name, gamma_from_prints, prints, stats, get(OPTION_VENDOR_GREEKS.name),
        get(OPTION_QUOTE_GREEKS.name), get(OPTION_CONTRACTS.name), trade_date, underlying, settings)
    run(OFF_EXCHANGE_PRINTS.name, build_off_exchange_prints, get(STOCK_TRADES_ENRICHED.name), settings)
    run(OFF_EXCHANGE_EVENTS.name, build_off_exchange_events, out.tables[OFF_EXCHANGE_PRINTS.name],
        get(STOCK_QUOTES.name), settings)
    run(BARS.name, build_bars, get(STOCK_TRADES_ENRICHED.name), get(FUTURES_TRADES_ENRICHED.name), enriched, settings)
    return out
