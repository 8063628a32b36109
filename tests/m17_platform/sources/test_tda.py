"""TD Ameritrade chain reader against the real bundled SPY chain (2022-05-20 close)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from m17_platform import schemas
from m17_platform.errors import SourceFormatError
from m17_platform.sources import tda
from m17_platform.sources.base import ReadResult

CHAIN = (
    Path(__file__).resolve().parents[3]
    / "data"
    / "samples"
    / "tda_spy_option_chain_2022-05-20"
    / "SPY_chain_tdameritrade_2022-05-20.json.gz"
)
ET = "America/New_York"


def et_wall(ts_ns: int) -> str:
    return pl.Series([ts_ns]).cast(pl.Datetime("ns", "UTC")).dt.convert_time_zone(ET).dt.strftime("%Y-%m-%d %H:%M:%S%.3f")[0]


@pytest.fixture(scope="module")
def chain() -> ReadResult:
    return tda.read_chain(CHAIN)


@pytest.fixture(scope="module")
def text() -> str:
    return gzip.decompress(CHAIN.read_bytes()).decode()


def test_tables_conform(chain: ReadResult) -> None:
    assert set(chain.tables) == {"option_quotes", "option_vendor_greeks", "option_contracts", "stock_quotes"}
    for name, frame in chain.tables.items():
        spec = schemas.table(name)
        assert isinstance(frame, pl.DataFrame) and frame.columns == spec.columns, name
        schemas.conform(frame, spec, origin=str(CHAIN))
    assert all(isinstance(v, int) for v in chain.stats.values())


def test_counts(chain: ReadResult) -> None:
    q = chain.tables["option_quotes"]
    assert q.height == 1024
    assert chain.tables["option_vendor_greeks"].height == 1024
    assert chain.tables["option_contracts"].height == 1024
    assert q.get_column("option_symbol").n_unique() == 1024
    assert sorted(q.get_column("sequence").to_list()) == list(range(1, 1025))
    assert dict(q.group_by("right").len().iter_rows()) == {"C": 512, "P": 512}
    exps = q.get_column("expiration")
    assert exps.n_unique() == 32
    assert (exps.min(), exps.max()) == (dt.date(2022, 5, 23), dt.date(2024, 12, 20))
    assert (q.get_column("strike").min(), q.get_column("strike").max()) == (350.0, 425.0)
    assert q.get_column("underlying").unique().to_list() == ["SPY"]
    assert chain.stats["contracts"] == chain.stats["declared_contracts"] == 1024
    # File order: calls first, in the order of the JSON maps.
    first = q.filter(pl.col("sequence") == 1).row(0, named=True)
    assert first["option_symbol"] == "O:SPY220523C00382000"


def test_placeholders_become_null(chain: ReadResult) -> None:
    g = chain.tables["option_vendor_greeks"]
    null_iv = g.filter(pl.col("implied_volatility").is_null())
    assert null_iv.height == 12
    assert null_iv.get_column("expiration").unique().to_list() == [dt.date(2022, 7, 15)]
    assert sorted(null_iv.get_column("strike").unique().to_list()) == [383.0, 387.0, 389.0, 391.0, 393.0, 397.0]
    for col in ("delta", "gamma", "theta", "vega", "rho", "theoretical_value"):
        assert null_iv.get_column(col).null_count() == 12, col
    assert g.filter(pl.col("delta") == -999).height == 0
    assert chain.stats["placeholder_greek_rows"] == 12
    assert chain.stats["placeholder_values"] == 72
    assert chain.stats["null_iv_rows"] == 12
    # Those 12 were never quoted (quoteTimeInLong 0, bid = ask = 0): kept, quote null,
    # timed at the chain's snapshot instant.
    assert chain.stats["never_quoted"] == 12 and chain.stats["quotes_unavailable"] == 12
    q = chain.tables["option_quotes"].join(null_iv.select("option_symbol"), on="option_symbol")
    assert q.height == 12
    assert q.get_column("bid").null_count() == 12 and q.get_column("ask_size").null_count() == 12
    assert q.get_column("ts_ns").unique().to_list() == [1653077700000 * 1_000_000]


def test_one_contract(chain: ReadResult) -> None:
    sym = "O:SPY220523C00382000"  # SPY_052322C382
    q = chain.tables["option_quotes"].filter(pl.col("option_symbol") == sym).row(0, named=True)
    assert (q["root"], q["expiration"], q["strike"], q["right"]) == ("SPY", dt.date(2022, 5, 23), 382.0, "C")
    assert (q["bid"], q["ask"], q["bid_size"], q["ask_size"]) == (8.07, 8.47, 150, 150)
    assert q["ts_ns"] == 1653077699007 * 1_000_000
    assert et_wall(q["ts_ns"]) == "2022-05-20 16:14:59.007"
    assert q["source"] == "tda.option_chain"
    g = chain.tables["option_vendor_greeks"].filter(pl.col("option_symbol") == sym).row(0, named=True)
    assert g["implied_volatility"] == pytest.approx(0.22196, abs=1e-12)
    assert (g["delta"], g["gamma"], g["theta"], g["vega"], g["rho"]) == (0.82, 0.03, -0.337, 0.103, 0.031)
    assert (g["open_interest"], g["theoretical_value"]) == (177, 8.611)
    assert (g["underlying_price"], g["implied_underlying_price"]) == (390.65, None)
    c = chain.tables["option_contracts"].filter(pl.col("option_symbol") == sym).row(0, named=True)
    assert (c["multiplier"], c["exercise_style"]) == (100, "A")
    # TDA's own expirationDate for this contract is 1653336000000 ms (16:00 ET).
    assert c["expiry_ts_ns"] == 1653336000000 * 1_000_000


def test_underlying_quote(chain: ReadResult) -> None:
    s = chain.tables["stock_quotes"]
    assert s.height == 1
    row = s.row(0, named=True)
    assert (row["symbol"], row["underlying"], row["bid"], row["ask"], row["bid_size"], row["ask_size"]) == (
        "SPY", "SPY", 390.6, 390.7, 100, 600,
    )  # fmt: skip
    # The underlying's quoteTime is 20:00 ET (end of the extended session), not the 16:15 of the options.
    assert et_wall(row["ts_ns"]) == "2022-05-20 20:00:00.208"
    assert row["source"] == "tda.option_chain.underlying"


def test_chain_facts() -> None:
    facts = tda.read_chain_facts(CHAIN)
    assert facts.symbol == "SPY" and facts.status == "SUCCESS" and facts.strategy == "ANALYTICAL"
    assert facts.interest_rate == pytest.approx(0.001)
    assert facts.volatility == pytest.approx(0.29)
    assert facts.underlying_price == 390.65
    assert facts.is_delayed is True and facts.number_of_contracts == 1024


# --- corrupt and odd files --------------------------------------------------------------------


def write_edit(tmp_path: Path, text: str, old: str, new: str, gz: bool = False) -> tuple[Path, int]:
    """Replace the first ``old`` with ``new``; return the file and the 1-based line of the edit."""
    idx = text.index(old)
    line = text.count("\n", 0, idx) + 1
    out = text[:idx] + new + text[idx + len(old) :]
    path = tmp_path / ("chain.json.gz" if gz else "chain.json")
    path.write_bytes(gzip.compress(out.encode()) if gz else out.encode())
    return path, line


@pytest.mark.parametrize("gz", [False, True])
def test_corrupt_bid(tmp_path: Path, text: str, gz: bool) -> None:
    path, line = write_edit(tmp_path, text, '"bid" : 8.07,', '"bid" : "x",', gz=gz)
    assert line == 8  # the first contract's bid in the pretty-printed file
    with pytest.raises(SourceFormatError) as info:
        tda.read_chain(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, "bid")
    assert str(path) in str(err) and "line 8" in str(err)


def test_corrupt_deep_field(tmp_path: Path, text: str) -> None:
    # A put far down the file: its multiplier becomes text.
    anchor = '"symbol" : "SPY_122024P425"'
    start = text.index(anchor)
    block_start = text.rindex("{", 0, start)
    idx = text.index('"multiplier" : 100', block_start)
    edited = text[:idx] + '"multiplier" : "hundred"' + text[idx + len('"multiplier" : 100') :]
    path = tmp_path / "chain.json"
    path.write_text(edited)
    line = text.count("\n", 0, idx) + 1
    with pytest.raises(SourceFormatError) as info:
        tda.read_chain(path)
    assert (info.value.line, info.value.field) == (line, "multiplier")


def test_missing_field_names_contract_line(tmp_path: Path, text: str) -> None:
    path, line = write_edit(tmp_path, text, '"openInterest" : 177,', "")
    with pytest.raises(SourceFormatError) as info:
        tda.read_chain(path)
    assert info.value.field == "openInterest"
    assert info.value.line == 5  # the contract's opening brace (the field is gone)


def test_put_call_contradicts_map(tmp_path: Path, text: str) -> None:
    path, line = write_edit(tmp_path, text, '"putCall" : "CALL"', '"putCall" : "PUT"')
    with pytest.raises(SourceFormatError) as info:
        tda.read_chain(path)
    assert (info.value.line, info.value.field) == (line, "putCall")


def test_bad_expiration_key(tmp_path: Path, text: str) -> None:
    path, line = write_edit(tmp_path, text, '"2022-05-23:1"', '"2022-05-32:1"')
    with pytest.raises(SourceFormatError) as info:
        tda.read_chain(path)
    assert info.value.line == line == 3


def test_invalid_json(tmp_path: Path, text: str) -> None:
    path, line = write_edit(tmp_path, text, '"bid" : 8.07,', '"bid" : 8.07,,')
    with pytest.raises(SourceFormatError) as info:
        tda.read_chain(path)
    assert info.value.line == line and "invalid JSON" in str(info.value)


@pytest.mark.parametrize("nan", ["NaN", '"NaN"'])
def test_nan_greeks_become_null(tmp_path: Path, text: str, nan: str) -> None:
    path, _ = write_edit(tmp_path, text, '"volatility" : 22.196', f'"volatility" : {nan}')
    result = tda.read_chain(path)
    g = result.tables["option_vendor_greeks"].filter(pl.col("option_symbol") == "O:SPY220523C00382000").row(0, named=True)
    assert g["implied_volatility"] is None and g["delta"] == 0.82
    assert result.stats["null_iv_rows"] == 13 and result.stats["placeholder_greek_rows"] == 13


def test_failed_status(tmp_path: Path, text: str) -> None:
    path, line = write_edit(tmp_path, text, '"status" : "SUCCESS"', '"status" : "FAILED"')
    with pytest.raises(SourceFormatError) as info:
        tda.read_chain(path)
    assert (info.value.line, info.value.field) == (line, "status")


def test_locate_handles_compact_json() -> None:
    doc = {"a": {"b": [1, {"c": 2, "d": [3]}]}}
    text = json.dumps(doc)
    assert text[tda._locate(text, ("a", "b", 1, "d")) :].startswith('"d"')
    assert tda._locate(text, ("a", "x")) is None
