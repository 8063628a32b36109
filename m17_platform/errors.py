"""Errors the domain raises. Each names where the bad input is: file, line, field."""

from __future__ import annotations


class M17Error(Exception):
    """Base class for every error the platform raises on purpose."""


class SourceFormatError(M17Error, ValueError):
    """A source file has a row the reader cannot accept.

    Attributes
    ----------
    path : str
        The file.
    line : int | None
        1-based line (text files) or record number (binary files), when known.
    field : str | None
        The offending field / column.
    reason : str
        What is wrong.
    """

    def __init__(self, path: str, line: int | None, field: str | None, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = reason
        where = self.path
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {reason}")


class SchemaError(M17Error, ValueError):
    """Rows do not fit a table's schema (missing column, bad dtype, null in a required column)."""

    def __init__(self, table: str, origin: str, reason: str) -> None:
        self.table = table
        self.origin = origin
        self.reason = reason
        super().__init__(f"table {table!r} from {origin}: {reason}")


class LakeError(M17Error, RuntimeError):
    """A lake read or write failed (missing partition, checksum mismatch, failed rename)."""


class CalendarError(M17Error, ValueError):
    """A date is not a trading session, or a time lies outside every session."""
