"""What every vendor reader returns: the raw tables it filled and the counts it flagged."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from m17_platform import schemas


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
    stats: dict[str, int]


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
