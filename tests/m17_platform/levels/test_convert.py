"""ES <-> SPY: the one conversion function and the ratio measured from the past only."""

import numpy as np
import polars as pl
import pytest

from m17_platform.levels.convert import MEASURED, SETTINGS, convert, es_mid, measured_ratios, spy_mid
from m17_platform.levels.settings import LevelSettings, split_settings
from m17_platform.settings import DEFAULT, Settings


def test_convert_both_ways_on_scalars_arrays_and_expressions():
    assert convert(6800.0, 10.0, to="spy") == 680.0
    assert convert(680.0, 10.0, to="es") == 6800.0
    np.testing.assert_array_equal(
        convert(np.array([6800.0, 4805.0]), np.array([10.0, 10.01]), to="spy"), np.array([680.0, 4805.0 / 10.01])
    )
    frame = pl.DataFrame({"p": [6800.0], "r": [10.0]})
    assert frame.select(convert(pl.col("p"), pl.col("r"), to="spy")).item() == 680.0
    with pytest.raises(ValueError, match="to must be 'spy' or 'es'"):
        convert(1.0, 10.0, to="SPY")


def _es_spy(kit, start, end, es_mid_value, spy_mids):
    """ES book rows every second at a fixed mid and SPY quotes every second (one mid each)."""
    ts = list(range(start, end, kit.NS))
    half = 0.25
    book = kit.book([dict(ts_ns=t, bids=[(es_mid_value - half, 10)], asks=[(es_mid_value + half, 10)]) for t in ts])
    return book, kit.spy_quotes(ts, spy_mids(ts))


def test_the_ratio_is_the_median_of_past_samples_and_ignores_the_future(kit):
    t0 = kit.at(10, 0)
    jump = kit.at(10, 20)
    book, quotes = _es_spy(kit, t0, kit.at(10, 40), 6805.0, lambda ts: [680.0 if t < jump else 681.0 for t in ts])
    es, spy = es_mid(book, kit.ES), spy_mid(quotes, "SPY")
    s = LevelSettings()
    instants = np.array([kit.at(10, 0, 20), kit.at(10, 10), jump, kit.at(10, 26)])
    out = measured_ratios(instants, es, spy, 10.0, s)
    # 10:00:20: 19 samples (10:00:01 .. 10:00:19) < ratio_min_samples -> the settings ratio
    assert out.row(0) == (kit.at(10, 0, 20), 10.0, SETTINGS, 19)
    # 10:10: 599 samples of 6805 / 680
    assert out.row(1) == (kit.at(10, 10), 6805.0 / 680.0, MEASURED, 599)
    # 10:20: the quote at 10:20:00 itself is not before the instant: still 6805 / 680
    assert out.item(2, "es_spy_ratio") == 6805.0 / 680.0
    # 10:26: 241 old samples (10:16:00 .. 10:20:00) and 359 new: the median is the new ratio
    assert out.item(3, "es_spy_ratio") == 6805.0 / 681.0 and out.item(3, "ratio_samples") == 600
    # the ratio at 10:20 is the same when nothing from 10:20 on exists
    cut = measured_ratios(
        instants[:3],
        es_mid(book.filter(pl.col("ts_ns") < jump), kit.ES),
        spy_mid(quotes.filter(pl.col("ts_ns") < jump), "SPY"),
        10.0,
        s,
    )
    assert cut.get_column("es_spy_ratio").to_list() == out.get_column("es_spy_ratio").to_list()[:3]


def test_without_spy_quotes_the_settings_ratio_is_used_and_named(kit):
    book, _ = _es_spy(kit, kit.at(10, 0), kit.at(10, 5), 6805.0, lambda ts: [680.0] * len(ts))
    out = measured_ratios(np.array([kit.at(10, 4)]), es_mid(book, kit.ES), spy_mid(None, "SPY"), 10.0, LevelSettings())
    assert out.row(0) == (kit.at(10, 4), 10.0, SETTINGS, 0)


def test_stale_or_crossed_quotes_make_no_sample(kit):
    t = kit.at(10, 0)
    # one ES row, then nothing for two minutes: samples older than ratio_max_quote_age_seconds are dropped
    book = kit.book(
        [
            dict(ts_ns=t, bids=[(6804.75, 1)], asks=[(6805.25, 1)]),
            dict(ts_ns=t + 1, bids=[(6806.0, 1)], asks=[(6805.0, 1)]),
        ]
    )  # crossed: never used
    quotes = kit.spy_quotes(list(range(t, t + 120 * kit.NS, kit.NS)), 680.0)
    es = es_mid(book, kit.ES)
    assert es[0].tolist() == [t]
    out = measured_ratios(
        np.array([t + 60 * kit.NS, t + 120 * kit.NS]),
        es,
        spy_mid(quotes, "SPY"),
        10.0,
        LevelSettings(ratio_min_samples=1),
    )
    # at 10:01: samples 10:00:01 .. 10:00:59 (59); at 10:02 the ES row is too old after 10:01:00
    # (age <= 60 s): 10:00:01 .. 10:01:00, 60 samples, and no more however long the window
    assert out.get_column("ratio_samples").to_list() == [59, 60]
    assert out.get_column("es_spy_ratio").to_list() == [6805.0 / 680.0] * 2


def test_settings_resolve_from_either_object():
    mine = LevelSettings(touch_band=0.1)
    assert split_settings(mine) == (mine, DEFAULT)
    assert split_settings(None) == (LevelSettings(), DEFAULT)
    assert split_settings(Settings())[0] == LevelSettings()
    with pytest.raises(TypeError, match="expected LevelSettings or Settings"):
        split_settings({"touch_band": 0.1})
