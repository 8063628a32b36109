"""Arguments and settings of ``m17`` commands, checked before anything runs.

Each check returns the value the command uses or raises
:class:`~m17_platform.cli_errors.UsageError` with one line naming the argument and what
it expects (the command line prints it and exits 2). Dagster and the asset graph are
imported only by the checks that need them (the ``market_data`` resource's fields).
"""

from __future__ import annotations

import argparse
import datetime as dt

from m17_platform.cli_errors import UsageError
from m17_platform.errors import M17Error
from m17_platform.settings import DEFAULT

ALLOW_EMPTY_KEY = "replace_with_empty"
"""The ``market_data`` config key ``m17 ingest --allow-empty`` sets to true."""
KEYED_SOURCES = ("polygon", "flatfiles", "databento")
"""Sources built (and so checked for their keys) before an ingest run starts."""


def config_value(text: str, annotation=None):
    """A ``--set`` value: JSON when it parses (numbers, lists, true/false), else the string;
    always the string for a ``str`` field (``samples_dir=2024`` stays a path)."""
    import json

    if annotation is str:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def trading_day(text: str) -> dt.date:
    """``--date`` as a partition day; UsageError naming what is wrong (format, calendar, range)."""
    from m17_platform import calendar

    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--date {text!r} is not YYYY-MM-DD") from None
    sessions = DEFAULT.sessions
    if day < sessions.first_day:
        raise UsageError(f"--date {day} is before the first partition day {sessions.first_day} (sessions.first_day)")
    if day > calendar.last_calendar_day(sessions):
        raise UsageError(f"--date {day} is after the last day of the {sessions.equity_calendar} calendar")
    if not calendar.is_trading_day(day, sessions):
        raise UsageError(f"--date {day} is not an {sessions.equity_calendar} trading day, so it is not a partition")
    return day


def underlying(name: str, flag: str = "--underlying") -> str:
    """A ticker as a partition key (:func:`m17_platform.symbols.validate_underlying`); UsageError if not."""
    from m17_platform.symbols import validate_underlying

    try:
        return validate_underlying(name)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def market_data_config(args: argparse.Namespace) -> dict:
    """The run's ``market_data`` resource config from --source, --quiet, --allow-empty and --set.

    Every --set key must be a field of ``resources.market_data.MarketDataResource``, and
    the whole config must validate against it, before the run starts.

    Raises
    ------
    UsageError
        Naming a --set that is not KEY=VALUE, an unknown key (with the allowed ones), or
        a value the field does not accept.
    """
    import pydantic

    from resources.market_data import MarketDataResource

    fields = MarketDataResource.model_fields
    allowed = sorted(set(fields) | {ALLOW_EMPTY_KEY})
    config: dict = {"kind": args.source, "progress_bar": not args.quiet}
    if args.allow_empty:
        config[ALLOW_EMPTY_KEY] = True
    given: dict[str, str] = {}
    for item in args.set or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {item!r} is not KEY=VALUE")
        if key not in allowed:
            raise UsageError(f"--set {key}: unknown market_data setting; allowed: {', '.join(allowed)}")
        field = fields.get(key)
        config[key] = config_value(value, field.annotation if field is not None else None)
        given[key] = item
    try:
        MarketDataResource(**{k: v for k, v in config.items() if k in fields})
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error.get("loc") else ""
        where = f"--set {given[key]!r}" if key in given else f"market_data {key}"
        raise UsageError(f"{where}: {error['msg']}") from None
    return config


def check_source(config: dict) -> None:
    """Build a keyed source (polygon, flatfiles, databento) once before the run, so a
    missing key or DBN file is one line and exit 2 rather than a failed run."""
    from resources.market_data import MarketDataResource

    if config.get("kind") not in KEYED_SOURCES:
        return
    resource = MarketDataResource(**{k: v for k, v in config.items() if k in MarketDataResource.model_fields})
    try:
        source = resource.source()
    except (M17Error, ValueError, OSError) as exc:
        raise UsageError(f"--source {config['kind']}: {exc}") from None
    close = getattr(source, "close", None)
    if callable(close):
        close()
