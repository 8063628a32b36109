"""DatabentoSource: the Source protocol over local DBN files and over databento's Historical
client talking to a local HTTPS server (127.0.0.1, port 0, a thread) that emulates
``POST /v0/timeseries.get_range`` with basic auth and answers with the bundled fixtures.

databento 0.87 forces ``https://`` on any gateway (``validate_gateway``), so the emulator
speaks TLS with a self-signed certificate made for the test, trusted through
``REQUESTS_CA_BUNDLE``."""

import base64
import datetime as dt
import ipaddress
import json
import logging
import ssl
import threading
import urllib.parse
import warnings
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import databento as db
import databento_dbn
import polars as pl
import pytest
import zstandard

from m17_platform import schemas
from m17_platform.errors import SourceFormatError
from m17_platform.lake import PartitionRef
from m17_platform.sources.base import Source
from m17_platform.sources.databento import DatabentoRequestError, DatabentoSource, read_mbo

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "data" / "samples" / "databento_test_data"
ESH4 = ROOT / "data" / "samples" / "databento_glbx_es_real" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
OPRA_DAY = PartitionRef(dt.date(2025, 2, 20), "AAPL")
GLBX_DAY = PartitionRef(dt.date(2020, 12, 28), "SPY")  # ESH1's Sunday-evening session is CME trade date 12-28
NVDA_DAY = PartitionRef(dt.date(2020, 12, 28), "NVDA")
KEY = "db-TESTKEY0123456789abcdef"


def collect(source, table, ref):
    chunks = list(source.chunks(table, ref))
    frame = pl.concat([c.frame for c in chunks]) if chunks else schemas.empty_frame(schemas.table(table))
    stats: dict[str, int] = {}
    for c in chunks:
        assert c.table == table
        assert c.frame.columns == schemas.table(table).columns
        for k, v in c.stats.items():
            stats[k] = stats.get(k, 0) + v
    return chunks, frame, stats


@dataclass
class Interval:
    start_date: dt.date
    end_date: dt.date
    symbol: str


def rewrite(path: Path, *, stype_in: str, symbols: list[str]) -> bytes:
    """The fixture's records under new metadata: requested by ``symbols`` with ``stype_in``
    (parent / continuous), so its symbology maps no raw symbol: definitions must name the ids."""
    src = db.DBNStore.from_file(path)
    meta = src.metadata
    new = databento_dbn.Metadata(
        dataset=meta.dataset, start=meta.start, stype_in=databento_dbn.SType(stype_in),
        stype_out=databento_dbn.SType.INSTRUMENT_ID, schema=databento_dbn.Schema(str(meta.schema)),
        symbols=symbols, mappings=[], end=meta.end, version=3,
    )
    return zstandard.ZstdCompressor().compress(bytes(new.encode()) + src.to_ndarray().tobytes())


# --- files --------------------------------------------------------------------------------------


def test_source_protocol_and_tables():
    source: Source = DatabentoSource([FIXTURES / "OPRA.PILLAR" / "test_data.trades.dbn.zst",
                              FIXTURES / "OPRA.PILLAR" / "test_data.tbbo.dbn.zst",
                              FIXTURES / "GLBX.MDP3" / "test_data.mbo.dbn.zst"])
    assert isinstance(source.name, str) and callable(source.tables) and callable(source.chunks)
    assert source.name == "databento.files[3]"
    assert source.tables() == ("option_trades", "option_quotes", "futures_trades", "futures_mbp10")
    with pytest.raises(ValueError, match="either files or an API key"):
        DatabentoSource()
    with pytest.raises(ValueError, match="either files or an API key"):
        DatabentoSource([ESH4], key=KEY)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DatabentoSource([FIXTURES / "missing.dbn.zst"])


def test_rows_filtered_to_the_partition_and_chunked():
    files = [FIXTURES / "OPRA.PILLAR" / "test_data.trades.dbn.zst"]
    chunks, frame, stats = collect(DatabentoSource(files, chunk_rows=1), "option_trades", OPRA_DAY)
    assert [c.frame.height for c in chunks] == [1, 1, 1, 1]
    assert frame["price"].to_list() == [0.24, 0.20, 0.19, 0.19]
    assert stats == {"files": 1, "records": 4, "rows": 4}
    # another underlying, another day: nothing kept, everything counted
    _, frame, stats = collect(DatabentoSource(files), "option_trades", PartitionRef(dt.date(2025, 2, 20), "SPY"))
    assert frame.height == 0 and stats["rows_other_partitions"] == 4
    _, frame, stats = collect(DatabentoSource(files), "option_trades", PartitionRef(dt.date(2025, 2, 21), "AAPL"))
    assert frame.height == 0 and stats["rows_other_partitions"] == 4
    # a table the files do not fill yields nothing
    assert list(DatabentoSource(files).chunks("option_quotes", OPRA_DAY)) == []


def test_a_definition_file_names_the_instruments_of_the_others(tmp_path):
    parent = tmp_path / "aapl-parent.trades.dbn.zst"
    parent.write_bytes(rewrite(FIXTURES / "OPRA.PILLAR" / "test_data.trades.dbn.zst", stype_in="parent",
                               symbols=["AAPL.OPT"]))
    with pytest.raises(SourceFormatError, match="no raw symbol") as info:
        list(DatabentoSource([parent]).chunks("option_trades", OPRA_DAY))
    assert info.value.path == str(parent) and info.value.field == "instrument_id"
    source = DatabentoSource([FIXTURES / "OPRA.PILLAR" / "test_data.definition.dbn.zst", parent])
    assert source.tables() == ("option_trades", "option_contracts")
    _, trades, _ = collect(source, "option_trades", OPRA_DAY)
    assert set(trades["option_symbol"]) == {"O:AAPL250221C00250000"} and trades.height == 4
    _, contracts, stats = collect(source, "option_contracts", OPRA_DAY)
    assert contracts["option_symbol"].to_list() == ["O:AAPL250221C00250000"]
    assert stats["multiplier_defaulted"] == 1


def test_futures_rows_go_to_the_cme_trade_date():
    """ESH1 trades at 2020-12-28 00:00 UTC (Sunday 19:00 ET) belong to trade date Monday 12-28."""
    source = DatabentoSource([FIXTURES / "GLBX.MDP3" / "test_data.trades.dbn.zst"])
    _, frame, stats = collect(source, "futures_trades", GLBX_DAY)
    assert frame.height == 4 and set(frame["underlying"]) == {"SPY"}
    _, frame, stats = collect(source, "futures_trades", PartitionRef(dt.date(2020, 12, 24), "SPY"))
    assert frame.height == 0  # the file's range is days away: not even read
    assert stats == {}


@pytest.mark.slow
def test_esh4_streamed_in_small_chunks_equals_the_whole_file():
    """Records decoded 5,000 at a time (the 8,725-record snapshot spans two chunks): the
    partition's futures_mbp10 equals the whole-file replay row for row, chunks <= 5,000 rows."""
    whole = read_mbo(ESH4)
    chunks, frame, stats = collect(DatabentoSource([ESH4], chunk_rows=5_000), "futures_mbp10",
                                   PartitionRef(dt.date(2023, 12, 26), "SPY"))
    assert max(c.frame.height for c in chunks) <= 5_000
    assert frame.equals(whole.tables["futures_mbp10"])
    assert stats["rows"] == 47_023 and stats["snapshot_rows"] == 1 and stats["crossed_book_events"] == 891
    assert stats.get("rows_other_partitions", 0) == 0


# --- Historical ----------------------------------------------------------------------------------


def _certificate(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _Gateway(BaseHTTPRequestHandler):
    """Databento's ``POST /v0/timeseries.get_range``: form fields in, zstd DBN out; basic auth
    with the API key as user name, 401 with a JSON ``detail`` otherwise."""

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
        self.server.requests.append({"path": self.path, **form})
        expected = "Basic " + base64.b64encode(f"{self.server.key}:".encode()).decode()
        if self.path != "/v0/timeseries.get_range":
            return self._send(404, json.dumps({"detail": "not found"}).encode(), "application/json")
        if self.headers.get("Authorization") != expected:
            return self._send(401, json.dumps({"detail": "Authentication failed."}).encode(), "application/json")
        data = self.server.responses.get((form.get("dataset"), form.get("schema")))
        if data is None:
            return self._send(422, json.dumps({"detail": f"no data for {form}"}).encode(), "application/json")
        self._send(200, data, "application/octet-stream")

    def _send(self, status, payload, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture()
def gateway(tmp_path, monkeypatch):
    cert, key = _certificate(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.key = KEY
    server.requests = []
    server.responses = {
        ("OPRA.PILLAR", "definition"): (FIXTURES / "OPRA.PILLAR" / "test_data.definition.dbn.zst").read_bytes(),
        ("OPRA.PILLAR", "trades"): rewrite(FIXTURES / "OPRA.PILLAR" / "test_data.trades.dbn.zst",
                                           stype_in="parent", symbols=["AAPL.OPT"]),
        ("OPRA.PILLAR", "cbbo-1s"): rewrite(FIXTURES / "OPRA.PILLAR" / "test_data.cbbo-1s.dbn.zst",
                                            stype_in="parent", symbols=["AAPL.OPT"]),
        ("GLBX.MDP3", "definition"): (FIXTURES / "GLBX.MDP3" / "test_data.definition.dbn.zst").read_bytes(),
        ("GLBX.MDP3", "trades"): rewrite(FIXTURES / "GLBX.MDP3" / "test_data.trades.dbn.zst",
                                         stype_in="continuous", symbols=["ES.v.0"]),
        ("GLBX.MDP3", "mbp-10"): rewrite(FIXTURES / "GLBX.MDP3" / "test_data.mbp-10.dbn.zst",
                                         stype_in="continuous", symbols=["ES.v.0"]),
        ("XNAS.ITCH", "trades"): (FIXTURES / "XNAS.ITCH" / "test_data.trades.dbn.zst").read_bytes(),
        ("XNAS.ITCH", "mbp-1"): (FIXTURES / "XNAS.ITCH" / "test_data.mbp-1.dbn.zst").read_bytes(),
    }
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    try:
        yield server, f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_historical_fetches_every_table_over_a_real_socket(gateway, tmp_path):
    server, url = gateway
    source = DatabentoSource(key=KEY, gateway=url, workdir=tmp_path / "spool", chunk_rows=2)
    assert source.name == "databento.historical"
    assert set(source.tables()) == {"option_trades", "option_quotes", "option_contracts", "stock_trades",
                                    "stock_quotes", "futures_trades", "futures_mbp10"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chunks, trades, stats = collect(source, "option_trades", OPRA_DAY)
        _, contracts, _ = collect(source, "option_contracts", OPRA_DAY)
        _, quotes, _ = collect(source, "option_quotes", OPRA_DAY)
        _, fut, _ = collect(source, "futures_trades", GLBX_DAY)
        _, book, _ = collect(source, "futures_mbp10", GLBX_DAY)
        _, nvda, _ = collect(source, "stock_trades", NVDA_DAY)
        _, nvda_q, _ = collect(source, "stock_quotes", NVDA_DAY)
    assert all(c.frame.height <= 2 for c in chunks)
    assert trades["option_symbol"].to_list() == ["O:AAPL250221C00250000"] * 4  # named via the definitions
    assert trades["price"].to_list() == [0.24, 0.20, 0.19, 0.19] and stats["rows"] == 4
    assert contracts["strike"].to_list() == [250.0]
    assert quotes.height == 4 and quotes["ask"].to_list() == [None, 0.25, 0.21, 0.24]
    assert fut["symbol"].to_list() == ["ESH1"] * 4 and set(fut["underlying"]) == {"SPY"}
    assert book.height == 4 and book["bid_px_09"].null_count() == 0
    assert nvda["price"].to_list() == [521.0, 521.0, 521.0, 521.01]
    assert nvda_q.height == 4
    calls = [(r["dataset"], r["schema"], r["symbols"], r["stype_in"]) for r in server.requests]
    assert calls == [
        ("OPRA.PILLAR", "definition", "AAPL.OPT", "parent"),  # names the instruments first
        ("OPRA.PILLAR", "trades", "AAPL.OPT", "parent"),
        # option_contracts reuses the definitions already downloaded
        ("OPRA.PILLAR", "cbbo-1s", "AAPL.OPT", "parent"),
        ("GLBX.MDP3", "definition", "ES.v.0", "continuous"),
        ("GLBX.MDP3", "trades", "ES.v.0", "continuous"),
        ("GLBX.MDP3", "mbp-10", "ES.v.0", "continuous"),
        ("XNAS.ITCH", "trades", "NVDA", "raw_symbol"),
        ("XNAS.ITCH", "mbp-1", "NVDA", "raw_symbol"),
    ]
    first = server.requests[1]
    assert (first["encoding"], first["compression"]) == ("dbn", "zstd")
    # the ET calendar day of the partition, in ns UTC, end exclusive
    assert (int(first["start"]), int(first["end"])) == (1_740_027_600_000_000_000, 1_740_114_000_000_000_000)
    source.close()


def test_historical_401_is_clear_and_never_shows_the_key(gateway, caplog):
    _, url = gateway
    secret = "db-WRONGkey-s3cr3t-value"
    source = DatabentoSource(key=secret, gateway=url)
    assert secret not in repr(source)
    with caplog.at_level(logging.DEBUG), pytest.raises(DatabentoRequestError) as info:
        list(source.chunks("stock_trades", NVDA_DAY))
    message = str(info.value)
    assert "HTTP 401" in message and "API key was refused" in message and "DATABENTO_API_KEY" in message
    assert "XNAS.ITCH trades NVDA" in message
    assert secret not in message and secret not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert secret not in caplog.text


def test_from_env(gateway):
    _, url = gateway
    source = DatabentoSource.from_env(environ={"DATABENTO_API_KEY": KEY, "M17_DATABENTO_GATEWAY": url})
    assert source.gateway == url and source.name == "databento.historical"
    _, frame, _ = collect(source, "stock_trades", NVDA_DAY)
    assert frame.height == 4
    with pytest.raises(ValueError, match="DATABENTO_API_KEY is not set"):
        DatabentoSource.from_env(environ={})
    default = DatabentoSource.from_env(environ={"DATABENTO_API_KEY": KEY})
    assert default.gateway == "https://hist.databento.com"
