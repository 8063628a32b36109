"""How the ``m17`` command line reports an error: one line, and an exit status.

Every command runs inside :func:`report`'s caller (``m17_platform.cli.main``): an
exception a user can fix (a bad file, argument or setting) becomes one line on stderr
naming the file, row or field and what was expected, with exit status 2; anything else
is a bug and becomes one line with exit status 1. ``m17 --debug ...`` re-raises instead
(the full traceback). This module imports neither Dagster nor pydantic: it recognises
their errors only when the command already imported them.
"""

from __future__ import annotations

import argparse
import re
import sys

from m17_platform.errors import M17Error

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


class UsageError(M17Error, ValueError):
    """A command-line argument or setting is not what the command accepts (exit 2)."""


class OneLineParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors are one line (``m17 eval: argument what: ...``), exit 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _pydantic_line(exc) -> str:
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or exc.title
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{exc.title} {where}: {first['msg']}, got {first.get('input')!r}{more}"


def _dagster_line(exc) -> str | None:
    errors = sys.modules.get("dagster._core.errors")
    if errors is None:
        return None
    if isinstance(exc, errors.DagsterInvalidConfigError):
        reasons = [_first_line(e.message) for e in exc.errors] or [_first_line(str(exc))]
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        return f"invalid run config: {reasons[0]}{more}"
    if isinstance(exc, (errors.DagsterUnknownPartitionError, errors.DagsterInvalidSubsetError)):
        return _first_line(str(exc))
    return None


def describe(exc: BaseException) -> tuple[str, int]:
    """The one line and exit status for ``exc``.

    Returns
    -------
    (str, int)
        For an :class:`~m17_platform.errors.M17Error` (bad file, argument, setting): its
        message's first line and 2. For an ``OSError`` about a path: ``PATH: reason``
        and 2; other ``OSError`` (network, disk): its message and 1. For a pydantic
        validation error or a Dagster config / partition error: the field and what it
        expects, and 2. A plain ``ValueError`` (what the platform's functions raise, by
        their docstrings, naming a bad value): its message and 2. Anything else is a
        bug: ``unexpected TypeName: message`` and 1.
    """
    if isinstance(exc, M17Error):
        return _first_line(str(exc)), EXIT_BAD_INPUT
    if isinstance(exc, OSError):
        if exc.filename is not None:
            return f"{exc.filename}: {exc.strerror or _first_line(str(exc))}", EXIT_BAD_INPUT
        return _first_line(str(exc)) or type(exc).__name__, EXIT_FAILED
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        return _pydantic_line(exc), EXIT_BAD_INPUT
    line = _dagster_line(exc)
    if line is not None:
        return line, EXIT_BAD_INPUT
    if type(exc) is ValueError:
        # the platform's functions document a plain ValueError naming the bad value
        # (PartitionRef.parse, DatabentoSource, capture_settings): bad input
        return _first_line(str(exc)) or "ValueError", EXIT_BAD_INPUT
    return f"unexpected {type(exc).__name__}: {_first_line(str(exc))} (a bug: rerun with m17 --debug for the traceback)", EXIT_FAILED


def report(exc: BaseException, prog: str) -> int:
    """Print ``exc`` as one line (``PROG: ...``) on stderr; return the exit status."""
    line, status = describe(exc)
    print(f"{prog}: {line}", file=sys.stderr, flush=True)
    return status


def step_failure_cause(error) -> str:
    """The first line of the innermost cause of a Dagster step failure, ``ClassName: message``."""
    while error.cause is not None:
        error = error.cause
    line = next((x.strip() for x in error.message.splitlines() if x.strip()), error.cls_name or "")
    return re.sub(r"^(?:[A-Za-z_][\w]*\.)+(\w+): ", r"\1: ", line)
