"""Databento MBO reader on real CME Globex ES data: ESH4 2023-12-25 (snapshot + the
17:00 ET pre-open and the first hour after the 18:00 ET open), ESM4 2024-05-08 (clear +
snapshot), Databento's own tiny fixtures, and corrupt copies in tmp_path."""

import bisect
import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import zstandard

from m17_platform import schemas
from m17_platform.book import F_LAST, F_SNAPSHOT, MboBook
from m17_platform.calendar import futures_trade_date
from m17_platform.errors import SourceFormatError
from m17_platform.sources.databento import futures_root, read_mbo, source_name

ROOT = Path(__file__).resolve().parents[3]
ESH4 = ROOT / "data" / "samples" / "databento_glbx_es_real" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
SHARED = Path(__file__).resolve().parents[3] / "data" / "samples"
ESM4 = SHARED / "databento_glbx_es_real" / "esm4-glbx-mdp3-20240508T000000-000002.mbo.dbn.zst"
FIXTURES = SHARED / "databento_test_data"

OPEN_NS = 1_703_545_200_000_000_000  # 2023-12-25 23:00:00 UTC = 18:00 ET, the Globex open
PREOPEN_NS = OPEN_NS - 3_600 * 1_000_000_000  # 17:00 ET


@pytest.fixture(scope="module")
def esh4():
    return read_mbo(ESH4)


@pytest.fixture(scope="module")
def esh4_records():
    import databento as db

    return db.DBNStore.from_file(ESH4).to_ndarray()


def test_esh4_counts_and_stats(esh4):
    s = esh4.stats
    assert s["records"] == 68_792
    assert {a: s[f"records_{a}"] for a in "ACMTFRN"} == {
        "A": 29_216, "C": 17_999, "M": 12_233, "T": 2_973, "F": 6_371, "R": 0, "N": 0
    }
    assert s["snapshot_records"] == 8_725
    assert s["trades"] == esh4.tables["futures_trades"].height == 2_973
    # 47,022 records carry F_LAST after the snapshot, plus one row for the snapshot itself
    assert s["mbp10_rows"] == esh4.tables["futures_mbp10"].height == 47_023
    assert s["snapshot_rows"] == 1
    assert s["instruments"] == 1
    for anomaly in ("unknown_order_cancels", "unknown_order_modifies", "duplicate_adds", "oversize_cancels",
                    "invalid_side_records", "trailing_records", "maybe_bad_book_records"):
        assert s[anomaly] == 0, anomaly


def test_tables_conform_to_the_raw_schemas(esh4):
    for name in ("futures_trades", "futures_mbp10"):
        spec = schemas.table(name)
        frame = esh4.tables[name]
        assert frame.columns == spec.columns
        schemas.conform(frame, spec, origin="test")


def test_esh4_aggressor_counts(esh4):
    counts = dict(esh4.tables["futures_trades"].group_by("aggressor_side").len().iter_rows())
    assert counts == {"B": 1_542, "S": 1_430, "N": 1}


def test_esh4_first_trades(esh4):
    trades = esh4.tables["futures_trades"]
    first = trades.row(0, named=True)
    assert first == {
        "ts_ns": OPEN_NS,  # the opening auction uncross at exactly 18:00:00 ET
        "sequence": 6_000,
        "ts_recv_ns": 1_703_545_200_105_900_877,
        "symbol": "ESH4",
        "instrument_id": 17_077,
        "underlying": "SPY",
        "price": 4800.25,
        "size": 44,
        "exchange": "GLBX",
        "conditions": None,
        "trade_id": None,
        "canceled": False,
        "aggressor_side": "N",
        "source": "databento.glbx-mdp3.mbo",
    }
    second = trades.row(1, named=True)
    assert (second["ts_ns"], second["sequence"], second["price"], second["size"], second["aggressor_side"]) == (
        1_703_545_200_085_275_419, 6_006, 4800.25, 5, "B"
    )
    assert second["trade_id"] == "6412777265520"  # the aggressor's order id
    # the evening session of Monday 2023-12-25 (a CME holiday) belongs to trade date 2023-12-26
    assert futures_trade_date(first["ts_ns"]) == dt.date(2023, 12, 26)


def test_esh4_prints_are_unique_on_the_dedup_key(esh4):
    """CME packets hold several prints with one ts/sequence; the aggressor order id separates them."""
    trades = esh4.tables["futures_trades"]
    loose = trades.select(["ts_ns", "sequence", "price", "size"])
    assert loose.height - loose.unique().height == 15
    assert trades.select(list(schemas.FUTURES_TRADES.dedup_key)).is_duplicated().sum() == 0
    assert trades["trade_id"].null_count() == 1  # only the opening auction print has no aggressor


def test_esh4_snapshot_row(esh4):
    row = esh4.tables["futures_mbp10"].row(0, named=True)
    assert row["ts_ns"] == 1_703_422_805_243_925_307  # snapshot records keep their ts_event
    assert row["ts_recv_ns"] is None  # F_BAD_TS_RECV on snapshot records
    assert (row["action"], row["side"]) == ("A", "A")
    assert (row["bid_px_00"], row["bid_sz_00"], row["bid_ct_00"]) == (4799.0, 16, 4)
    assert (row["ask_px_00"], row["ask_sz_00"], row["ask_ct_00"]) == (4799.5, 23, 4)
    assert (row["bid_px_09"], row["ask_px_09"]) == (4796.75, 4801.75)


def test_esh4_book_never_crosses_after_the_open(esh4):
    """No crossed or locked book after the opening auction. Before it, in CME's
    pre-open (17:00-18:00 ET), orders may cross (matching is off until the uncross);
    the 891 crossed books all lie there, between 17:39:55 and 18:00 ET."""
    mbp = esh4.tables["futures_mbp10"].slice(1)  # skip the snapshot row
    both = mbp.filter(pl.col("bid_px_00").is_not_null() & pl.col("ask_px_00").is_not_null())
    after = both.filter(pl.col("ts_ns") >= OPEN_NS)
    assert after.height > 30_000
    assert after.filter(pl.col("bid_px_00") >= pl.col("ask_px_00")).height == 0
    crossed = both.filter(pl.col("bid_px_00") > pl.col("ask_px_00"))
    assert crossed.height == esh4.stats["crossed_book_events"] == 891
    assert crossed.get_column("ts_ns").min() >= PREOPEN_NS
    assert crossed.get_column("ts_ns").max() < OPEN_NS
    assert esh4.stats["crossed_book_events_after_first_trade"] == 0
    assert esh4.stats["locked_book_events"] == 0


def test_esh4_trades_meet_the_best_resting_price(esh4_records):
    """Each trade's price equals the best price on the resting side (opposite the aggressor)
    of the book just before the trade, net of the fills already reported in the same event
    (Databento's F records leave the book only with the C/M that follows them).

    Result: 2,958 of 2,972 trades with an aggressor (99.53%). Each of the 14 others is a
    trade the aggressor printed one tick through resting orders that it did not fill and
    that the same event then cancels (C without F) -- consistent with CME self-match
    prevention cancelling the resting order. The test asserts that explanation record by
    record. The one trade without an aggressor (side N) is the opening auction uncross,
    priced inside the crossed pre-open book."""
    a = esh4_records
    act = a["action"].astype("U1").tolist()
    side = a["side"].astype("U1").tolist()
    oid = a["order_id"].tolist()
    px = a["price"].tolist()
    sz = a["size"].tolist()
    fl = a["flags"].tolist()
    book = MboBook()
    matched = checked = 0
    unexplained = []
    explained = 0
    for i in range(len(act)):
        if act[i] == "T" and side[i] == "N":
            bid, ask = book.best("B"), book.best("A")
            assert bid > px[i] > ask, "auction uncross priced inside the crossed pre-open book"
        elif act[i] == "T":
            resting = "A" if side[i] == "B" else "B"
            checked += 1
            if book.best(resting, net_of_fills=True) == px[i]:
                matched += 1
            else:
                through = [
                    order_id
                    for order_id, price, _ in book.resting_orders(resting, net_of_fills=True)
                    if (price < px[i] if resting == "A" else price > px[i])
                ]
                end = i
                while not fl[end] & F_LAST:
                    end += 1
                cancelled = {oid[j] for j in range(i + 1, end + 1) if act[j] == "C"}
                if through and set(through) <= cancelled:
                    explained += 1
                else:
                    unexplained.append(i)
        book.apply(act[i], side[i], oid[i], px[i], sz[i], fl[i])
    print(f"ESH4 trade price == best resting price before the trade: {matched}/{checked} = {matched / checked:.2%}")
    assert (matched, checked) == (2_958, 2_972)
    assert (explained, unexplained) == (14, [])


def test_esm4_clear_and_snapshot():
    r = read_mbo(ESM4)
    s = r.stats
    assert (s["records"], s["clear_records"], s["snapshot_records"]) == (13_796, 1, 13_601)
    assert s["trades"] == 5 and s["records_F"] == 5
    assert s["crossed_book_events"] == s["locked_book_events"] == 0
    assert s["unknown_order_cancels"] == s["unknown_order_modifies"] == 0
    mbp = r.tables["futures_mbp10"]
    # the snapshot ends with an F_LAST record (flags 168): one row for it, then 184 events
    assert mbp.height == 185
    snap = mbp.row(0, named=True)
    assert snap["ts_recv_ns"] is None
    assert (snap["bid_px_00"], snap["bid_sz_00"], snap["bid_ct_00"]) == (5214.0, 26, 19)
    assert mbp.filter(pl.col("bid_px_00") >= pl.col("ask_px_00")).height == 0
    trades = r.tables["futures_trades"]
    assert set(trades.get_column("symbol")) == {"ESM4"}
    assert set(trades.get_column("instrument_id")) == {5_602}
    assert trades.get_column("price").to_list()[0] == 5214.25


def test_plain_dbn_and_snapshot_at_end_of_file(tmp_path):
    """Databento's GLBX fixture (4 snapshot adds, ESH1), decompressed to a plain .dbn file."""
    plain = tmp_path / "test_data.mbo.dbn"
    src = FIXTURES / "GLBX.MDP3" / "test_data.mbo.dbn.zst"
    with zstandard.ZstdDecompressor().stream_reader(src.open("rb"), read_across_frames=True) as fh:
        plain.write_bytes(fh.read())
    r = read_mbo(plain, underlying_for_root={"ES": "SPX"})
    assert r.stats["snapshot_records"] == 4 and r.stats["trades"] == 0
    mbp = r.tables["futures_mbp10"]
    assert mbp.height == 1  # the snapshot has no F_LAST and ends the file: emitted once
    row = mbp.row(0, named=True)
    assert (row["symbol"], row["underlying"], row["instrument_id"]) == ("ESH1", "SPX", 5_482)
    assert [row[f"bid_px_{k:02d}"] for k in range(5)] == [3675.75, 3675.5, 3675.25, 3675.0, None]
    assert row["ask_px_00"] is None and row["ask_sz_00"] is None and row["ask_ct_00"] is None


def test_live_capture_with_symbol_mapping_records():
    """A mixed live stream: symbols come from its SymbolMappingMsg records."""
    r = read_mbo(FIXTURES / "LIVE" / "test_data.live.dbn.zst")
    assert r.stats["records"] == 5
    mbp = r.tables["futures_mbp10"]
    assert mbp.height == 4  # 4 of the 5 adds carry F_LAST
    assert set(mbp.get_column("symbol")) == {"ESZ4"}


def test_helpers():
    assert futures_root("ESH4") == "ES"
    assert futures_root("MESZ24") == "MES"
    with pytest.raises(ValueError):
        futures_root("ESH4-ESM4")
    assert source_name("GLBX.MDP3") == "databento.glbx-mdp3.mbo"


# --- errors ----------------------------------------------------------------------------------


def test_truncated_zstd_names_the_file(tmp_path):
    path = tmp_path / "esh4-truncated.mbo.dbn.zst"
    data = ESH4.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the record frame loses its end
    with pytest.raises(SourceFormatError, match="truncated zstd stream") as info:
        read_mbo(path)
    assert info.value.path == str(path) and str(path) in str(info.value)


def test_truncated_record_names_file_and_record(tmp_path):
    src = FIXTURES / "GLBX.MDP3" / "test_data.mbo.dbn.zst"
    with zstandard.ZstdDecompressor().stream_reader(src.open("rb"), read_across_frames=True) as fh:
        data = fh.read()
    path = tmp_path / "cut.mbo.dbn"
    path.write_bytes(data[:-10])
    with pytest.raises(SourceFormatError, match="truncated DBN record") as info:
        read_mbo(path)
    assert (info.value.path, info.value.line) == (str(path), 4)


def test_truncated_live_stream_names_the_record(tmp_path):
    src = FIXTURES / "LIVE" / "test_data.live.dbn.zst"
    with zstandard.ZstdDecompressor().stream_reader(src.open("rb"), read_across_frames=True) as fh:
        data = fh.read()
    path = tmp_path / "cut.live.dbn"
    path.write_bytes(data[:-3])
    with pytest.raises(SourceFormatError, match="truncated or corrupt DBN record") as info:
        read_mbo(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 46, "length")


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "empty file"), (b"not a dbn file at all", "not a DBN stream"), (b"DBN\x03\xff\xff\x00\x00", "truncated DBN metadata")],
)
def test_not_dbn(tmp_path, content, reason):
    path = tmp_path / "bad.dbn"
    path.write_bytes(content)
    with pytest.raises(SourceFormatError, match=reason) as info:
        read_mbo(path)
    assert info.value.path == str(path)


def test_wrong_schema_and_unmapped_products(tmp_path):
    trades = FIXTURES / "GLBX.MDP3" / "test_data.trades.dbn.zst"
    with pytest.raises(SourceFormatError, match="expected an MBO file") as info:
        read_mbo(trades)
    assert info.value.field == "schema"
    with pytest.raises(SourceFormatError, match="not a futures outright symbol"):
        read_mbo(FIXTURES / "XNAS.ITCH" / "test_data.mbo.dbn.zst")  # NVDA
    with pytest.raises(SourceFormatError, match="no underlying configured for futures root 'ES'"):
        read_mbo(ESM4, underlying_for_root={"NQ": "QQQ"})


def test_unknown_action_code_names_the_record(tmp_path):
    src = FIXTURES / "GLBX.MDP3" / "test_data.mbo.dbn.zst"
    with zstandard.ZstdDecompressor().stream_reader(src.open("rb"), read_across_frames=True) as fh:
        data = bytearray(fh.read())
    meta_len = int.from_bytes(data[4:8], "little")
    action_offset = 8 + meta_len + 2 * 56 + 38  # third record's `action` byte
    assert data[action_offset : action_offset + 1] == b"A"
    data[action_offset] = ord("Z")
    path = tmp_path / "bad-action.mbo.dbn"
    path.write_bytes(bytes(data))
    with pytest.raises(SourceFormatError, match="unknown action code 'Z'") as info:
        read_mbo(path)
    assert (info.value.line, info.value.field) == (3, "action")


def test_esh4_mbp10_rows_are_the_book_after_every_event(esh4, esh4_records):
    """Every futures_mbp10 row (all 47,023) holds the top 10 levels of an independent book --
    a plain dict of resting orders and per-side level sums, not MboBook -- after the record
    the row names: the snapshot once when it completes, then each F_LAST record."""
    a = esh4_records
    act = a["action"].astype("U1").tolist()
    side = a["side"].astype("U1").tolist()
    oid = a["order_id"].tolist()
    px = a["price"].tolist()
    sz = a["size"].tolist()
    fl = a["flags"].tolist()
    orders: dict[int, tuple[str, int, int]] = {}
    levels = {"B": {}, "A": {}}
    prices = {"B": [], "A": []}  # ascending

    def level(s, p, dsize, dcount):
        lv = levels[s].get(p)
        if lv is None:
            lv = levels[s][p] = [0, 0]
            bisect.insort(prices[s], p)
        lv[0] += dsize
        lv[1] += dcount
        if lv[1] == 0:
            del levels[s][p]
            prices[s].remove(p)

    def top():
        bids = prices["B"][:-11:-1]
        asks = prices["A"][:10]
        return [(p, *levels["B"][p]) for p in bids], [(p, *levels["A"][p]) for p in asks]

    mbp = esh4.tables["futures_mbp10"]
    cols = [f"{s}_{f}_{k:02d}" for s in ("bid", "ask") for k in range(10) for f in ("px", "sz", "ct")]
    rows = mbp.select(["sequence", "action", *cols]).rows()
    expected = []
    in_snapshot = False
    for i in range(len(act)):
        snapshot = bool(fl[i] & F_SNAPSHOT)
        if in_snapshot and not snapshot:
            expected.append((i - 1, top()))
            in_snapshot = False
        if act[i] == "A":
            orders[oid[i]] = (side[i], px[i], sz[i])
            level(side[i], px[i], sz[i], 1)
        elif act[i] == "C":
            s, p, q = orders.pop(oid[i])
            if sz[i] < q:
                orders[oid[i]] = (s, p, q - sz[i])
                level(s, p, -sz[i], 0)
            else:
                level(s, p, -q, -1)
        elif act[i] == "M":
            s, p, q = orders.pop(oid[i])
            level(s, p, -q, -1)
            orders[oid[i]] = (side[i], px[i], sz[i])
            level(side[i], px[i], sz[i], 1)
        if snapshot:
            in_snapshot = not fl[i] & F_LAST
            if fl[i] & F_LAST:
                expected.append((i, top()))
        elif fl[i] & F_LAST:
            expected.append((i, top()))
    assert len(expected) == len(rows) == 47_023
    for (i, (bids, asks)), row in zip(expected, rows):
        assert (row[0], row[1]) == (a["sequence"][i], act[i])
        want = []
        for book_side in (bids, asks):
            for k in range(10):
                want += [book_side[k][0] / 1e9, book_side[k][1], book_side[k][2]] if k < len(book_side) else [None] * 3
        assert list(row[2:]) == want, f"record {i + 1}"
