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
        data, deadline = None, time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                data = _graphql(port, QUERY)["data"]
                if data["assetNodes"]:
                    break
            except (OSError, KeyError, TypeError, ValueError):
                pass
            time.sleep(2)
        assert data and data["assetNodes"], "dagster dev did not serve the code location in time"
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
