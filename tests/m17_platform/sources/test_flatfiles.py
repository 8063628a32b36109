"""Polygon / Massive flat files streamed from moto's S3 server on loopback.

Each test uploads a generated day file (CSV.gz with the documented header, several
underlyings, cancel / late / correction codes, malformed lines) to a bucket of a
``ThreadedMotoServer`` started here, and reads it through a boto3 client pointed at it.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import random
from dataclasses import dataclass, replace

import boto3
import polars as pl
import pytest
from moto.server import ThreadedMotoServer

from m17_platform import schemas
from m17_platform.errors import SourceFormatError
from m17_platform.lake import PartitionRef
from m17_platform.settings import DEFAULT, Settings
from m17_platform.sources.flatfiles import DATASETS, FlatFilesSource
from m17_platform.sources.polygon import PolygonAuthError, PolygonNoDataError, PolygonRetryError

DAY = dt.date(2024, 3, 7)
T0 = 1709821800_000_000_000  # 2024-03-07 09:30 ET
OPTION_TRADES_HEADER = "ticker,conditions,correction,exchange,participant_timestamp,price,sip_timestamp,size"
OPTION_QUOTES_HEADER = "ticker,ask_exchange,ask_price,ask_size,bid_exchange,bid_price,bid_size,sequence_number,sip_timestamp"
STOCK_TRADES_HEADER = ("ticker,conditions,correction,exchange,id,participant_timestamp,price,sequence_number,"
                       "sip_timestamp,size,tape,trf_id,trf_timestamp")
STOCK_QUOTES_HEADER = ("ticker,ask_exchange,ask_price,ask_size,bid_exchange,bid_price,bid_size,conditions,indicators,"
                       "participant_timestamp,sequence_number,sip_timestamp,tape,trf_timestamp")


@pytest.fixture(scope="module")
def s3():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket="flatfiles")
    try:
        yield client, endpoint
    finally:
        server.stop()


def settings(chunk_rows: int = 500, block: int = 16 << 10) -> Settings:
    return replace(DEFAULT, ingest=replace(DEFAULT.ingest, chunk_rows=chunk_rows),
                   polygon=replace(DEFAULT.polygon, flatfiles_block_bytes=block))


def upload(client, table: str, lines: list[str], day: dt.date = DAY) -> tuple[str, int]:
    key = DATASETS[table].key(day)
    body = gzip.compress(("\n".join(lines) + "\n").encode())
    client.put_object(Bucket="flatfiles", Key=key, Body=body)
    return key, len(body)


def collect(chunks):
    chunks = list(chunks)
    stats: dict[str, int] = {}
    for c in chunks:
        for k, v in c.stats.items():
            stats[k] = stats.get(k, 0) + v
    return pl.concat([c.frame for c in chunks]), stats, [c.frame.height for c in chunks]


@dataclass
class Row:
    line: int
    fields: dict[str, str]


def option_trades(n: int, seed: int = 7) -> tuple[list[str], list[Row]]:
    """A day of OPRA prints: SPY, SPX (roots SPX and SPXW), SPYG (a root that starts like
    SPY), AAPL; conditions with OPRA's cancel (201, 203) and late (204) codes, correction
    indicators 1 (superseded), 8 (canceled), 12 (correction record)."""
    rng = random.Random(seed)
    roots = ["SPY", "SPY", "SPX", "SPXW", "SPYG", "AAPL"]
    conditions = ["209", "209", "209", "219", "201", "203", "204", "209,219", ""]
    corrections = [0] * 20 + [1, 8, 12]
    lines, rows = [OPTION_TRADES_HEADER], []
    for i in range(n):
        root = rng.choice(roots)
        strike = rng.randrange(100, 600) * 1000 if root not in ("SPX", "SPXW") else rng.randrange(4000, 6000) * 1000
        ticker = f"O:{root}240315{rng.choice('CP')}{strike:08d}"
        f = {"ticker": ticker, "conditions": rng.choice(conditions), "correction": str(rng.choice(corrections)),
             "exchange": str(rng.choice([300, 302, 303, 307, 312, 316, 322])),
             "participant_timestamp": str(T0 + i * 1_000_000 - 1234), "price": f"{rng.randrange(1, 5000) / 100:.2f}",
             "sip_timestamp": str(T0 + i * 1_000_000), "size": str(rng.randrange(1, 200))}
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow([f[c] for c in OPTION_TRADES_HEADER.split(",")])
        lines.append(buf.getvalue())
        rows.append(Row(len(lines), f))
    return lines, rows


def test_option_trades_stream_the_underlying_in_bounded_chunks(s3):
    client, endpoint = s3
    lines, rows = option_trades(20_000)
    # a line with too few fields, of another underlying: counted, not fatal
    lines.insert(3000, "O:AAPL240315C00180000,209,0,302")
    rows = [Row(r.line + (r.line > 3000), r.fields) for r in rows]
    key, size = upload(client, "option_trades", lines)

    counting = CountingClient(client)
    src = FlatFilesSource(settings(), s3_client=counting, endpoint_url=endpoint)
    chunks = src.chunks("option_trades", PartitionRef(DAY, "SPY"))
    first = next(chunks)
    # streaming: the first chunk comes out before the file has been downloaded
    assert 0 < counting.bytes_read < size / 2
    frame, stats, sizes = collect([first, *chunks])
    assert counting.bytes_read == size and counting.closed

    spy = [r for r in rows if r.fields["ticker"].startswith("O:SPY2")]
    others = len(rows) - len(spy)
    assert max(sizes) <= 500 and len(sizes) >= len(spy) // 500
    assert frame.height == len(spy) == stats["rows"]
    assert stats["rows_read"] == len(rows) + 1 and stats["rows_other_underlyings"] == others
    assert stats["malformed_rows_other_underlyings"] == 1
    assert set(frame["root"]) == {"SPY"} and set(frame["underlying"]) == {"SPY"}
    assert set(frame["source"]) == {"polygon.flatfiles.us_options_opra.trades_v1"}

    frame = frame.sort("sequence")
    assert frame["sequence"].to_list() == [r.line for r in spy]  # the row's line in the file
    assert frame["option_symbol"].to_list() == [r.fields["ticker"] for r in spy]
    assert frame["ts_ns"].to_list() == [int(r.fields["sip_timestamp"]) for r in spy]
    assert frame["price"].to_list() == [float(r.fields["price"]) for r in spy]
    assert frame["size"].to_list() == [int(r.fields["size"]) for r in spy]
    assert frame["exchange"].to_list() == [r.fields["exchange"] for r in spy]
    assert frame["conditions"].to_list() == [r.fields["conditions"].split(",") if r.fields["conditions"] else []
                                             for r in spy]
    strike = [int(r.fields["ticker"][-8:]) / 1000 for r in spy]
    assert frame["strike"].to_list() == strike and set(frame["expiration"]) == {dt.date(2024, 3, 15)}
    assert frame["right"].to_list() == [r.fields["ticker"][-9] for r in spy]

    def codes(r):
        return set(r.fields["conditions"].split(",")) if r.fields["conditions"] else set()

    canceled = [bool(codes(r) & {"201", "203"}) or r.fields["correction"] == "8" for r in spy]
    assert frame["canceled"].to_list() == canceled
    assert stats["canceled"] == sum(canceled) > 0
    assert stats["late"] == sum("204" in codes(r) for r in spy) > 0
    assert stats["corrected"] == sum(r.fields["correction"] == "1" for r in spy) > 0
    assert stats["correction_records"] == sum(r.fields["correction"] == "12" for r in spy) > 0
    superseded = [r.fields["correction"] == "1" for r in spy]
    assert stats["excluded_from_volume"] == sum(c or s for c, s in zip(canceled, superseded))
    assert stats["unknown_condition_codes"] == 0
    assert frame.schema == pl.from_arrow(schemas.OPTION_TRADES.schema.empty_table()).schema


def test_index_underlying_keeps_all_its_roots(s3):
    client, endpoint = s3
    lines, rows = option_trades(3000, seed=11)
    upload(client, "option_trades", lines)
    src = FlatFilesSource(settings(chunk_rows=10_000), s3_client=client, endpoint_url=endpoint)
    frame, stats, _ = collect(src.chunks("option_trades", PartitionRef(DAY, "SPX")))
    expected = [r for r in rows if r.fields["ticker"].split("240315")[0] in ("O:SPX", "O:SPXW")]
    assert frame.height == len(expected) and set(frame["root"]) == {"SPX", "SPXW"}
    assert set(frame["underlying"]) == {"SPX"} and stats["rows_other_underlyings"] == len(rows) - len(expected)


@pytest.mark.parametrize(
    ("bad_line", "field", "reason"),
    [
        ("O:SPY240315C00500000,209,0,302,{t},abc,{t},5", "price", "'abc'"),
        ("O:SPY240315C00500000,209,0,302,{t},1.25,{t},", "size", "empty"),
        ("O:SPY240315C00500000,\"209,x\",0,302,{t},1.25,{t},5", "conditions", "'209,x'"),
        ("O:SPY240315C00500000,209,0,302", "participant_timestamp", "4 fields"),
        ("O:SPY240315Q00500000,209,0,302,{t},1.25,{t},5", "ticker", "not an OCC"),
    ],
)
def test_a_malformed_row_of_the_underlying_names_key_line_and_field(s3, bad_line, field, reason):
    client, endpoint = s3
    lines, _ = option_trades(2000, seed=3)
    lines.insert(1500, bad_line.format(t=T0))  # becomes line 1501
    key, _ = upload(client, "option_trades", lines)
    src = FlatFilesSource(settings(), s3_client=client, endpoint_url=endpoint)
    with pytest.raises(SourceFormatError) as err:
        collect(src.chunks("option_trades", PartitionRef(DAY, "SPY")))
    assert err.value.path == f"s3://flatfiles/{key}" and err.value.line == 1501 and err.value.field == field
    assert reason in str(err.value)


def test_option_quotes(s3):
    client, endpoint = s3
    lines = [OPTION_QUOTES_HEADER,
             f"O:SPY240315C00510000,302,1.27,40,316,1.25,12,101,{T0}",
             f"O:QQQ240315C00440000,302,2.01,4,316,1.99,1,102,{T0 + 5}",
             f"O:SPY240315P00500000,,,,316,0.5,3,103,{T0 + 9}",
             f"O:SPY240315P00500000,303,0.55,2x,316,0.5,3,104,{T0 + 11}"]
    upload(client, "option_quotes", lines)
    src = FlatFilesSource(settings(), s3_client=client, endpoint_url=endpoint)
    frame, stats, _ = collect(src.chunks("option_quotes", PartitionRef(DAY, "SPY")))
    assert frame.select("option_symbol", "ts_ns", "sequence", "bid", "bid_size", "ask", "ask_size",
                        "bid_exchange", "ask_exchange").rows() == [
        ("O:SPY240315C00510000", T0, 101, 1.25, 12, 1.27, 40, "316", "302"),
        ("O:SPY240315P00500000", T0 + 9, 103, 0.5, 3, None, None, "316", None),
        ("O:SPY240315P00500000", T0 + 11, 104, 0.5, 3, 0.55, None, "316", "303"),
    ]
    assert stats["rows"] == 3 and stats["rows_other_underlyings"] == 1 and stats["malformed_ask_size"] == 1
    assert set(frame["strike"]) == {510.0, 500.0} and set(frame["source"]) == {"polygon.flatfiles.us_options_opra.quotes_v1"}


def test_stock_trades_and_quotes(s3):
    client, endpoint = s3
    trades = [STOCK_TRADES_HEADER,
              f"A,\"12,37\",0,11,52983525035312,{T0 - 100},142.99,3807,{T0},5,1,0,0",
              f"AAPL,,0,4,71675,{T0},171.5,3808,{T0 + 1},100,3,202,{T0 - 7}",
              f"AAPL,41,8,4,71676,{T0},171.6,3809,{T0 + 2},10,3,202,{T0 - 6}",
              f"AAPLW,,0,12,1,{T0},1.0,3810,{T0 + 3},1,3,0,0",
              f"AAPL,\"30\",1,12,71677,{T0},171.4,3811,{T0 + 4},25,3,0,0"]
    upload(client, "stock_trades", trades)
    src = FlatFilesSource(settings(), s3_client=client, endpoint_url=endpoint)
    frame, stats, _ = collect(src.chunks("stock_trades", PartitionRef(DAY, "AAPL")))
    assert frame.select("symbol", "ts_ns", "sequence", "price", "size", "exchange", "trade_id", "conditions",
                        "canceled").rows() == [
        ("AAPL", T0 + 1, 3808, 171.5, 100, "4", "71675", [], False),
        ("AAPL", T0 + 2, 3809, 171.6, 10, "4", "71676", ["41"], True),
        ("AAPL", T0 + 4, 3811, 171.4, 25, "12", "71677", ["30"], False),
    ]
    assert stats["rows_other_underlyings"] == 2 and stats["canceled"] == 1 and stats["late"] == 1
    assert stats["corrected"] == 1 and stats["excluded_from_volume"] == 2
    assert frame["aggressor_side"].null_count() == 3
    assert set(frame["source"]) == {"polygon.flatfiles.us_stocks_sip.trades_v1"}

    quotes = [STOCK_QUOTES_HEADER,
              f"AAPL,12,171.52,3,11,171.50,2,\"1\",,{T0 - 9},55,{T0},3,",
              f"MSFT,12,400.1,1,11,400.0,1,,,{T0},56,{T0 + 1},3,",
              f"AAPL,12,171.53,1,11,oops,2,,,{T0},57,{T0 + 2},3,"]
    upload(client, "stock_quotes", quotes)
    frame, stats, _ = collect(src.chunks("stock_quotes", PartitionRef(DAY, "AAPL")))
    # 2024: sizes are round lots of 100 shares (shares from 2025-11-03)
    assert frame.select("ts_ns", "sequence", "bid", "bid_size", "ask", "ask_size").rows() == [
        (T0, 55, 171.50, 200, 171.52, 300), (T0 + 2, 57, None, 200, 171.53, 100)]
    assert stats["quote_sizes_converted_from_round_lots"] == 2 and stats["malformed_bid_price"] == 1

    upload(client, "stock_quotes", quotes, day=dt.date(2025, 11, 3))
    frame, _, _ = collect(src.chunks("stock_quotes", PartitionRef(dt.date(2025, 11, 3), "AAPL")))
    assert frame["ask_size"].to_list() == [3, 1]


def test_a_truncated_file_is_a_format_error(s3):
    client, endpoint = s3
    key, _ = upload(client, "option_trades", option_trades(3000)[0])
    body = client.get_object(Bucket="flatfiles", Key=key)["Body"].read()
    client.put_object(Bucket="flatfiles", Key=key, Body=body[: len(body) // 2])
    src = FlatFilesSource(settings(), s3_client=client, endpoint_url=endpoint)
    with pytest.raises(SourceFormatError, match="Truncated compressed stream") as err:
        collect(src.chunks("option_trades", PartitionRef(DAY, "SPY")))
    assert err.value.path == f"s3://flatfiles/{key}"


def test_a_download_that_breaks_off_fails_clearly(s3):
    from botocore.exceptions import ReadTimeoutError

    client, endpoint = s3
    key, size = upload(client, "option_trades", option_trades(8_000)[0])
    breaking = CountingClient(client, fail_after=size // 2, error=ReadTimeoutError(endpoint_url=endpoint))
    src = FlatFilesSource(settings(), s3_client=breaking, endpoint_url=endpoint)
    with pytest.raises(PolygonRetryError, match=r"s3://flatfiles/.*download failed after \d+ data rows.*ReadTimeout"):
        collect(src.chunks("option_trades", PartitionRef(DAY, "SPY")))
    assert breaking.closed


def test_missing_file_and_missing_keys_fail_clearly(s3):
    client, endpoint = s3
    src = FlatFilesSource(settings(), s3_client=client, endpoint_url=endpoint)
    with pytest.raises(PolygonNoDataError, match=r"s3://flatfiles/us_stocks_sip/trades_v1/2024/03/2024-03-08.csv.gz"):
        collect(src.chunks("stock_trades", PartitionRef(dt.date(2024, 3, 8), "AAPL")))
    with pytest.raises(PolygonAuthError, match="POLYGONIO_ACCESS_KEY_ID and POLYGONIO_SECRET_ACCESS_KEY"):
        FlatFilesSource.from_env(settings(), environ={})


def test_from_env_reads_keys_and_endpoint(s3):
    client, endpoint = s3
    upload(client, "option_trades", option_trades(50)[0])
    env = {"POLYGONIO_ACCESS_KEY_ID": "AKIDEXAMPLE", "POLYGONIO_SECRET_ACCESS_KEY": "s3cr3t-value",
           "M17_FLATFILES_ENDPOINT": endpoint}
    src = FlatFilesSource.from_env(settings(), environ=env)
    assert src.endpoint_url == endpoint and "s3cr3t-value" not in repr(src)
    assert src.object_key("option_quotes", DAY) == "us_options_opra/quotes_v1/2024/03/2024-03-07.csv.gz"
    frame, stats, _ = collect(src.chunks("option_trades", PartitionRef(DAY, "AAPL")))
    assert frame.height == stats["rows"] > 0 and set(frame["root"]) == {"AAPL"}


class CountingBody:
    """Wraps an S3 streaming body, counting the compressed bytes handed out (and raising
    the owner's error once ``fail_after`` bytes are out, like a dropped download)."""

    def __init__(self, body, owner: CountingClient) -> None:
        self._body = body
        self._owner = owner

    def read(self, amt=None):
        if self._owner.fail_after is not None and self._owner.bytes_read >= self._owner.fail_after:
            raise self._owner.error
        data = self._body.read(amt)
        self._owner.bytes_read += len(data)
        return data

    def close(self):
        self._owner.closed = True
        self._body.close()


class CountingClient:
    def __init__(self, client, fail_after: int | None = None, error: Exception | None = None) -> None:
        self._client = client
        self.bytes_read = 0
        self.closed = False
        self.fail_after = fail_after
        self.error = error

    def get_object(self, **kw):
        response = self._client.get_object(**kw)
        response["Body"] = CountingBody(response["Body"], self)
        return response
