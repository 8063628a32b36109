import datetime as dt

import pytest

from m17_platform.symbols import OptionId, occ_symbol, parse_occ_symbol


def test_polygon_spelling_roundtrip():
    assert occ_symbol("SPY", dt.date(2025, 11, 10), "C", 685) == "O:SPY251110C00685000"
    assert occ_symbol("VIX", dt.date(2016, 6, 8), "p", 12.5) == "O:VIX160608P00012500"
    assert parse_occ_symbol("O:SPXW231226P04750000") == OptionId("SPXW", dt.date(2023, 12, 26), "P", 4750.0)


@pytest.mark.parametrize("bad", ["SPY251110C00685000", "O:SPY2511C00685000", "O:SPY251110X00685000"])
def test_parse_rejects_non_occ(bad):
    with pytest.raises(ValueError, match="not an OCC option symbol"):
        parse_occ_symbol(bad)


def test_build_rejects_bad_fields():
    with pytest.raises(ValueError, match="right"):
        occ_symbol("SPY", dt.date(2025, 1, 1), "X", 1)
    with pytest.raises(ValueError, match="strike"):
        occ_symbol("SPY", dt.date(2025, 1, 1), "C", 1.2345)
