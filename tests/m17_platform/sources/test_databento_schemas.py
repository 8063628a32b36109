"""Every schema file of Databento's own fixtures (data/samples/databento_test_data: GLBX.MDP3
ESH1, OPRA.PILLAR AAPL 250221C250, XNAS.ITCH NVDA, EQUS.MINI QQQ, IFEU/NDEX ICE futures, a
live capture) read by ``read_dbn``, checked against databento's own decoding
``DBNStore.to_df(price_type="float", pretty_ts=False, map_symbols=True)`` as the independent
reference: row counts, dollars (= raw int x 1e-9, exactly as databento converts), symbols,
timestamps (ns), venues. Plus hand-made multi-venue MBP-1 files for the consolidated BBO."""

import datetime as dt
import warnings
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import databento as db
import databento_dbn
import numpy as np
import polars as pl
import pytest
import zstandard

from m17_platform import schemas
from m17_platform.errors import SourceFormatError
from m17_platform.sources.databento import asset_class, read_dbn, read_definitions
from m17_platform.sources.databento_io import record_dtype
from m17_platform.sources.databento_schemas import TABLES, parse_osi

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "data" / "samples" / "databento_test_data"
FILES = sorted(p for p in FIXTURES.glob("*/*.dbn.zst") if p.parent.name != "LIVE")
ROOTS = {"ES": "SPY", "BRN FMJ0024!": "BRN", "TFM FMH0024!": "TFM"}  # ICE symbols are not ROOT+month+year
UNDEF_PRICE = 2**63 - 1
F_LAST = 128


def reference(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # databento's pandas calls warn under pandas 3
        return db.DBNStore.from_file(path).to_df(price_type="float", pretty_ts=False, map_symbols=True).reset_index()


def mic(publisher_id: int):
    return None if publisher_id == 0 else str(db.Publisher.from_int(int(publisher_id)).venue)


def floats(values) -> list:
    """Reference floats with NaN (databento's undefined) as None, like our nulls."""
    return [None if v != v else float(v) for v in values]


def occ_from_raw(raw: str) -> str:
    """Independent spelling: OSI raw symbol with the root's padding removed, Polygon's O: prefix."""
    return "O:" + raw.replace(" ", "")


def test_fixture_inventory():
    """The bundled fixtures cover the schemas the issue names, for each dataset."""
    by_dataset = {}
    for p in FILES:
        by_dataset.setdefault(p.parent.name, set()).add(p.name.split(".")[1])
    assert {"trades", "tbbo", "mbp-1", "mbp-10", "mbo", "definition", "bbo-1s", "bbo-1m"} <= by_dataset["GLBX.MDP3"]
    assert {"trades", "tbbo", "mbp-1", "cbbo-1s", "cbbo-1m", "definition", "statistics"} <= by_dataset["OPRA.PILLAR"]
    assert {"trades", "tbbo", "mbp-1", "mbp-10", "mbo", "definition", "imbalance"} <= by_dataset["XNAS.ITCH"]
    assert {"trades", "tbbo", "mbp-1", "bbo-1s", "bbo-1m", "definition"} <= by_dataset["EQUS.MINI"]
    assert len(FILES) == 72  # 73 files in the inventory of PROVENANCE.md, less the live capture


def _kind(path: Path) -> tuple[str, str, str]:
    dataset = path.parent.name
    schema = path.name.split(".")[1]
    return dataset, schema, asset_class(dataset)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name.split('.')[1]}")
def test_every_fixture_file(path):
    dataset, schema, klass = _kind(path)
    ref = reference(path)
    result = read_dbn(path, underlying_for_root=ROOTS)
    assert result.stats["records"] == len(ref) > 0
    expected_tables = TABLES[klass].get(schema, ())
    assert set(result.tables) == set(expected_tables)
    for name, frame in result.tables.items():
        assert frame.columns == schemas.table(name).columns
        schemas.conform(frame, schemas.table(name), origin=str(path))
    if not expected_tables:
        # ohlcv, statistics, status, imbalance, and definitions of futures / stocks: counted, not written
        assert result.stats["records_unmapped_schema"] == len(ref)
        return
    check = {
        "trades": _check_trade_space, "tbbo": _check_trade_space, "tcbbo": _check_trade_space,
        "mbp-1": _check_book, "mbp-10": _check_book, "bbo-1s": _check_sampled, "bbo-1m": _check_sampled,
        "cbbo-1s": _check_sampled, "cbbo-1m": _check_sampled, "mbo": _check_mbo, "definition": _check_definition,
    }[schema]
    check(result, ref, klass, schema)


def _check_identity(frame: pl.DataFrame, ref, klass: str) -> None:
    if klass == "options":
        assert frame["option_symbol"].to_list() == [occ_from_raw(s) for s in ref["symbol"]]
        assert set(frame["underlying"]) == {"AAPL"} and set(frame["root"]) == {"AAPL"}
        assert set(frame["expiration"]) == {dt.date(2025, 2, 21)}
        assert set(frame["strike"]) == {250.0} and set(frame["right"]) == {"C"}
    else:
        assert frame["symbol"].to_list() == ref["symbol"].tolist()
        expected = [ROOTS.get(s, ROOTS.get(s[:2])) if klass == "futures" else s for s in ref["symbol"]]
        assert frame["underlying"].to_list() == expected
    if klass == "futures":
        assert frame["instrument_id"].to_list() == ref["instrument_id"].astype(int).tolist()


def _check_trade_space(result, ref, klass, schema):
    """trades / tbbo: every record is a print; tbbo also gives the quote before it."""
    trades = result.tables[{"futures": "futures_trades", "options": "option_trades", "equities": "stock_trades"}[klass]]
    assert trades.height == len(ref)
    assert trades["ts_ns"].to_list() == ref["ts_event"].astype("int64").tolist()
    assert trades["sequence"].to_list() == ref["sequence"].astype("int64").tolist()
    assert trades["price"].to_list() == floats(ref["price"])  # exact: dollars = int / 1e9, as databento
    assert trades["size"].to_list() == ref["size"].astype(int).tolist()
    assert trades["exchange"].to_list() == [mic(p) for p in ref["publisher_id"]]
    _check_identity(trades, ref, klass)
    if klass != "options":
        assert trades["aggressor_side"].to_list() == [{"B": "B", "A": "S", "N": "N"}[s] for s in ref["side"]]
    if klass == "futures":
        assert trades["ts_recv_ns"].to_list() == ref["ts_recv"].astype("int64").tolist()
        assert trades["trade_id"].to_list() == [f"{s}:0" for s in ref["sequence"]]  # one print per packet here
    else:
        assert trades["trade_id"].null_count() == trades.height
    if schema == "tbbo" and klass != "futures":
        quotes = result.tables["option_quotes" if klass == "options" else "stock_quotes"]
        assert quotes.height == len(ref)
        assert quotes["ts_ns"].to_list() == ref["ts_event"].astype("int64").tolist()
        assert quotes["bid"].to_list() == floats(ref["bid_px_00"])
        assert quotes["ask"].to_list() == floats(ref["ask_px_00"])
        assert quotes["bid_size"].to_list() == ref["bid_sz_00"].astype(int).tolist()
        assert quotes["bid_exchange"].to_list() == [mic(p) for p in ref["publisher_id"]]
        _check_identity(quotes, ref, klass)


def _reference_bbo(ref) -> list[tuple]:
    """Consolidated BBO after each complete (F_LAST) non-trade record, written when it changes:
    best price across publishers, then larger size (plain Python over the reference rows)."""
    venues: dict[int, tuple] = {}
    out, last = [], None
    for row in ref.itertuples():
        bid = None if row.bid_px_00 != row.bid_px_00 or row.bid_sz_00 == 0 else (row.bid_px_00, int(row.bid_sz_00))
        ask = None if row.ask_px_00 != row.ask_px_00 or row.ask_sz_00 == 0 else (row.ask_px_00, int(row.ask_sz_00))
        venues[int(row.publisher_id)] = (bid, ask)
        if row.action in ("T", "F") or not int(row.flags) & F_LAST:
            continue
        bids = [(b[0], b[1], p) for p, (b, _) in venues.items() if b]
        asks = [(a[0], a[1], p) for p, (_, a) in venues.items() if a]
        best_bid = max(bids, key=lambda x: (x[0], x[1])) if bids else None
        best_ask = min(asks, key=lambda x: (x[0], -x[1])) if asks else None
        quote = (best_bid, best_ask)
        if quote != last:
            out.append((int(row.ts_event), quote))
            last = quote
    return out


def _check_book(result, ref, klass, schema):
    last = (ref["flags"].astype(int) & F_LAST) != 0
    not_trade = ~ref["action"].isin(["T", "F"])
    if klass == "futures":  # mbp-10 / mbp-1 -> futures_mbp10: every complete non-trade event
        mbp = result.tables["futures_mbp10"]
        rows = ref[last & not_trade]
        assert mbp.height == len(rows)
        assert result.stats["trade_records_in_book_schema"] == int((~not_trade).sum())
        assert mbp["ts_ns"].to_list() == rows["ts_event"].astype("int64").tolist()
        depth = 10 if schema == "mbp-10" else 1
        for side in ("bid", "ask"):
            for k in range(10):
                col = f"{side}_px_{k:02d}"
                if k < depth:
                    assert mbp[col].to_list() == floats(rows[col]), col
                    assert mbp[f"{side}_ct_{k:02d}"].to_list() == [
                        None if p != p else int(c) for p, c in zip(rows[col], rows[f"{side}_ct_{k:02d}"])
                    ]
                else:
                    assert mbp[col].null_count() == mbp.height  # not given by MBP-1
        _check_identity(mbp, rows, klass)
        return
    quotes = result.tables["option_quotes" if klass == "options" else "stock_quotes"]
    expected = _reference_bbo(ref)
    assert quotes.height == len(expected)
    assert quotes["ts_ns"].to_list() == [ts for ts, _ in expected]
    assert quotes["bid"].to_list() == [b[0] if b else None for _, (b, _) in expected]
    assert quotes["bid_size"].to_list() == [b[1] if b else None for _, (b, _) in expected]
    assert quotes["ask"].to_list() == [a[0] if a else None for _, (_, a) in expected]
    assert quotes["bid_exchange"].to_list() == [mic(b[2]) if b else None for _, (b, _) in expected]
    assert result.stats["empty_quotes"] == sum(1 for _, (b, a) in expected if b is None and a is None)


def _check_sampled(result, ref, klass, schema):
    """bbo / cbbo: one row per record, at the interval end (ts_recv)."""
    if klass == "futures":
        frame = result.tables["futures_mbp10"]
        bid, ask = frame["bid_px_00"], frame["ask_px_00"]
        assert frame["event_price"].to_list() == floats(ref["price"])  # the last trade
        assert set(frame["action"]) == {"N"}
    else:
        frame = result.tables["option_quotes" if klass == "options" else "stock_quotes"]
        bid, ask = frame["bid"], frame["ask"]
        if schema.startswith("cbbo"):
            assert frame["bid_exchange"].to_list() == [
                mic(p) if s > 0 else None for p, s in zip(ref["bid_pb_00"], ref["bid_sz_00"])
            ]
        else:
            assert frame["bid_exchange"].drop_nulls().to_list() == [
                mic(p) for p, s in zip(ref["publisher_id"], ref["bid_sz_00"]) if s > 0
            ]
    assert frame.height == len(ref)
    assert frame["ts_ns"].to_list() == ref["ts_recv"].astype("int64").tolist()
    assert bid.to_list() == floats(ref["bid_px_00"])
    assert ask.to_list() == floats(ref["ask_px_00"])
    if "sequence" in ref:
        assert frame["sequence"].to_list() == ref["sequence"].astype("int64").tolist()
    else:  # CBBO has no sequence: the record's position in the file
        assert frame["sequence"].to_list() == list(range(len(ref)))
    _check_identity(frame, ref, klass)


class RefBook:
    """A plain order-by-id book (independent of m17_platform.book): A adds, C removes the
    quantity given, M replaces price and size, R clears; T, F, N change nothing."""

    def __init__(self) -> None:
        self.orders: dict[int, list] = {}

    def apply(self, action, side, oid, price, size):
        if action == "R":
            self.orders.clear()
        elif action == "A":
            self.orders[oid] = [side, price, size]
        elif action == "C" and oid in self.orders:
            self.orders[oid][2] -= size
            if self.orders[oid][2] <= 0:
                del self.orders[oid]
        elif action == "M":
            self.orders[oid] = [side, price, size]

    def top(self, depth: int):
        levels = {"B": {}, "A": {}}
        for side, price, size in self.orders.values():
            lv = levels[side].setdefault(price, [0, 0])
            lv[0] += size
            lv[1] += 1
        bids = sorted(levels["B"].items(), reverse=True)[:depth]
        asks = sorted(levels["A"].items())[:depth]
        return [(p, s, c) for p, (s, c) in bids], [(p, s, c) for p, (s, c) in asks]


def _check_mbo(result, ref, klass, schema):
    book = RefBook()
    rows = []
    for r in ref.itertuples():
        book.apply(r.action, r.side, int(r.order_id), r.price, int(r.size))
        if int(r.flags) & F_LAST:
            rows.append(book.top(10))
    snapshot = (ref["flags"].astype(int) & 32) != 0
    if snapshot.all() and not rows:  # a snapshot without F_LAST: emitted once, at the end of the file
        rows.append(book.top(10))
    # records after the last F_LAST are applied, counted, never emitted as a book
    trailing = len(ref) - 1 - max((i for i, f in enumerate(ref["flags"]) if int(f) & F_LAST), default=-1)
    assert result.stats["trailing_records"] == (0 if snapshot.all() else trailing)
    trades = result.tables["futures_trades" if klass == "futures" else "stock_trades"]
    assert trades.height == int((ref["action"] == "T").sum())
    if klass == "futures":
        mbp = result.tables["futures_mbp10"]
        assert mbp.height == len(rows)
        for k in range(10):
            assert mbp[f"bid_px_{k:02d}"].to_list() == [b[k][0] if k < len(b) else None for b, _ in rows]
            assert mbp[f"ask_sz_{k:02d}"].to_list() == [a[k][1] if k < len(a) else None for _, a in rows]
    else:  # equities: top of book, when it changes
        tops, last = [], None
        for b, a in rows:
            top = (b[0][:2] if b else None, a[0][:2] if a else None)
            if top != last:
                tops.append(top)
                last = top
        quotes = result.tables["stock_quotes"]
        assert quotes["bid"].to_list() == [b[0] if b else None for b, _ in tops]
        assert quotes["ask_size"].to_list() == [a[1] if a else None for _, a in tops]
        assert set(quotes["bid_exchange"].drop_nulls()) == {"XNAS"}


def _check_definition(result, ref, klass, schema):
    contracts = result.tables["option_contracts"]
    assert contracts.height == len(ref) == 1
    row = contracts.row(0, named=True)
    d = ref.iloc[0]
    assert row["option_symbol"] == occ_from_raw(d["raw_symbol"]) == "O:AAPL250221C00250000"
    assert row["strike"] == d["strike_price"] == 250.0
    assert row["right"] == d["instrument_class"] == "C"
    assert row["underlying"] == d["underlying"] == "AAPL"
    expiration = dt.datetime.fromtimestamp(int(d["expiration"]) / 1e9, tz=dt.timezone.utc).date()
    assert row["expiration"] == expiration == dt.date(2025, 2, 21)
    assert int(d["contract_multiplier"]) == 2**31 - 1  # OPRA leaves it undefined (INT32_MAX)
    assert row["multiplier"] == 100 and result.stats["multiplier_defaulted"] == 1
    assert row["exercise_style"] == "A"
    close = dt.datetime(2025, 2, 21, 16, 0, tzinfo=ZoneInfo("America/New_York"))
    assert row["expiry_ts_ns"] == int(close.timestamp()) * 1_000_000_000


def test_live_capture_every_record_type():
    """The mixed live stream: MBO, MBP-1, MBP-10 and trades records of ESZ4, named by its
    SymbolMappingMsg records."""
    path = FIXTURES / "LIVE" / "test_data.live.dbn.zst"
    r = read_dbn(path)
    assert set(r.tables) == {"futures_trades", "futures_mbp10"}
    trades = r.tables["futures_trades"]
    assert trades.height == 2 and set(trades["symbol"]) == {"ESZ4"} and set(trades["underlying"]) == {"SPY"}
    assert trades["price"].to_list() == [4756.0, 4756.0]
    sources = r.tables["futures_mbp10"].group_by("source").len().sort("source")
    assert dict(sources.iter_rows()) == {"databento.glbx-mdp3.mbo": 4, "databento.glbx-mdp3.mbp-10": 2}
    assert r.stats["records_unmapped_schema"] == 2  # the two definitions (futures: symbology only)


def test_osi_parsing():
    assert parse_osi("AAPL  250221C00250000") == ("AAPL", dt.date(2025, 2, 21), "C", 250.0)
    assert parse_osi("SPXW  241220P05850500") == ("SPXW", dt.date(2024, 12, 20), "P", 5850.5)
    with pytest.raises(ValueError, match="not an OSI option symbol"):
        parse_osi("ESH4")


# --- hand-made DBN files ---------------------------------------------------------------------


def dbn_file(tmp_path: Path, name: str, metadata: databento_dbn.Metadata, records: np.ndarray, *, zstd: bool = True) -> Path:
    data = bytes(metadata.encode()) + records.tobytes()
    path = tmp_path / name
    path.write_bytes(zstandard.ZstdCompressor().compress(data) if zstd else data)
    return path


@dataclass
class Interval:  # databento_dbn's MappingInterval / SymbolMapping are protocols
    start_date: dt.date
    end_date: dt.date
    symbol: str


@dataclass
class Mapping:
    raw_symbol: str
    intervals: list


def opra_metadata(schema: str, *, stype_in=databento_dbn.SType.RAW_SYMBOL, mappings=True) -> databento_dbn.Metadata:
    maps = [Mapping("AAPL  250221C00250000", [Interval(dt.date(2025, 2, 20), dt.date(2025, 2, 21), "16783963")])] \
        if mappings else []
    return databento_dbn.Metadata(
        dataset="OPRA.PILLAR", start=1_740_009_600_000_000_000, stype_in=stype_in,
        stype_out=databento_dbn.SType.INSTRUMENT_ID, schema=databento_dbn.Schema(schema),
        symbols=["AAPL  250221C00250000"] if mappings else ["AAPL.OPT"], mappings=maps,
        end=1_740_096_000_000_000_000, version=3,
    )


def mbp1_records(rows: list[tuple]) -> np.ndarray:
    """MBP-1 records: (publisher, ts, action, bid $, bid size, ask $, ask size, flags)."""
    dtype = record_dtype("mbp-1", 3)
    out = np.zeros(len(rows), dtype=dtype)
    for i, (pub, ts, action, bid, bsz, ask, asz, flags) in enumerate(rows):
        out[i]["length"] = dtype.itemsize // 4
        out[i]["rtype"] = 1
        out[i]["publisher_id"] = pub
        out[i]["instrument_id"] = 16783963
        out[i]["ts_event"] = ts
        out[i]["ts_recv"] = ts + 1000
        out[i]["action"] = action.encode()
        out[i]["side"] = b"N"
        out[i]["flags"] = flags
        out[i]["sequence"] = i + 1
        out[i]["price"] = UNDEF_PRICE
        out[i]["bid_px_00"] = UNDEF_PRICE if bid is None else round(bid * 1e9)
        out[i]["ask_px_00"] = UNDEF_PRICE if ask is None else round(ask * 1e9)
        out[i]["bid_sz_00"] = bsz
        out[i]["ask_sz_00"] = asz
    return out


T0 = 1_740_061_800_000_000_000  # 2025-02-20 14:30 UTC


def test_opra_mbp1_is_consolidated_across_venues(tmp_path):
    """Per-venue BBOs (C2 34, EDGX 24, BZX 36) -> one consolidated BBO: best price, then the
    larger size, then the earlier update; a row only when it changes; crossed kept."""
    recs = mbp1_records([
        (34, T0 + 1, "A", 0.20, 5, 0.30, 5, F_LAST),      # C2 alone: 0.20 x 0.30
        (24, T0 + 2, "A", 0.21, 3, 0.31, 9, F_LAST),      # EDGX bid better: 0.21 (EDGX) x 0.30 (C2)
        (36, T0 + 3, "A", 0.21, 7, 0.30, 1, F_LAST),      # BZX ties 0.21 with more size -> BZX; ask 0.30 C2 (5 > 1)
        (36, T0 + 4, "A", 0.19, 7, 0.35, 1, 0),           # mid-event: not written
        (36, T0 + 5, "A", 0.19, 7, 0.35, 1, F_LAST),      # BZX backs off: 0.21 (EDGX) x 0.30 (C2)
        (24, T0 + 6, "T", 0.21, 3, 0.31, 9, F_LAST),      # a trade record: counted, not a quote
        (34, T0 + 7, "C", None, 0, 0.30, 5, F_LAST),      # C2 bid gone: bid still EDGX 0.21 -> unchanged? ask same
        (24, T0 + 8, "A", 0.32, 3, 0.33, 9, F_LAST),      # EDGX bid 0.32 above C2 ask 0.30: crossed, kept
    ])
    path = dbn_file(tmp_path, "opra.mbp-1.dbn.zst", opra_metadata("mbp-1"), recs)
    r = read_dbn(path)
    q = r.tables["option_quotes"]
    got = list(zip(q["ts_ns"].to_list(), q["bid"].to_list(), q["bid_size"].to_list(), q["bid_exchange"].to_list(),
                   q["ask"].to_list(), q["ask_size"].to_list(), q["ask_exchange"].to_list()))
    assert got == [
        (T0 + 1, 0.20, 5, "C2OX", 0.30, 5, "C2OX"),
        (T0 + 2, 0.21, 3, "EDGO", 0.30, 5, "C2OX"),
        (T0 + 3, 0.21, 7, "BATO", 0.30, 5, "C2OX"),
        (T0 + 5, 0.21, 3, "EDGO", 0.30, 5, "C2OX"),
        (T0 + 8, 0.32, 3, "EDGO", 0.30, 5, "C2OX"),
    ]
    s = r.stats
    assert (s["mid_event_records"], s["trade_records_in_book_schema"], s["unchanged_quote_updates"]) == (1, 1, 1)
    assert s["crossed_quotes"] == 1 and s["locked_quotes"] == 0
    # the same file decoded one record at a time gives the same rows (state carried across chunks)
    assert read_dbn(path, chunk_records=1).tables["option_quotes"].equals(q)


def test_ids_named_by_definitions_when_the_file_has_no_raw_symbology(tmp_path):
    """A parent-symbology request (AAPL.OPT) maps the parent to ids, not raw symbols: the
    definitions name them; without them the first record is an error naming the id."""
    src = FIXTURES / "OPRA.PILLAR" / "test_data.trades.dbn.zst"
    records = db.DBNStore.from_file(src).to_ndarray()
    meta = opra_metadata("trades", stype_in=databento_dbn.SType.PARENT, mappings=False)
    path = dbn_file(tmp_path, "parent.trades.dbn", meta, records, zstd=False)
    with pytest.raises(SourceFormatError, match="instrument 16783963 has no raw symbol") as info:
        read_dbn(path)
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 1, "instrument_id")
    defs = read_definitions(FIXTURES / "OPRA.PILLAR" / "test_data.definition.dbn.zst")
    trades = read_dbn(path, definitions=defs).tables["option_trades"]
    assert set(trades["option_symbol"]) == {"O:AAPL250221C00250000"}
    assert trades["price"].to_list() == [0.24, 0.20, 0.19, 0.19]


def test_bad_records_name_file_record_and_field(tmp_path):
    src = FIXTURES / "OPRA.PILLAR" / "test_data.trades.dbn.zst"
    records = db.DBNStore.from_file(src).to_ndarray().copy()
    records["price"][2] = UNDEF_PRICE
    path = dbn_file(tmp_path, "undef.trades.dbn.zst", opra_metadata("trades"), records)
    with pytest.raises(SourceFormatError, match="trade record with an undefined price") as info:
        read_dbn(path)
    assert (info.value.line, info.value.field) == (3, "price")
    records = db.DBNStore.from_file(src).to_ndarray().copy()
    records["rtype"][1] = 160
    path = dbn_file(tmp_path, "rtype.trades.dbn.zst", opra_metadata("trades"), records)
    with pytest.raises(SourceFormatError, match="record is not a trades record") as info:
        read_dbn(path)
    assert (info.value.line, info.value.field) == (2, "rtype")
    with pytest.raises(ValueError, match="has no asset class"):
        meta = databento_dbn.Metadata(dataset="XXXX.TEST", start=0, stype_in=databento_dbn.SType.RAW_SYMBOL,
                                      stype_out=databento_dbn.SType.INSTRUMENT_ID,
                                      schema=databento_dbn.Schema.TRADES, version=3)
        read_dbn(dbn_file(tmp_path, "unknown.dbn", meta, records[:0], zstd=False))
