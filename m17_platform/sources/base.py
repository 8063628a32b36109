"""What every vendor reader returns: the raw tables it filled and the counts it flagged."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


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
