"""Trading sessions from exchange_calendars: trading days, opens, closes, early closes,
expiry instants and time to expiry.

Nothing here hard-codes a session time: regular opens and closes, holidays and half
days come from the exchange calendar (``XNYS`` for stocks and equity options, ``CMES``
for CME futures); the few product rules the calendars do not carry (Cboe index
options trading to 16:15 ET, the stock extended session, the CME pre-open) are
settings in :class:`m17_platform.settings.SessionSettings`.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd

from m17_platform.errors import CalendarError
from m17_platform.settings import DEFAULT, SessionSettings

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND


@lru_cache(maxsize=8)
def exchange_calendar(name: str, first_day: dt.date) -> xcals.ExchangeCalendar:
    """The exchange_calendars calendar ``name`` covering ``first_day`` to its default end."""
    return xcals.get_calendar(name, start=pd.Timestamp(first_day))


def _equity(settings: SessionSettings) -> xcals.ExchangeCalendar:
    return exchange_calendar(settings.equity_calendar, settings.first_day)


def _futures(settings: SessionSettings) -> xcals.ExchangeCalendar:
    return exchange_calendar(settings.futures_calendar, settings.first_day)


def _ns(ts: pd.Timestamp) -> int:
    return int(ts.value)


def is_trading_day(day: dt.date, settings: SessionSettings = DEFAULT.sessions) -> bool:
    """True if ``day`` is a session of the equity calendar (weekends and holidays are not)."""
    cal = _equity(settings)
    ts = pd.Timestamp(day)
    if ts < cal.first_session or ts > cal.last_session:
        return False
    return bool(cal.is_session(ts))


def trading_days(start: dt.date, end: dt.date, settings: SessionSettings = DEFAULT.sessions) -> list[dt.date]:
    """Equity-calendar sessions from ``start`` to ``end`` inclusive, as dates."""
    cal = _equity(settings)
    lo = max(pd.Timestamp(start), cal.first_session)
    hi = min(pd.Timestamp(end), cal.last_session)
    if lo > hi:
        return []
    return [ts.date() for ts in cal.sessions_in_range(lo, hi)]


def non_trading_weekdays(start: dt.date, end: dt.date, settings: SessionSettings = DEFAULT.sessions) -> list[dt.date]:
    """Weekdays from ``start`` to ``end`` that are not sessions (exchange holidays)."""
    sessions = set(trading_days(start, end, settings))
    out = []
    day = start
    while day <= end:
        if day.weekday() < 5 and day not in sessions:
            out.append(day)
        day += dt.timedelta(days=1)
    return out


def last_calendar_day(settings: SessionSettings = DEFAULT.sessions) -> dt.date:
    """Last day the equity calendar knows sessions for."""
    return _equity(settings).last_session.date()


def require_trading_day(day: dt.date, settings: SessionSettings = DEFAULT.sessions) -> None:
    """Raise :class:`CalendarError` naming the day if it is not a trading session."""
    if not is_trading_day(day, settings):
        raise CalendarError(f"{day.isoformat()} is not a {settings.equity_calendar} trading session")


def session_open_close_ns(day: dt.date, settings: SessionSettings = DEFAULT.sessions) -> tuple[int, int]:
    """Regular-session open and close of ``day`` (ns, UTC); early closes included.

    Raises
    ------
    CalendarError
        If ``day`` is not a trading session.
    """
    require_trading_day(day, settings)
    cal = _equity(settings)
    ts = pd.Timestamp(day)
    return _ns(cal.session_open(ts)), _ns(cal.session_close(ts))


def is_early_close(day: dt.date, settings: SessionSettings = DEFAULT.sessions) -> bool:
    """True if ``day``'s regular session closes before the calendar's regular close time."""
    require_trading_day(day, settings)
    cal = _equity(settings)
    return pd.Timestamp(day) in cal.early_closes


def _at_local(day: dt.date, wall: dt.time, settings: SessionSettings) -> int:
    local = dt.datetime.combine(day, wall, tzinfo=ZoneInfo(settings.timezone))
    return int(local.timestamp()) * NS_PER_SECOND


def session_window_ns(
    kind: str, day: dt.date, root: str | None = None, settings: SessionSettings = DEFAULT.sessions
) -> tuple[int, int]:
    """The window of ``ts_ns`` values a table of ``kind`` may hold for trade date ``day``.

    Parameters
    ----------
    kind : {'option', 'stock', 'futures'}
        ``option``: regular session, closing ``late_close_minutes`` later for roots in
        ``late_close_roots`` (Cboe index options). ``stock``: the extended session,
        ``stock_extended_open`` ET to close + ``stock_extended_after_close_minutes``.
        ``futures``: the CME session that ends on ``day`` (it opens the evening
        before), starting ``futures_preopen_minutes`` early for the pre-open.
    day : datetime.date
        Trade date (a session of the equity calendar).
    root : str, optional
        Option root, for the late-close rule.

    Returns
    -------
    (start_ns, end_ns) : tuple[int, int]
        Inclusive bounds, ns since epoch UTC.

    Raises
    ------
    CalendarError
        If ``day`` is not a session; ``ValueError`` for an unknown ``kind``.
    """
    open_ns, close_ns = session_open_close_ns(day, settings)
    minute = 60 * NS_PER_SECOND
    if kind == "option":
        if root is not None and root.upper() in settings.late_close_roots:
            close_ns += settings.late_close_minutes * minute
        return open_ns, close_ns
    if kind == "stock":
        return _at_local(day, settings.stock_extended_open, settings), close_ns + settings.stock_extended_after_close_minutes * minute
    if kind == "futures":
        f_open, f_close = futures_session_ns(day, settings)
        return f_open - settings.futures_preopen_minutes * minute, f_close
    raise ValueError(f"unknown session kind {kind!r}; expected 'option', 'stock' or 'futures'")


def futures_session_ns(day: dt.date, settings: SessionSettings = DEFAULT.sessions) -> tuple[int, int]:
    """Open and close (ns, UTC) of the CME session of trade date ``day``: it opens the
    evening before (Globex, 18:00 ET) and matching starts at the open, after the pre-open.

    Raises
    ------
    CalendarError
        If ``day`` is not a session of the futures calendar.
    """
    cal = _futures(settings)
    ts = pd.Timestamp(day)
    if not cal.is_session(ts):
        raise CalendarError(f"{day.isoformat()} is not a {settings.futures_calendar} session")
    return _ns(cal.session_open(ts)), _ns(cal.session_close(ts))


def futures_trade_date(ts_ns: int, settings: SessionSettings = DEFAULT.sessions) -> dt.date:
    """The CME trade date an instant belongs to: the evening session (and its pre-open)
    belongs to the next trade date, e.g. 2023-12-25 18:00 ET -> 2023-12-26.
    """
    cal = _futures(settings)
    minute = pd.Timestamp(ts_ns, unit="ns", tz="UTC").floor("min")
    shifted = minute + pd.Timedelta(minutes=settings.futures_preopen_minutes)
    return cal.minute_to_session(shifted, direction="next").date()


def expiry_instant_ns(expiration: dt.date, settings: SessionSettings = DEFAULT.sessions) -> int:
    """The instant an option expires: the session close of its last trading day (16:00 ET,
    earlier on half days). A non-session expiration date (the Saturday expirations OCC
    used until 2015) expires at the close of the last session before it.
    """
    cal = _equity(settings)
    ts = pd.Timestamp(expiration)
    if not cal.is_session(ts):
        ts = cal.date_to_session(ts, direction="previous")
    return _ns(cal.session_close(ts))


def time_to_expiry_years(ts_ns, expiry_ns, settings: SessionSettings = DEFAULT.sessions):
    """Time to expiry in years, ``(expiry_ns - ts_ns) / (year_days x 86400e9)``.

    Works on ints or numpy arrays (int64 ns); 0DTE trades get minutes, not zero.
    Negative values mean the contract had expired at ``ts_ns``.
    """
    return (expiry_ns - ts_ns) / (settings.year_days * NS_PER_DAY)
