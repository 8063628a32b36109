"""The bundled real samples (``data/samples``) as a source of raw partitions.

Each :class:`SamplePartition` names a trade date, an underlying, and the sample
datasets whose rows belong to it. Rows of a dataset go to a partition when their
``underlying`` matches and their trade date is the partition's (ET calendar date of
``ts_ns``; CME trade date for futures, so the Globex evening session of 2023-12-25
lands in 2023-12-26). Rows of other dates are counted, not dropped: they belong to
another partition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import polars as pl

from m17_platform import calendar
from m17_platform.lake import PartitionRef
from m17_platform.schemas import empty_frame, table
from m17_platform.settings import DEFAULT, PROJECT_ROOT, SessionSettings, Settings
from m17_platform.sources.base import ReadResult

DEFAULT_SAMPLES_DIR = PROJECT_ROOT / "data" / "samples"


@dataclass(frozen=True)
class SampleDataset:
    """A sample file (or file pair) and the reader that normalises it."""

    name: str
    files: tuple[str, ...]
    read: Callable[[Path], ReadResult]
    description: str


def _cboe_trades(root: Path) -> ReadResult:
    from m17_platform.sources import cboe

    return cboe.read_option_trades(root / "cboe_datashop_samples" / "UnderlyingOptionsTrades_2016-06-01.csv")


def _cboe_intervals(root: Path) -> ReadResult:
    from m17_platform.sources import cboe

    return cboe.read_option_intervals(
        root / "cboe_datashop_samples" / "UnderlyingOptionsIntervals_1800sec_calcs_oi_2021-04-26.csv.gz"
    )


def _lobster_amzn(root: Path) -> ReadResult:
    from m17_platform.sources import lobster

    folder = root / "lobster_amzn_2012-06-21_level1"
    return lobster.read_lobster(
        folder / "AMZN_2012-06-21_34200000_57600000_message_1.csv.gz",
        folder / "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv.gz",
        symbol="AMZN",
        trade_date=dt.date(2012, 6, 21),
    )


def _databento_esh4(root: Path) -> ReadResult:
    from m17_platform.sources import databento

    return databento.read_mbo(root / "databento_glbx_es_real" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst")


def _tda_spy(root: Path) -> ReadResult:
    from m17_platform.sources import tda

    return tda.read_chain(root / "tda_spy_option_chain_2022-05-20" / "SPY_chain_tdameritrade_2022-05-20.json.gz")


DATASETS: dict[str, SampleDataset] = {
    d.name: d
    for d in (
        SampleDataset(
            "cboe_vix_trades_2016-06-01",
            ("cboe_datashop_samples/UnderlyingOptionsTrades_2016-06-01.csv",),
            _cboe_trades,
            "Cboe DataShop VIX option trades with the NBBO at each trade",
        ),
        SampleDataset(
            "cboe_intervals_2021-04-26",
            ("cboe_datashop_samples/UnderlyingOptionsIntervals_1800sec_calcs_oi_2021-04-26.csv.gz",),
            _cboe_intervals,
            "Cboe DataShop 30-min option quotes with vendor IV, greeks and open interest (A, VIX)",
        ),
        SampleDataset(
            "lobster_amzn_2012-06-21",
            (
                "lobster_amzn_2012-06-21_level1/AMZN_2012-06-21_34200000_57600000_message_1.csv.gz",
                "lobster_amzn_2012-06-21_level1/AMZN_2012-06-21_34200000_57600000_orderbook_1.csv.gz",
            ),
            _lobster_amzn,
            "LOBSTER AMZN Nasdaq level-1 messages and book: executions and quotes",
        ),
        SampleDataset(
            "databento_esh4_2023-12-25",
            ("databento_glbx_es_real/esh4-glbx-mdp3-20231225.mbo.dbn.zst",),
            _databento_esh4,
            "Databento ES (ESH4) MBO, Globex evening session: trades and MBP-10 rebuilt from MBO",
        ),
        SampleDataset(
            "tda_spy_chain_2022-05-20",
            ("tda_spy_option_chain_2022-05-20/SPY_chain_tdameritrade_2022-05-20.json.gz",),
            _tda_spy,
            "TD Ameritrade SPY option chain snapshot with vendor IV and greeks",
        ),
    )
}


@dataclass(frozen=True)
class SamplePartition:
    """A bundled partition: trade date, underlying, and the datasets that fill it."""

    trade_date: dt.date
    underlying: str
    datasets: tuple[str, ...]

    @property
    def ref(self) -> PartitionRef:
        return PartitionRef(self.trade_date, self.underlying)


SAMPLE_PARTITIONS: tuple[SamplePartition, ...] = (
    SamplePartition(dt.date(2012, 6, 21), "AMZN", ("lobster_amzn_2012-06-21",)),
    SamplePartition(dt.date(2016, 6, 1), "VIX", ("cboe_vix_trades_2016-06-01",)),
    SamplePartition(dt.date(2021, 4, 26), "A", ("cboe_intervals_2021-04-26",)),
    SamplePartition(dt.date(2021, 4, 26), "VIX", ("cboe_intervals_2021-04-26",)),
    SamplePartition(dt.date(2022, 5, 20), "SPY", ("tda_spy_chain_2022-05-20",)),
    SamplePartition(dt.date(2023, 12, 26), "SPY", ("databento_esh4_2023-12-25",)),
)


def sample_partition(ref: PartitionRef) -> SamplePartition | None:
    """The bundled partition for ``ref``, or ``None`` if the samples have no data for it."""
    for part in SAMPLE_PARTITIONS:
        if part.ref == ref:
            return part
    return None


@lru_cache(maxsize=16)
def _read_cached(name: str, root: str, stamp: tuple[float, ...]) -> ReadResult:
    return DATASETS[name].read(Path(root))


def read_dataset(name: str, samples_dir: Path = DEFAULT_SAMPLES_DIR) -> ReadResult:
    """Read one sample dataset (cached per process while its files are unchanged).

    Raises
    ------
    FileNotFoundError
        Naming the missing sample file.
    SourceFormatError
        From the dataset's reader, naming file, line and field.
    """
    ds = DATASETS[name]
    paths = [Path(samples_dir) / f for f in ds.files]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"sample file {path} is missing (dataset {name})")
    stamp = tuple(p.stat().st_mtime_ns + p.stat().st_size for p in paths)
    return _read_cached(name, str(Path(samples_dir).resolve()), stamp)


def _trade_dates(frame: pl.DataFrame, table_name: str, sessions: SessionSettings) -> pl.Series:
    ts = frame.get_column("ts_ns")
    if table_name.startswith("futures_"):
        cache: dict[int, dt.date] = {}
        out = []
        for v in ts.to_list():
            minute = v // 60_000_000_000
            if minute not in cache:
                cache[minute] = calendar.futures_trade_date(v, sessions)
            out.append(cache[minute])
        return pl.Series("trade_date", out, dtype=pl.Date)
    return (
        pl.from_epoch(ts, time_unit="ns")
        .dt.replace_time_zone("UTC")
        .dt.convert_time_zone(sessions.timezone)
        .dt.date()
        .alias("trade_date")
    )


def stated_rate(
    ref: PartitionRef, samples_dir: Path = DEFAULT_SAMPLES_DIR, settings: Settings = DEFAULT
) -> tuple[float, str] | None:
    """The risk-free rate the samples give for a partition, as (annualised continuous
    decimal, source), or ``None`` (then the configured constant applies):

    1. a rate the partition's own vendor file states (TD Ameritrade's ``interestRate``);
    2. else the put-call-parity implied rate of the European-root option quotes the
       samples hold for that trade date (any underlying: the rate is market-wide), see
       :func:`m17_platform.greeks.parity_implied_rate`.
    """
    part = sample_partition(ref)
    if part is not None and "tda_spy_chain_2022-05-20" in part.datasets:
        from m17_platform.sources import tda

        facts = tda.read_chain_facts(Path(samples_dir) / DATASETS["tda_spy_chain_2022-05-20"].files[0])
        if facts.interest_rate is not None:
            return float(facts.interest_rate), "tda.option_chain.interestRate"
    from m17_platform.greeks import parity_implied_rate

    for sample in SAMPLE_PARTITIONS:
        if sample.trade_date != ref.trade_date:
            continue
        for name in sample.datasets:
            quotes = read_dataset(name, samples_dir).tables.get("option_quotes")
            if quotes is None or quotes.height == 0:
                continue
            european = quotes.filter(pl.col("root").is_in(list(settings.universe.european_roots)))
            rate, groups = parity_implied_rate(european, settings.rates, settings.sessions)
            if rate is not None:
                return rate, f"put_call_parity:{name} ({groups} expiry snapshots)"
    return None


@dataclass(frozen=True)
class SampleTable:
    """A raw table's rows for one partition from the samples, with counts for metadata."""

    frame: pl.DataFrame
    source: str
    stats: dict[str, int]


def load_sample_table(
    table_name: str,
    ref: PartitionRef,
    samples_dir: Path = DEFAULT_SAMPLES_DIR,
    sessions: SessionSettings = calendar.DEFAULT.sessions,
) -> SampleTable:
    """The rows of raw table ``table_name`` for partition ``ref`` from the bundled samples.

    A partition the samples do not cover, or a table none of its datasets fill, gives
    zero rows (the partition is still written, so "no data" is visible, not missing).

    Returns
    -------
    SampleTable
        ``frame`` with the table's columns; ``source`` naming the datasets; ``stats``
        with the readers' counts and ``rows_other_partitions`` (rows of the dataset
        that belong to other trade dates or underlyings).
    """
    spec = table(table_name)
    part = sample_partition(ref)
    if part is None:
        return SampleTable(empty_frame(spec), "samples:none", {"rows_other_partitions": 0})
    frames = []
    stats: dict[str, int] = {"rows_other_partitions": 0}
    for name in part.datasets:
        result = read_dataset(name, samples_dir)
        for key, value in result.stats.items():
            stats[f"{name}.{key}"] = int(value)
        frame = result.tables.get(table_name)
        if frame is None or frame.height == 0:
            continue
        mask = pl.col("underlying") == ref.underlying
        if "ts_ns" in frame.columns:
            frame = frame.with_columns(_trade_dates(frame, table_name, sessions))
            mask = mask & (pl.col("trade_date") == ref.trade_date)
            kept = frame.filter(mask).drop("trade_date")
        else:
            kept = frame.filter(mask)
        stats["rows_other_partitions"] += frame.height - kept.height
        frames.append(kept)
    if not frames:
        return SampleTable(empty_frame(spec), f"samples:{','.join(part.datasets)}", stats)
    frame = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
    return SampleTable(frame, f"samples:{','.join(part.datasets)}", stats)


class SamplesSource:
    """The bundled samples as a :class:`~m17_platform.sources.base.Source` (no key needed).

    Every raw table comes as one chunk (the samples are small). ``rates`` is the rate the
    partition's own files state, else the put-call-parity rate of the samples' European
    quotes of that date, else the configured constant (:func:`stated_rate`).
    """

    name = "samples"

    def __init__(self, samples_dir: Path = DEFAULT_SAMPLES_DIR, settings: Settings = DEFAULT) -> None:
        self.samples_dir = Path(samples_dir)
        self.settings = settings

    def tables(self) -> tuple[str, ...]:
        from m17_platform.schemas import RAW_TABLES

        return tuple(RAW_TABLES)

    def chunks(self, table_name: str, ref: PartitionRef):
        from m17_platform.sources import rates
        from m17_platform.sources.base import TableChunk

        if table_name == "rates":
            stated = stated_rate(ref, self.samples_dir, self.settings)
            if stated is not None:
                frame = rates.constant_rates(ref, self.settings.rates, rate=stated[0], source=stated[1])
                yield TableChunk(table_name, frame, {"rate_from_samples": 1})
            else:
                yield TableChunk(table_name, rates.constant_rates(ref, self.settings.rates), {"rate_from_settings": 1})
            return
        loaded = load_sample_table(table_name, ref, self.samples_dir, self.settings.sessions)
        yield TableChunk(table_name, loaded.frame, {"datasets": loaded.source, **loaded.stats})
