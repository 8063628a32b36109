"""What ``m17`` checks before a command runs, and how an error becomes one line."""

import argparse
import errno

import pytest

from m17_platform import cli_checks
from m17_platform.capture import config as capture_config
from m17_platform.cli_errors import UsageError, describe, step_failure_cause
from m17_platform.errors import SourceFormatError
from m17_platform.sources.polygon import (
    PolygonAuthError,
    PolygonRestSource,
    api_key_from_env,
)
from resources.market_data import MarketDataResource


def ingest_args(*sets: str, allow_empty: bool = False, source: str = "samples") -> argparse.Namespace:
    return argparse.Namespace(source=source, quiet=True, allow_empty=allow_empty, set=list(sets))


def test_allow_empty_sets_replace_with_empty_and_the_resource_accepts_it():
    config = cli_checks.market_data_config(ingest_args(allow_empty=True))
    assert config == {"kind": "samples", "progress_bar": False, "replace_with_empty": True}
    assert MarketDataResource(**config).replace_with_empty is True
    assert "replace_with_empty" not in cli_checks.market_data_config(ingest_args())
    assert cli_checks.market_data_config(ingest_args("replace_with_empty=true"))["replace_with_empty"] is True


def test_set_values_take_the_field_type():
    config = cli_checks.market_data_config(ingest_args("samples_dir=2024", "synthetic_scale=0.5",
                                                       'databento_files=["a.dbn"]'))
    assert config["samples_dir"] == "2024" and config["synthetic_scale"] == 0.5 and config["databento_files"] == ["a.dbn"]


@pytest.mark.parametrize("item, words", [
    ("foo=bar", ["--set foo", "unknown", "replace_with_empty", "synthetic_scale", "kind"]),
    ("synthetic_scale=lots", ["--set 'synthetic_scale=lots'", "valid number"]),
    ("kind=ftp", ["--set 'kind=ftp'", "'polygon'"]),
    ("=1", ["--set '=1'", "KEY=VALUE"]),
])
def test_bad_set_is_one_line_naming_the_key(item, words):
    with pytest.raises(UsageError) as info:
        cli_checks.market_data_config(ingest_args(item))
    line = str(info.value)
    assert "\n" not in line and all(w in line for w in words), line


def test_a_keyed_source_without_its_key_is_refused_before_the_run(monkeypatch):
    for name in ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABENTO_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(UsageError, match="--source polygon: .*POLYGON_API_KEY or MASSIVE_API_KEY"):
        cli_checks.check_source({"kind": "polygon"})
    with pytest.raises(UsageError, match="--source databento: DATABENTO_API_KEY is not set"):
        cli_checks.check_source({"kind": "databento"})
    monkeypatch.setenv("MASSIVE_API_KEY", "k-massive-1234")
    cli_checks.check_source({"kind": "polygon"})  # the renamed variable is enough
    cli_checks.check_source({"kind": "samples"})  # nothing to check


@pytest.mark.parametrize("text, words", [
    ("2025-02-30", ["'2025-02-30'", "YYYY-MM-DD"]),
    ("2025-11-08", ["2025-11-08", "trading day"]),
    ("2009-12-31", ["before the first partition day"]),
    ("2199-01-02", ["after the last day"]),
])
def test_bad_dates(text, words):
    with pytest.raises(UsageError) as info:
        cli_checks.trading_day(text)
    assert all(w in str(info.value) for w in words)


def test_massive_api_key_is_accepted_beside_polygon_api_key():
    assert api_key_from_env({"POLYGON_API_KEY": "old", "MASSIVE_API_KEY": "new"}) == "old"
    assert api_key_from_env({"POLYGON_API_KEY": "", "MASSIVE_API_KEY": "new"}) == "new"
    assert api_key_from_env({}) is None
    assert capture_config.api_key({"MASSIVE_API_KEY": "new"}) == "new"
    src = PolygonRestSource.from_env(environ={"MASSIVE_API_KEY": "secret-5f1e"})
    assert "secret-5f1e" not in repr(src)
    with pytest.raises(PolygonAuthError, match="POLYGON_API_KEY or MASSIVE_API_KEY") as info:
        PolygonRestSource.from_env(environ={})
    assert "secret" not in str(info.value)


def test_errors_become_one_line_with_the_exit_status():
    assert describe(SourceFormatError("/d/x.csv", 3, "price", "expected a number")) == (
        "/d/x.csv, line 3, field 'price': expected a number", 2)
    assert describe(FileNotFoundError(errno.ENOENT, "No such file or directory", "/d/y.csv")) == (
        "/d/y.csv: No such file or directory", 2)
    assert describe(ValueError("partition 'x' is not DATE|UNDERLYING")) == ("partition 'x' is not DATE|UNDERLYING", 2)
    assert describe(ConnectionRefusedError("connection refused"))[1] == 1
    line, status = describe(KeyError("bid"))
    assert status == 1 and line.startswith("unexpected KeyError") and "--debug" in line
    try:
        MarketDataResource(synthetic_scale="lots")
    except Exception as exc:  # noqa: BLE001 (pydantic's ValidationError)
        line, status = describe(exc)
    assert status == 2 and "synthetic_scale" in line and "\n" not in line


def test_invalid_run_config_is_one_line():
    import dagster as dg

    @dg.op(config_schema={"n": int})
    def needs_n(context):
        return context.op_config["n"]

    @dg.job
    def tiny():
        needs_n()

    with pytest.raises(dg.DagsterInvalidConfigError) as info:
        tiny.execute_in_process(run_config={"ops": {"needs_n": {"config": {"m": 1}}}})
    line, status = describe(info.value)
    assert status == 2 and line.startswith("invalid run config: ") and "\n" not in line and '"m"' in line


def test_step_failure_cause_is_the_innermost_first_line():
    class Err:
        def __init__(self, message, cause=None, cls_name="X"):
            self.message, self.cause, self.cls_name = message, cause, cls_name

    inner = Err("m17_platform.errors.SourceFormatError: /x.dbn: truncated zstd stream\n  more\n")
    outer = Err("dagster._core.errors.DagsterExecutionStepExecutionError: Error in op\n", cause=inner)
    assert step_failure_cause(outer) == "SourceFormatError: /x.dbn: truncated zstd stream"
