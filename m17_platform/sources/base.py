"""What every vendor reader returns: the raw tables it filled and the counts it flagged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import polars as pl

from m17_platform import schemas

if TYPE_CHECKING:
    from m17_platform.lake import PartitionRef


@dataclass(frozen=True)
class ReadResult:
    """The output of one reader call.

    Attributes
    ----------
    tables : dict[str, polars.DataFrame]
        Raw table name -> rows, each frame with exactly the table's columns
        (:mod:`m17_platform.schemas`).
    stats : dict[str, int]
        Counts of what the reader flagged (rows read, canceled prints, placeholder
        values nulled, ...), for asset metadata and quality reports.
    """

    tables: dict[str, pl.DataFrame]
    stats: dict[str, int | float | str]


def conformed_tables(tables: dict[str, pl.DataFrame], origin: str) -> dict[str, pl.DataFrame]:
    """Conform every frame to its schema (exact columns and dtypes) and sort it by the
    table's sort key (the order the lake keeps).

    Raises
    ------
    SchemaError
        Naming the table, ``origin`` and the column that does not fit.
    """
    out = {}
    for name, frame in tables.items():
        spec = schemas.table(name)
        conformed = pl.from_arrow(schemas.conform(frame, spec, origin=origin))
        out[name] = conformed.sort(list(spec.sort_key), maintain_order=True)
    return out


@dataclass(frozen=True)
class TableChunk:
    """A piece of one raw table's rows for one partition, as a streaming source yields it.

    Attributes
    ----------
    table : str
        Raw table name (:data:`m17_platform.schemas.RAW_TABLES`).
    frame : polars.DataFrame
        Rows with exactly the table's columns and dtypes (see :func:`conformed_tables`);
        chunks need not be sorted against each other: the lake sorts the partition.
    stats : dict[str, int]
        Counts this chunk adds to the partition's manifest stats (rows read, canceled
        prints, malformed lines, ...); summed over the chunks.
    """

    table: str
    frame: pl.DataFrame
    stats: dict[str, int | float | str]


class Source(Protocol):
    """What every source of raw partitions offers the raw assets (samples, synthetic,
    polygon REST, flat files, databento): the raw assets do not change with the source.

    ``name`` is recorded in each partition's manifest (``polygon.rest``,
    ``synthetic:seed=7``, ...). ``chunks`` yields the rows of one raw table for one
    partition, in chunks small enough to keep a day larger than memory streaming; a
    table the source does not fill yields nothing (the partition is written empty, so
    "no data" is visible). Errors name the file, request, row or field at fault.
    """

    name: str

    def tables(self) -> tuple[str, ...]:
        """The raw tables this source fills."""
        ...

    def chunks(self, table: str, ref: PartitionRef) -> Iterator[TableChunk]:
        """The rows of raw table ``table`` for partition ``ref``."""
        ...
