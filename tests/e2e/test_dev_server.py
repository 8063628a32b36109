"""`dagster dev` on 127.0.0.1 serves the code location: every asset, check, partition,
sensor and schedule is visible over the webserver's GraphQL API (what the UI reads)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from m17_platform.schemas import ENRICHED_TABLES, GOLD_TABLES, RAW_TABLES

ROOT = Path(__file__).resolve().parents[2]

QUERY = """
{
  assetNodes {
    assetKey { path }
    partitionDefinition { dimensionTypes { name } }
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
  repositoriesOrError {
    ... on RepositoryConnection { nodes { name sensors { name } schedules { name } jobs { name } } }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _served_code_location(port: int, proc: subprocess.Popen, timeout: float = 180) -> dict:
    """The GraphQL answer to QUERY once the webserver on ``port`` serves the code location."""
    data, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the server exited with {proc.returncode}"
        try:
            data = _graphql(port, QUERY)["data"]
            if data["assetNodes"]:
                return data
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(2)
    raise AssertionError("dagster dev did not serve the code location in time")


@pytest.mark.slow
def test_dev_server_shows_the_whole_code_location(tmp_path):
    port = _free_port()
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path), M17_LANDING_ROOT=str(tmp_path / "landing"))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).parent / "dagster"
    # its own session (process group), so the whole tree (webserver, daemon, code server) can be stopped
    proc = subprocess.Popen(
        [str(dagster), "dev", "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        data = _served_code_location(port, proc)
        nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
        assert set(nodes) == (
            {f"raw/{t}" for t in RAW_TABLES} | {f"enriched/{t}" for t in ENRICHED_TABLES}
            | {f"gold/{t}" for t in GOLD_TABLES} | {"gold/daily_report"}
        )
        for key, node in nodes.items():
            dims = [d["name"] for d in node["partitionDefinition"]["dimensionTypes"]]
            assert dims == ["date", "underlying"], key
        checks = {c["name"] for c in nodes["raw/option_quotes"]["assetChecksOrError"]["checks"]}
        assert {"schema", "nulls", "bid_le_ask", "in_session", "sorted", "duplicates"} <= checks
        greeks_checks = {c["name"] for c in nodes["enriched/option_quote_greeks"]["assetChecksOrError"]["checks"]}
        assert greeks_checks == {"reprice", "iv_status", "vendor_delta"}
        (repo,) = data["repositoriesOrError"]["nodes"]
        assert {s["name"] for s in repo["sensors"]} == {"register_underlyings", "capture_batches"}
        assert {s["name"] for s in repo["schedules"]} == {"end_of_day"}
        assert "main" in {j["name"] for j in repo["jobs"]}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, process group, state) of every process (Linux /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        out[int(entry.name)] = (int(fields[1]), int(fields[2]), fields[0])
    return out


def _tree(root: int) -> set[int]:
    """``root`` and every process below it."""
    procs, tree = _processes(), {root}
    grew = True
    while grew:
        below = {pid for pid, (ppid, _, _) in procs.items() if ppid in tree} - tree
        tree |= below
        grew = bool(below)
    return tree


def _living(pids: set[int], groups: set[int]) -> set[int]:
    """Of ``pids``, and of the members of process ``groups``, those still running (not zombies)."""
    return {pid for pid, (_, pgid, state) in _processes().items() if (pid in pids or pgid in groups) and state != "Z"}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_sigterm_to_m17_dev_stops_the_whole_dagster_stack(tmp_path):
    """`m17 dev` runs `dagster dev` in a process group of its own and takes it down on SIGTERM:
    no webserver, daemon or code server is left serving."""
    port = _free_port()
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path / "home"), M17_LANDING_ROOT=str(tmp_path / "landing"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "m17_platform.cli", "dev", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    groups: set[int] = set()
    try:
        _served_code_location(port, proc)
        tree = _tree(proc.pid)
        groups = {_processes()[pid][1] for pid in tree if pid in _processes()}
        dagster_groups = groups - {proc.pid}
        assert dagster_groups, "dagster dev runs in m17's own process group"
        assert len(tree) >= 4, tree  # m17, dagster dev, webserver, daemon (and code servers)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _living(tree, groups) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _living(tree, groups) == set(), "processes of the Dagster stack outlived m17 dev"
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"something still serves on port {port}"
    finally:
        for pgid in groups | {proc.pid}:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc.wait(timeout=30)
