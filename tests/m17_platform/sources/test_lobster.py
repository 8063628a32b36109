"""LOBSTER reader on the real AMZN 2012-06-21 level-1 sample (57,515 NASDAQ events) and
the AAPL 10-level head; malformed copies in tmp_path."""

import datetime as dt
import gzip
from pathlib import Path

import polars as pl
import pytest

from m17_platform import schemas
from m17_platform.errors import SourceFormatError
from m17_platform.sources.lobster import read_lobster

ROOT = Path(__file__).resolve().parents[3]
AMZN = ROOT / "data" / "samples" / "lobster_amzn_2012-06-21_level1"
AMZN_MESSAGES = AMZN / "AMZN_2012-06-21_34200000_57600000_message_1.csv.gz"
AMZN_BOOK = AMZN / "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv.gz"
AAPL10 = Path(__file__).resolve().parents[3] / "data" / "samples" / "lobster_aapl_2012-06-21_level10_head"
DAY = dt.date(2012, 6, 21)


@pytest.fixture(scope="module")
def amzn():
    return read_lobster(AMZN_MESSAGES, AMZN_BOOK, symbol="AMZN", trade_date=DAY)


def test_counts_and_stats(amzn):
    trades = amzn.tables["stock_trades"]
    assert trades.height == 11_419
    cond = trades.get_column("conditions").list.first()
    assert (cond == "visible_execution").sum() == 8_974
    assert (cond == "hidden_execution").sum() == 2_445
    assert amzn.stats["messages"] == 57_515
    assert {k: amzn.stats[f"messages_type_{k}"] for k in (1, 2, 3, 4, 5, 7)} == {
        1: 27_845, 2: 16, 3: 18_235, 4: 8_974, 5: 2_445, 7: 0
    }
    assert amzn.stats["executions"] == 11_419
    assert amzn.stats["quotes"] == amzn.tables["stock_quotes"].height == 55_071
    assert amzn.stats["empty_bid_rows"] == amzn.stats["empty_ask_rows"] == 0
    assert amzn.stats["time_reversals"] == 0


def test_tables_conform_to_the_raw_schemas(amzn):
    for name in ("stock_trades", "stock_quotes"):
        spec = schemas.table(name)
        frame = amzn.tables[name]
        assert frame.columns == spec.columns
        schemas.conform(frame, spec, origin="test")  # raises on any mismatch


def test_aggressor_counts(amzn):
    """Direction is the resting order's side: -1 (sell limit executed) -> buyer-initiated."""
    trades = amzn.tables["stock_trades"].with_columns(kind=pl.col("conditions").list.first())
    counts = {(k, s): n for k, s, n in trades.group_by("kind", "aggressor_side").len().iter_rows()}
    assert counts == {
        ("visible_execution", "B"): 4_808,
        ("visible_execution", "S"): 4_166,
        ("hidden_execution", "B"): 1_096,
        ("hidden_execution", "S"): 1_349,
    }


def test_first_and_last_trade(amzn):
    trades = amzn.tables["stock_trades"]
    first = trades.row(0, named=True)
    assert first == {
        "ts_ns": 1_340_285_400_017_459_617,  # 09:30:00.017459617 EDT = 13:30 UTC
        "sequence": 1,
        "symbol": "AMZN",
        "underlying": "AMZN",
        "price": 223.82,
        "size": 1,
        "exchange": "XNAS",
        "conditions": ["hidden_execution"],
        "trade_id": None,  # hidden executions carry order id 0
        "canceled": False,
        "aggressor_side": "B",
        "source": "lobster.message",
    }
    last = trades.row(-1, named=True)
    assert (last["ts_ns"], last["sequence"], last["price"], last["size"]) == (1_340_308_799_545_827_862, 57_512, 220.51, 51)
    assert (last["conditions"], last["trade_id"], last["aggressor_side"]) == (["visible_execution"], "286916542", "S")
    # line 5: "34200.372779672,5,0,100,2238400,-1"; int(float(t) * 1e9) would give ...671
    # (636 of the file's 57,515 times lose 1 ns that way), hence the exact decimal parse
    fifth = trades.filter(pl.col("sequence") == 5).row(0, named=True)
    assert fifth["ts_ns"] == 1_340_251_200_000_000_000 + 34_200_372_779_672
    # line 3 of the message file: "34200.190226476,4,11885113,21,2238100,1"
    third = trades.row(1, named=True)
    assert (third["sequence"], third["ts_ns"], third["price"], third["trade_id"]) == (
        3,
        1_340_285_400_190_226_476,
        223.81,
        "11885113",
    )


def test_first_quote(amzn):
    first = amzn.tables["stock_quotes"].row(0, named=True)
    # orderbook line 1: "2239500,100,2231800,100"
    assert (first["sequence"], first["ts_ns"]) == (1, 1_340_285_400_017_459_617)
    assert (first["bid"], first["bid_size"], first["ask"], first["ask_size"]) == (223.18, 100, 223.95, 100)
    assert (first["bid_exchange"], first["ask_exchange"], first["source"]) == ("XNAS", "XNAS", "lobster.orderbook")


def test_visible_executions_hit_the_prior_best_on_the_resting_side(amzn):
    """Every type-4 execution prints at the best price on the resting side of the book
    before it (the last quote emitted at an earlier message): 8,974 / 8,974."""
    trades = amzn.tables["stock_trades"].filter(pl.col("conditions").list.first() == "visible_execution")
    quotes = amzn.tables["stock_quotes"].select(pl.col("sequence").alias("before"), "bid", "ask")
    joined = (
        trades.with_columns(before=pl.col("sequence") - 1)
        .sort("before")
        .join_asof(quotes.sort("before"), on="before", strategy="backward")
    )
    resting = pl.when(pl.col("aggressor_side") == "B").then(pl.col("ask")).otherwise(pl.col("bid"))
    matches = joined.select((resting == pl.col("price")).sum()).item()
    assert (matches, joined.height) == (8_974, 8_974)


def test_quotes_only_on_level1_changes(amzn):
    q = amzn.tables["stock_quotes"]
    same = q.select(
        (
            (pl.col("bid") == pl.col("bid").shift(1))
            & (pl.col("bid_size") == pl.col("bid_size").shift(1))
            & (pl.col("ask") == pl.col("ask").shift(1))
            & (pl.col("ask_size") == pl.col("ask_size").shift(1))
        ).sum()
    ).item()
    assert same == 0
    assert q.get_column("sequence").is_sorted() and q.get_column("ts_ns").is_sorted()


def test_ten_level_file_without_final_newline():
    r = read_lobster(
        AAPL10 / "AAPL_2012-06-21_34200000_57600000_message_10_head.csv",
        AAPL10 / "AAPL_2012-06-21_34200000_57600000_orderbook_10_head.csv",
        symbol="AAPL",
        trade_date=DAY,
        underlying="AAPL_TEST",
    )
    assert r.stats["messages"] == 999 and r.stats["orderbook_levels"] == 10
    assert r.stats["executions"] == 159 and r.stats["executions_visible"] == 98
    trades = r.tables["stock_trades"]
    assert set(trades.get_column("underlying")) == {"AAPL_TEST"}
    assert r.tables["stock_quotes"].row(0, named=True)["bid"] == 585.33


# --- hand-made files ------------------------------------------------------------------------


def _write(tmp_path: Path, messages: list[str], book: list[str]) -> tuple[Path, Path]:
    m = tmp_path / "X_2012-06-21_34200000_57600000_message_1.csv"
    b = tmp_path / "X_2012-06-21_34200000_57600000_orderbook_1.csv"
    m.write_text("\n".join(messages) + "\n")
    b.write_text("\n".join(book) + "\n")
    return m, b


def test_time_is_parsed_exactly_and_empty_sides_become_null(tmp_path):
    m, b = _write(
        tmp_path,
        [
            "34200.1,1,1,100,1000000,1",
            "57599.999999999,1,2,100,1010000,-1",
            "57599.999999999,3,1,100,1000000,1",
            "57600,4,2,100,1010000,-1",
        ],
        [
            "9999999999,0,1000000,100",
            "1010000,100,1000000,100",
            "1010000,100,-9999999999,0",
            "9999999999,0,-9999999999,0",
        ],
    )
    r = read_lobster(m, b, symbol="X", trade_date=DAY)
    midnight = 1_340_251_200_000_000_000  # 2012-06-21 00:00 EDT in ns UTC
    q = r.tables["stock_quotes"]
    assert q.get_column("ts_ns").to_list() == [
        midnight + 34_200_100_000_000,
        midnight + 57_599_999_999_999,
        midnight + 57_599_999_999_999,
        midnight + 57_600_000_000_000,
    ]
    assert q.get_column("ask").to_list() == [None, 101.0, 101.0, None]
    assert q.get_column("ask_size").to_list() == [None, 100, 100, None]
    assert q.get_column("bid").to_list() == [100.0, 100.0, None, None]
    assert q.get_column("bid_exchange").to_list() == ["XNAS", "XNAS", None, None]
    assert (r.stats["empty_ask_rows"], r.stats["empty_bid_rows"], r.stats["quotes_with_empty_side"]) == (2, 2, 3)
    t = r.tables["stock_trades"].row(0, named=True)
    assert (t["price"], t["aggressor_side"], t["sequence"]) == (101.0, "B", 4)


def _corrupt(tmp_path: Path, line: int, new: str) -> Path:
    lines = gzip.decompress(AMZN_MESSAGES.read_bytes()).decode().split("\n")
    lines[line - 1] = new
    path = tmp_path / "AMZN_corrupt_message_1.csv"
    path.write_text("\n".join(lines))
    return path


@pytest.mark.parametrize(
    ("line", "new", "field", "reason"),
    [
        (1234, "34270.1,1,123,12x,2220000,1", "size", "expected an integer, found '12x'"),
        (5, "34200.372779672,5,0,100,2238400", "direction", "expected 6 comma-separated fields, found 5"),
        (6, "34200.5,9,1,1,2238400,1", "type", "unknown message type"),
        (7, "34200.5,1,1,1,2238400,0", "direction", "direction must be -1"),
        (8, "34200.1234567891,1,1,1,2238400,1", "time", "at most 9 decimals"),
        (9, "34200.5,4,1,1,0,1", "price", "execution with a price <= 0"),
    ],
)
def test_corrupt_message_file_names_file_line_and_field(tmp_path, line, new, field, reason):
    path = _corrupt(tmp_path, line, new)
    with pytest.raises(SourceFormatError) as info:
        read_lobster(path, AMZN_BOOK, symbol="AMZN", trade_date=DAY)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), line, field)
    assert reason in err.reason
    assert f"{path}, line {line}, field {field!r}" in str(err)


def test_misaligned_files_and_bad_orderbook_value(tmp_path):
    lines = gzip.decompress(AMZN_BOOK.read_bytes()).decode().rstrip("\n").split("\n")
    short = tmp_path / "short_orderbook_1.csv"
    short.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(SourceFormatError, match="message file has 57515 rows but orderbook file has 57514") as info:
        read_lobster(AMZN_MESSAGES, short, symbol="AMZN", trade_date=DAY)
    assert info.value.path == str(short) and info.value.line == 57_515

    lines[99] = "2239500,100,abc,100"
    bad = tmp_path / "bad_orderbook_1.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceFormatError) as info:
        read_lobster(AMZN_MESSAGES, bad, symbol="AMZN", trade_date=DAY)
    assert (info.value.path, info.value.line, info.value.field) == (str(bad), 100, "bid_price_1")


def test_broken_gzip_names_the_file(tmp_path):
    path = tmp_path / "broken_message_1.csv.gz"
    path.write_bytes(AMZN_MESSAGES.read_bytes()[:5_000])
    with pytest.raises(SourceFormatError, match="cannot decompress gzip") as info:
        read_lobster(path, AMZN_BOOK, symbol="AMZN", trade_date=DAY)
    assert info.value.path == str(path)
