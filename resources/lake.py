"""The lake and its DuckDB views as Dagster resources (thin wrappers over m17_platform.lake)."""

from dagster import ConfigurableResource

from m17_platform.lake import Lake
from m17_platform.settings import DEFAULT


class LakeResource(ConfigurableResource):
    """Where raw, enriched and gold partitions live, and where reports are written.

    root : lake root (local path); default ``data/lake`` in the project.
    reports_root : HTML reports folder; default ``data/reports``.
    """

    root: str = str(DEFAULT.lake.root)
    reports_root: str = str(DEFAULT.lake.reports_root)

    def lake(self) -> Lake:
        return Lake(self.root)


class DuckDBResource(ConfigurableResource):
    """A DuckDB connection with a view per lake table (hive keys ``trade_date``, ``underlying``).

    database : DuckDB database file, or ``:memory:`` (views are recreated on each connect).
    """

    lake_root: str = str(DEFAULT.lake.root)
    database: str = ":memory:"

    def connect(self):
        return Lake(self.lake_root).duckdb(self.database)
