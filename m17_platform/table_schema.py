"""What a lake table is (:class:`TableSchema`) and how a column is declared (:func:`col`),
apart from the tables themselves (:mod:`m17_platform.schemas`), so that tables declared
beside their domain code (:mod:`m17_platform.levels.schemas`) and the registry of every
table can both use them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

RAW = "raw"
ENRICHED = "enriched"
GOLD = "gold"
LAYERS = (RAW, ENRICHED, GOLD)


def col(name: str, dtype: pa.DataType, unit: str, description: str, nullable: bool = False) -> pa.Field:
    """One column: an Arrow field whose metadata records ``unit`` and ``description``."""
    return pa.field(name, dtype, nullable=nullable, metadata={"unit": unit, "description": description})


@dataclass(frozen=True)
class TableSchema:
    """A lake table: its Arrow schema and the facts quality checks and joins rely on.

    Attributes
    ----------
    name : str
        Table name, also the asset name and the DuckDB view name.
    layer : str
        ``raw``, ``enriched`` or ``gold``.
    schema : pyarrow.Schema
        Column names, dtypes and nullability; field metadata carries units.
    sort_key : tuple[str, ...]
        Order the lake keeps rows in (instrument, then time, then sequence).
    instrument : str | None
        Column naming the instrument, for per-instrument ordering checks.
    dedup_key : tuple[str, ...]
        Columns that identify a duplicate print / quote for the duplicate-rate check.
    required : tuple[str, ...]
        Columns that must never be null (derived from nullability).
    positive : tuple[str, ...]
        Price columns that must be > 0 where present (dollars).
    quote_pair : tuple[str, str] | None
        (bid, ask) columns for the bid <= ask rate check.
    session_kind : str | None
        Which session window bounds ``ts_ns``: ``option``, ``stock``, ``futures``
        or ``None`` (no time column to check).
    description : str
        One line for the data dictionary.
    """

    name: str
    layer: str
    schema: pa.Schema
    sort_key: tuple[str, ...]
    instrument: str | None
    dedup_key: tuple[str, ...]
    positive: tuple[str, ...] = ()
    quote_pair: tuple[str, str] | None = None
    session_kind: str | None = None
    description: str = ""
    required: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "required", tuple(f.name for f in self.schema if not f.nullable))
        names = set(self.schema.names)
        for group in (self.sort_key, self.dedup_key, self.positive, self.quote_pair or ()):
            missing = [c for c in group if c not in names]
            if missing:
                raise ValueError(f"table {self.name!r}: key columns {missing} are not in its schema")

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    def unit(self, column: str) -> str:
        """The unit recorded for ``column`` (``KeyError`` if the column does not exist)."""
        meta = self.schema.field(column).metadata or {}
        return meta.get(b"unit", b"").decode()


def _cell(text) -> str:
    """A Markdown table cell: ``|`` escaped."""
    return str(text).replace("|", "\\|")


def table_markdown(spec: TableSchema, heading: str = "##") -> list[str]:
    """One table's data-dictionary section as Markdown lines: heading (``layer.table``),
    description, sort and dedup keys, and one row per column (name, type, unit,
    nullable, description)."""
    lines = [
        f"{heading} {spec.layer}.{spec.name}",
        "",
        spec.description,
        "",
        f"Sorted by `{', '.join(spec.sort_key)}`; duplicates judged on `{', '.join(spec.dedup_key)}`.",
        "",
        "| column | type | unit | nullable | description |",
        "|---|---|---|---|---|",
    ]
    for fld in spec.schema:
        meta = {k.decode(): v.decode() for k, v in (fld.metadata or {}).items()}
        lines.append(f"| `{fld.name}` | {_cell(fld.type)} | {_cell(meta.get('unit', ''))} | "
                     f"{'yes' if fld.nullable else 'no'} | {_cell(meta.get('description', ''))} |")
    lines.append("")
    return lines
