import datetime as dt

import pandas as pd
import pytest

from m17_platform import calendar
from m17_platform.errors import CalendarError


def _utc(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value


def test_weekends_and_holidays_are_not_trading_days():
    assert calendar.is_trading_day(dt.date(2012, 6, 21))
    assert not calendar.is_trading_day(dt.date(2016, 6, 4))  # Saturday
    assert not calendar.is_trading_day(dt.date(2023, 12, 25))  # Christmas
    assert not calendar.is_trading_day(dt.date(2022, 6, 20))  # Juneteenth, first observed 2022
    days = calendar.trading_days(dt.date(2023, 12, 22), dt.date(2024, 1, 2))
    assert days == [dt.date(2023, 12, 22), dt.date(2023, 12, 26), dt.date(2023, 12, 27),
                    dt.date(2023, 12, 28), dt.date(2023, 12, 29), dt.date(2024, 1, 2)]


def test_regular_and_early_close():
    open_ns, close_ns = calendar.session_open_close_ns(dt.date(2016, 6, 1))
    assert open_ns == _utc("2016-06-01 13:30") and close_ns == _utc("2016-06-01 20:00")
    # day after Thanksgiving closes at 13:00 ET
    _, close_ns = calendar.session_open_close_ns(dt.date(2023, 11, 24))
    assert close_ns == _utc("2023-11-24 18:00")
    assert calendar.is_early_close(dt.date(2023, 11, 24))
    with pytest.raises(CalendarError, match="2023-12-25 is not a XNYS trading session"):
        calendar.session_open_close_ns(dt.date(2023, 12, 25))


def test_session_windows_by_kind():
    day = dt.date(2016, 6, 1)
    assert calendar.session_window_ns("option", day, "VIX") == (_utc("2016-06-01 13:30"), _utc("2016-06-01 20:15"))
    assert calendar.session_window_ns("option", day, "A") == (_utc("2016-06-01 13:30"), _utc("2016-06-01 20:00"))
    assert calendar.session_window_ns("stock", day) == (_utc("2016-06-01 08:00"), _utc("2016-06-02 00:00"))
    start, end = calendar.session_window_ns("futures", dt.date(2023, 12, 26))
    assert start == _utc("2023-12-25 22:00")  # Globex reopens 18:00 ET, pre-open an hour earlier
    with pytest.raises(ValueError, match="unknown session kind"):
        calendar.session_window_ns("crypto", day)


def test_cme_evening_session_belongs_to_next_trade_date():
    assert calendar.futures_trade_date(_utc("2023-12-25 22:00")) == dt.date(2023, 12, 26)
    assert calendar.futures_trade_date(_utc("2023-12-25 23:59:59")) == dt.date(2023, 12, 26)
    assert calendar.futures_trade_date(_utc("2023-12-26 15:00")) == dt.date(2023, 12, 26)


def test_expiry_instant_and_time_to_expiry():
    # regular expiry: 16:00 ET; half day: 13:00 ET; OCC's old Saturday expiry: Friday's close
    assert calendar.expiry_instant_ns(dt.date(2022, 5, 20)) == _utc("2022-05-20 20:00")
    assert calendar.expiry_instant_ns(dt.date(2023, 11, 24)) == _utc("2023-11-24 18:00")
    assert calendar.expiry_instant_ns(dt.date(2012, 6, 23)) == _utc("2012-06-22 20:00")
    # a 0DTE trade at 15:30 ET has 30 minutes left, not zero
    t = calendar.time_to_expiry_years(_utc("2022-05-20 19:30"), calendar.expiry_instant_ns(dt.date(2022, 5, 20)))
    assert t == pytest.approx(30 / (365 * 24 * 60), rel=1e-12)
