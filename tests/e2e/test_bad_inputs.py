"""Every ``m17`` command on bad input: exit status 2, exactly one line on stderr naming the
file / argument / field and what was expected, no traceback, nothing registered.

The cases run in one subprocess (``DRIVER``): each calls ``m17_platform.cli.main`` as the
``m17`` console script does, with file descriptors 1 and 2 redirected to files for that
case (so whatever any library writes is seen), an escaping exception printed as the
interpreter would (a traceback, exit 1). One interpreter and one Dagster import for
~35 cases keeps this in seconds; ``test_the_real_process`` checks the real entry point.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "data" / "samples"
LOBSTER_DIR = SAMPLES / "lobster_amzn_2012-06-21_level1"
MESSAGE = "AMZN_2012-06-21_34200000_57600000_message_1.csv.gz"
ORDERBOOK = "AMZN_2012-06-21_34200000_57600000_orderbook_1.csv.gz"
CBOE = SAMPLES / "cboe_datashop_samples" / "UnderlyingOptionsIntervals_1800sec_calcs_oi_2021-04-26.csv.gz"
TDA = SAMPLES / "tda_spy_option_chain_2022-05-20" / "SPY_chain_tdameritrade_2022-05-20.json.gz"
DEFINITION_DBN = SAMPLES / "databento_glbx_es_real" / "esm3-glbx-mdp3.definition.dbn.zst"
MBO_WITHOUT_PRINTS = SAMPLES / "databento_test_data" / "GLBX.MDP3" / "test_data.mbo.dbn.zst"
SECRETS = ("POLYGON_API_KEY", "MASSIVE_API_KEY", "DATABENTO_API_KEY", "POLYGONIO_ACCESS_KEY_ID",
           "POLYGONIO_SECRET_ACCESS_KEY", "M17_SOURCE")

DRIVER = r"""
import json, os, sys, tempfile, traceback, warnings
from m17_platform.cli import main

results = []
fresh_filters = list(warnings.filters)  # as a new process has them (some imports change them)
for argv in json.loads(sys.argv[1]):
    warnings.filters[:] = fresh_filters
    warnings._filters_mutated()
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        sys.stdout.flush(); sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1); os.dup2(err.fileno(), 2)
        try:
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 1
                if exc.code is not None and not isinstance(exc.code, int):
                    print(exc.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
                rc = 1
            sys.stdout.flush(); sys.stderr.flush()
        finally:
            os.dup2(saved[0], 1); os.dup2(saved[1], 2)
            os.close(saved[0]); os.close(saved[1])
        err.seek(0); out.seek(0)
        results.append({"argv": argv, "rc": rc, "stderr": err.read().decode(errors="replace"),
                        "stdout": out.read().decode(errors="replace")})
print(json.dumps(results))
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env["DAGSTER_HOME"] = str(home)
    return env


def _bad_files(d: Path) -> dict[str, Path]:
    """Copies of the bundled samples, corrupted one way each."""
    files = {}
    lonely = d / "lonely"
    lonely.mkdir()
    shutil.copy(LOBSTER_DIR / MESSAGE, lonely / MESSAGE)
    files["lonely"] = lonely / MESSAGE
    files["missing"] = d / "gone" / MESSAGE
    (d / "empty_dir").mkdir()
    files["empty_dir"] = d / "empty_dir"
    pair = d / "empty_pair"
    pair.mkdir()
    for name in (MESSAGE, ORDERBOOK):
        (pair / name.removesuffix(".gz")).write_bytes(b"")
    files["empty_pair"] = pair / MESSAGE.removesuffix(".gz")
    trunc = d / "truncated"
    trunc.mkdir()
    (trunc / MESSAGE).write_bytes((LOBSTER_DIR / MESSAGE).read_bytes()[:20_000])
    shutil.copy(LOBSTER_DIR / ORDERBOOK, trunc / ORDERBOOK)
    files["truncated"] = trunc / MESSAGE
    cols = d / "columns"
    cols.mkdir()
    with gzip.open(LOBSTER_DIR / MESSAGE, "rt") as fh:
        lines = [next(fh) for _ in range(20)]
    (cols / MESSAGE.removesuffix(".gz")).write_text("".join(",".join(x.split(",")[:5]) + "\n" for x in lines))
    with gzip.open(LOBSTER_DIR / ORDERBOOK, "rt") as fh:
        (cols / ORDERBOOK.removesuffix(".gz")).write_text("".join(next(fh) for _ in range(20)))
    files["columns"] = cols / MESSAGE.removesuffix(".gz")
    files["not_lobster"] = d / "prices.csv"
    files["not_lobster"].write_text("a,b\n1,2\n")
    with gzip.open(CBOE, "rt") as fh:
        header, *rows = [next(fh) for _ in range(30)]
    files["cboe_header_only"] = d / CBOE.name.removesuffix(".gz")
    files["cboe_header_only"].write_text(header)
    cboe_cols = d / "cboe_columns" / CBOE.name.removesuffix(".gz")
    cboe_cols.parent.mkdir()
    cboe_cols.write_text("".join(",".join(x.rstrip("\n").split(",")[:10]) + "\n" for x in [header, *rows]))
    files["cboe_columns"] = cboe_cols
    files["not_chain"] = d / "not_a_chain.json"
    files["not_chain"].write_text('{"quotes": []}')
    files["empty_chain"] = d / "empty_chain.json"
    files["empty_chain"].write_text("")
    files["tda_truncated"] = d / TDA.name
    files["tda_truncated"].write_bytes(TDA.read_bytes()[:20_000])
    return files


def _cases(f: dict[str, Path], d: Path) -> list[tuple[str, list[str], list[str]]]:
    """(id, argv, what the one line must name): the cases that do not import Dagster."""
    lake = ["--lake-root", str(d / "lake"), "--quiet"]
    ingest = ["ingest", *lake, "--source", "samples", "--date", "2012-06-21"]
    return [
        ("eval-missing-file", ["eval", "aggressor", str(f["missing"])], [str(f["missing"]), "no such file"]),
        ("eval-no-orderbook", ["eval", "aggressor", str(f["lonely"])], [str(f["lonely"]), "orderbook"]),
        ("eval-empty-folder", ["eval", "aggressor", str(f["empty_dir"])], [str(f["empty_dir"]), "no LOBSTER"]),
        ("eval-empty-pair", ["eval", "aggressor", str(f["empty_pair"])], [str(f["empty_pair"]), "no rows"]),
        ("eval-truncated-gzip", ["eval", "aggressor", str(f["truncated"])], [str(f["truncated"]), "gzip"]),
        ("eval-wrong-columns", ["eval", "aggressor", str(f["columns"])], [str(f["columns"]), "line 1", "'direction'"]),
        ("eval-not-lobster", ["eval", "aggressor", str(f["not_lobster"])], [str(f["not_lobster"]), "not a LOBSTER"]),
        ("eval-dbn-wrong-schema", ["eval", "aggressor", str(DEFINITION_DBN)], [str(DEFINITION_DBN), "'schema'", "MBO"]),
        ("eval-mbo-no-prints", ["eval", "aggressor", str(MBO_WITHOUT_PRINTS)], [str(MBO_WITHOUT_PRINTS), "no trade prints"]),
        ("greeks-not-a-chain", ["eval", "greeks", str(f["not_chain"])], [str(f["not_chain"]), "'status'"]),
        ("greeks-empty-file", ["eval", "greeks", str(f["empty_chain"])], [str(f["empty_chain"]), "empty file"]),
        ("greeks-truncated-gzip", ["eval", "greeks", str(f["tda_truncated"])], [str(f["tda_truncated"]), "unreadable"]),
        ("greeks-header-only", ["eval", "greeks", str(f["cboe_header_only"])], [str(f["cboe_header_only"]), "no rows"]),
        ("greeks-wrong-columns", ["eval", "greeks", str(f["cboe_columns"])], [str(f["cboe_columns"]), "'trade_volume'"]),
        ("greeks-missing-file", ["eval", "greeks", str(d / "gone" / TDA.name)], [str(d / "gone" / TDA.name), "such file"]),
        ("greeks-folder", ["eval", "greeks", str(f["empty_dir"])], [str(f["empty_dir"]), "folder"]),
        ("greeks-two-files", ["eval", "greeks", str(TDA), str(CBOE)], ["one file"]),
        ("eval-bad-choice", ["eval", "vega", str(TDA)], ["invalid choice", "'vega'"]),
        ("ingest-date-format", [*ingest[:-1], "2012-06-31", "--underlying", "AMZN"], ["--date", "YYYY-MM-DD"]),
        ("ingest-date-weekend", [*ingest[:-1], "2025-11-08", "--underlying", "SPY"], ["2025-11-08", "trading day"]),
        ("ingest-date-too-early", [*ingest[:-1], "2005-01-03", "--underlying", "SPY"], ["2005-01-03", "first partition day"]),
        ("ingest-underlying-pipe", [*ingest, "--underlying", "A|B"], ["--underlying", "'A|B'"]),
        ("ingest-underlying-empty", [*ingest, "--underlying", ""], ["--underlying", "''"]),
        ("underlyings-add-bad", ["underlyings", "add", "SPY", "", "X/Y", "a b"], ["'X/Y'", "'a b'", "''", "none registered"]),
        ("capture-bad-underlying", ["capture", "--underlying", "X/Y", "--duration", "1"], ["--underlying", "'X/Y'"]),
        ("capture-unknown-setting", ["capture", "--underlying", "SPY", "--set", "nope=1"], ["--set", "'nope'"]),
        ("replay-serve-no-input", ["replay", "serve"], ["--in-dir", "--partition"]),
        ("lake-bad-partition", ["lake", "--root", str(d / "lake"), "--partition", "x"], ["'x'"]),
        ("bench-unknown", ["bench", "nope"], ["'nope'"]),
    ]


def _dagster_cases(f: dict[str, Path], d: Path) -> list[tuple[str, list[str], list[str]]]:
    """(id, argv, what the one line must name): the cases that import Dagster (slower)."""
    lake = ["--lake-root", str(d / "lake"), "--quiet"]
    ingest = ["ingest", *lake, "--source", "samples", "--date", "2012-06-21"]
    return [
        ("ingest-set-not-pair", [*ingest, "--underlying", "AMZN", "--set", "scale"], ["--set 'scale'", "KEY=VALUE"]),
        ("ingest-set-unknown-key", [*ingest, "--underlying", "AMZN", "--set", "foo=bar"],
         ["--set foo", "unknown", "replace_with_empty", "synthetic_scale"]),
        ("ingest-set-bad-value", [*ingest, "--underlying", "AMZN", "--set", "synthetic_scale=lots"],
         ["synthetic_scale", "number"]),
        ("ingest-polygon-no-key", ["ingest", *lake, "--source", "polygon", "--date", "2025-11-10", "--underlying", "SPY"],
         ["--source polygon", "POLYGON_API_KEY", "MASSIVE_API_KEY"]),
        ("ingest-databento-missing-file", ["ingest", *lake, "--source", "databento", "--date", "2023-12-26",
                                           "--underlying", "SPY", "--set", f'databento_files=["{f["missing"]}"]'],
         [str(f["missing"])]),
        ("underlyings-remove-unknown", ["underlyings", "remove", "NOPE"], ["'NOPE'", "not registered"]),
    ]


FILE_KEYS = ("missing", "lonely", "empty_dir", "empty_pair", "truncated", "columns", "not_lobster", "not_chain",
             "empty_chain", "tda_truncated", "cboe_header_only", "cboe_columns")
PLACEHOLDERS = {k: Path(k) for k in FILE_KEYS}


def _drive(argvs: list[list[str]], home: Path) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(argvs)], cwd=ROOT, env=_env(home),
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_inputs")
    return d, _bad_files(d)


@pytest.fixture(scope="module")
def quick(workdir):
    d, files = workdir
    cases = _cases(files, d)
    results = _drive([argv for _, argv, _ in cases], d / "home_quick")
    return {case_id: (result, expected) for (case_id, _, expected), result in zip(cases, results)}


@pytest.fixture(scope="module")
def with_dagster(workdir):
    d, files = workdir
    cases = _dagster_cases(files, d)
    results = _drive([argv for _, argv, _ in cases] + [["underlyings", "list"]], d / "home_dagster")
    out = {case_id: (result, expected) for (case_id, _, expected), result in zip(cases, results)}
    out["registered after"] = (results[-1], [])
    return out


def _assert_one_line(result: dict, expected: list[str]) -> None:
    lines = result["stderr"].splitlines()
    assert "Traceback" not in result["stderr"], result["stderr"]
    assert result["rc"] == 2, result
    assert len(lines) == 1, result["stderr"]
    assert lines[0].startswith(f"m17 {result['argv'][0]}: "), lines[0]
    for token in expected:
        assert token in lines[0], (token, lines[0])


@pytest.mark.parametrize("case_id", [c[0] for c in _cases(PLACEHOLDERS, Path("."))])
def test_bad_input_is_one_line_and_exit_2(quick, case_id):
    _assert_one_line(*quick[case_id])


@pytest.mark.slow
@pytest.mark.parametrize("case_id", [c[0] for c in _dagster_cases(PLACEHOLDERS, Path("."))])
def test_bad_setting_is_one_line_and_exit_2(with_dagster, case_id):
    _assert_one_line(*with_dagster[case_id])


@pytest.mark.slow
def test_nothing_bad_was_registered(with_dagster):
    result, _ = with_dagster["registered after"]
    assert result["rc"] == 0 and result["stderr"] == ""
    # no bad ingest or `underlyings remove` registered anything
    assert result["stdout"].split() == []


def test_the_real_process(tmp_path):
    """The console entry point: one line and exit 2; ``--debug`` gives the traceback."""
    missing = tmp_path / MESSAGE
    m17 = [sys.executable, "-m", "m17_platform.cli"]
    env = _env(tmp_path / "home")
    proc = subprocess.run([*m17, "eval", "aggressor", str(missing)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert (proc.returncode, proc.stderr) == (2, f"m17 eval: {missing}: no such file or directory\n")
    debug = subprocess.run([*m17, "--debug", "eval", "aggressor", str(missing)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300, check=False)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "FileNotFoundError" in debug.stderr


@pytest.mark.slow
def test_a_failed_ingest_is_one_line_per_step_and_unregisters_a_new_underlying(tmp_path):
    """A run whose step fails (a truncated DBN file): exit 1, one line per failed step on
    stderr with its root cause and no Dagster step trace; an underlying the run
    registered is removed again, one registered before stays."""
    truncated = tmp_path / "esh4.mbo.dbn.zst"
    truncated.write_bytes((SAMPLES / "databento_glbx_es_real" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst").read_bytes()[:100_000])
    env = _env(tmp_path / "home")
    m17 = [sys.executable, "-m", "m17_platform.cli"]
    ingest = [*m17, "ingest", "--lake-root", str(tmp_path / "lake"), "--quiet", "--source", "databento",
              "--date", "2023-12-26", "--underlying", "SPY", "--set", f'databento_files=["{truncated}"]']

    def run(*argv):
        return subprocess.run(list(argv), cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)

    proc = run(*ingest)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "dagster - ERROR" not in proc.stderr and "Stack Trace" not in proc.stderr
    failed = [line for line in proc.stderr.splitlines() if " failed: " in line]
    assert len(failed) == 1 and re.fullmatch(rf"m17 ingest: step \S+ failed: SourceFormatError: {re.escape(str(truncated))}: "
                                             r"truncated zstd stream.*", failed[0]), proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.splitlines()[0], *failed]  # the banner, then the failures
    assert "SPY unregistered again" in proc.stdout
    assert run(*m17, "underlyings", "list").stdout.split() == []

    assert run(*m17, "underlyings", "add", "spy").stdout.split() == ["SPY"]
    assert run(*ingest).returncode == 1
    assert run(*m17, "underlyings", "list").stdout.split() == ["SPY"]
