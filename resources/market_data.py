"""Where raw rows come from: the source of a run, selected by resource config.

``kind`` is one of :data:`SOURCE_KINDS`; empty means ``$M17_SOURCE``, else ``samples``
(resolved when a run starts, never at import). The raw assets do not change with the
source: each asks :meth:`MarketDataResource.source` for a
:class:`~m17_platform.sources.base.Source` and streams its chunks into the lake
(:func:`m17_platform.ingest.ingest_table`). Keys come from the environment only.
"""

import os
from typing import Literal
from contextlib import contextmanager
from dataclasses import replace

from dagster import ConfigurableResource
from pydantic import Field

from m17_platform.capture.config import landing_root
from m17_platform.lake import Lake, PartitionRef
from m17_platform.settings import DEFAULT, Settings
from m17_platform.sources.base import Source
from m17_platform.sources.samples import DEFAULT_SAMPLES_DIR, SamplesSource

SOURCE_KINDS = ("samples", "synthetic", "polygon", "flatfiles", "databento", "capture")
SOURCE_ENV = "M17_SOURCE"


class MarketDataResource(ConfigurableResource):
    """Fills raw tables for a partition from the configured source.

    kind : ``samples`` (bundled real samples, no key), ``synthetic`` (the seeded SPY
        day), ``polygon`` (REST, ``POLYGON_API_KEY``), ``flatfiles`` (Polygon/Massive S3
        flat files, ``POLYGONIO_ACCESS_KEY_ID`` / ``POLYGONIO_SECRET_ACCESS_KEY``),
        ``databento`` (DBN files, or the Historical API with ``DATABENTO_API_KEY``),
        ``capture`` (the micro-batches ``m17 capture`` landed under ``landing_root``,
        each batch once); empty: ``$M17_SOURCE``, else ``samples``.
    landing_root : the capture's landing zone for kind=capture (empty: ``$M17_LANDING_ROOT``,
        else ``CaptureSettings.landing_root``).
    samples_dir : folder of the bundled samples.
    progress_bar : show a progress bar (rows) on stderr while a table streams in.
    replace_with_empty : let zero rows replace a partition holding rows (``m17 ingest --allow-empty``).
    """

    kind: Literal["", "samples", "synthetic", "polygon", "flatfiles", "databento", "capture"] = Field(default="", description="source of the run: " + ", ".join(SOURCE_KINDS) + " (empty: $M17_SOURCE or samples)")
    samples_dir: str = str(DEFAULT_SAMPLES_DIR)
    synthetic_seed: int | None = Field(default=None, description="seed of the synthetic day (default SyntheticSettings.seed)")
    synthetic_scale: float = Field(default=1.0, description="row counts of the synthetic day times this (1.0: 20M option quotes)")
    databento_files: list[str] = Field(
        default_factory=list,
        description="DBN files (zstd or plain, any schema) for kind=databento; empty: the Historical API with $DATABENTO_API_KEY",
    )
    landing_root: str = Field(default="", description="capture landing zone for kind=capture (empty: $M17_LANDING_ROOT or data/landing)")
    progress_bar: bool = False
    replace_with_empty: bool = Field(
        default=False,
        description="let a table the source provides with zero rows replace a partition that has rows "
        "(otherwise the run fails and nothing is replaced)",
    )
    risk_free_rate: float = Field(
        default=DEFAULT.rates.risk_free_rate,
        description="constant risk-free rate (annualised, continuously compounded decimal) where the source states none",
    )

    def settings(self) -> Settings:
        """The platform settings with this run's overrides (the constant rate)."""
        return replace(DEFAULT, rates=replace(DEFAULT.rates, risk_free_rate=self.risk_free_rate))

    def resolved_kind(self) -> str:
        """The run's source kind: config, else ``$M17_SOURCE``, else ``samples``.

        Raises
        ------
        ValueError
            For a kind that is not one of :data:`SOURCE_KINDS`.
        """
        kind = (self.kind or os.environ.get(SOURCE_ENV) or "samples").strip().lower()
        if kind not in SOURCE_KINDS:
            raise ValueError(f"unknown source kind {kind!r} (config market_data.kind or ${SOURCE_ENV}); expected one of {SOURCE_KINDS}")
        return kind

    def source(self, lake: Lake | None = None) -> Source:
        """The :class:`~m17_platform.sources.base.Source` of this run (``lake``: where
        kind=capture reads back what it landed before)."""
        kind = self.resolved_kind()
        settings = self.settings()
        if kind == "capture":
            from m17_platform.capture.compaction import LandingSource

            if lake is None:
                raise ValueError("source kind 'capture' lands into a lake: pass the run's lake")
            return LandingSource(landing_root(self.landing_root), lake, chunk_rows=settings.ingest.chunk_rows)
        if kind == "samples":
            return SamplesSource(self.samples_dir, settings)
        if kind == "synthetic":
            from m17_platform.sources.synthetic import SyntheticSource

            synthetic = settings.synthetic.scaled(self.synthetic_scale)
            return SyntheticSource(
                replace(synthetic, seed=self.synthetic_seed) if self.synthetic_seed is not None else synthetic,
                chunk_rows=settings.ingest.chunk_rows,
                rates=settings.rates,
                sessions=settings.sessions,
                universe=settings.universe,
            )
        if kind == "polygon":
            from m17_platform.sources.polygon import PolygonRestSource

            return PolygonRestSource.from_env(settings)
        if kind == "flatfiles":
            from m17_platform.sources.flatfiles import FlatFilesSource

            return FlatFilesSource.from_env(settings)
        if kind == "databento":
            from m17_platform.sources.databento import DatabentoSource

            if self.databento_files:
                return DatabentoSource(self.databento_files, settings=settings)
            return DatabentoSource.from_env(settings=settings)
        raise ValueError(f"source kind {kind!r} is not wired yet")

    @contextmanager
    def progress(self, table_name: str, ref: PartitionRef):
        """A callable taking each chunk's row count (a tqdm bar when ``progress_bar``), or None."""
        if not self.progress_bar:
            yield None
            return
        from tqdm import tqdm

        with tqdm(desc=f"{table_name} {ref}", unit=" rows", unit_scale=True, leave=True) as bar:
            yield bar.update
