"""Where raw rows come from: the source of a run, selected by resource config.

``kind`` is ``samples`` (the bundled real samples, no key needed). The vendor
sources (polygon, flat files, databento, synthetic) plug in here: the raw assets do not
change with the source.
"""

import datetime as dt

from dagster import ConfigurableResource
from pydantic import Field

from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT, RatesSettings
from m17_platform.sources import rates, samples

SOURCE_KINDS = ("samples",)


class MarketDataResource(ConfigurableResource):
    """Fills raw tables for a partition from the configured source.

    kind : source of the run (``samples``).
    samples_dir : folder of the bundled samples.
    risk_free_rate : constant risk-free rate for the ``rates`` table (annualised,
        continuously compounded decimal) until a Treasury curve is configured.
    """

    kind: str = Field(default="samples", description="source of the run: " + ", ".join(SOURCE_KINDS))
    samples_dir: str = str(samples.DEFAULT_SAMPLES_DIR)
    risk_free_rate: float = DEFAULT.rates.risk_free_rate

    def load(self, table_name: str, trade_date: dt.date, underlying: str) -> samples.SampleTable:
        """Rows of ``table_name`` for one partition, with their source and counts."""
        ref = PartitionRef(trade_date, underlying)
        if table_name == "rates":
            settings = RatesSettings(risk_free_rate=self.risk_free_rate)
            stated = samples.stated_rate(ref, self.samples_dir) if self.kind == "samples" else None
            if stated is not None:
                frame = rates.constant_rates(ref, settings, rate=stated[0], source=stated[1])
                return samples.SampleTable(frame, stated[1], {})
            return samples.SampleTable(rates.constant_rates(ref, settings), "settings.rates.constant", {})
        if self.kind == "samples":
            return samples.load_sample_table(table_name, ref, self.samples_dir)
        raise ValueError(f"unknown source kind {self.kind!r}; expected one of {SOURCE_KINDS}")
