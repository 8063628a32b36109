"""Shared fixtures: an isolated lake and Dagster instance per test, and one ``m17 demo``
run per session."""

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from m17_platform.lake import Lake, PartitionRef
from m17_platform.settings import PROJECT_ROOT

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples"
POLYGON_MOCKS = Path(__file__).resolve().parent / "m17_platform" / "sources" / "polygon_mocks"
POLYGON_TEST_KEY = "test-key-3f9c1a7e"


@dataclass(frozen=True)
class DemoRun:
    """One ``m17 demo`` run as a user starts it: a subprocess with its own lake, reports
    folder and Dagster home."""

    proc: subprocess.CompletedProcess
    lake_root: Path
    reports_root: Path
    dagster_home: Path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """``m17 demo`` once per session: the end-to-end test reads its output, and the asset
    tests read the lake it wrote and the check evaluations its runs recorded."""
    root = tmp_path_factory.mktemp("demo")
    lake_root, reports_root, home = root / "lake", root / "reports", root / "home"
    env = dict(os.environ, DAGSTER_HOME=str(home))
    env.pop("M17_SOURCE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "m17_platform.cli", "demo", "--lake-root", str(lake_root), "--reports-root", str(reports_root)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    return DemoRun(proc, lake_root, reports_root, home)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path / "lake")


@pytest.fixture
def spy_ref() -> PartitionRef:
    return PartitionRef(dt.date(2022, 5, 20), "SPY")


# --- a Polygon / Massive REST stand-in on loopback ---------------------------------------


@dataclass
class Request:
    path: str
    query: dict[str, str]
    authorization: str | None


@dataclass
class MockPolygon:
    """A tiny Polygon: serves recorded files by path (+ cursor / asset_class), inline
    bodies, and scripted responses (status, body, headers) served first."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    routes: dict[str, str] = field(default_factory=dict)
    bodies: dict[str, dict] = field(default_factory=dict)
    scripted: dict[str, list[tuple[int, bytes, dict[str, str]]]] = field(default_factory=dict)

    def hits(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def respond(self, path: str, query: dict[str, str], authorization: str | None) -> tuple[int, bytes, dict[str, str]]:
        self.requests.append(Request(path, query, authorization))
        if authorization != f"Bearer {POLYGON_TEST_KEY}":
            return 401, b'{"status":"ERROR","request_id":"r","error":"Unknown API Key"}', {}
        if self.scripted.get(path):
            return self.scripted[path].pop(0)
        if path in self.bodies:
            return 200, json.dumps(self.bodies[path]).encode(), {}
        name = self.routes.get(path)
        if name is None:
            name = path.lstrip("/").replace(":", ";")
            name += "".join(f"&{k}={query[k]}" for k in ("asset_class", "cursor") if k in query) + ".json"
        file = POLYGON_MOCKS / name
        if not file.is_file():
            return 404, b'{"status":"NOT_FOUND","request_id":"r","message":"no mock"}', {}
        return 200, file.read_bytes(), {}


@pytest.fixture
def polygon_server():
    """A Polygon / Massive REST stand-in on 127.0.0.1 (real socket) serving the recorded
    responses in tests/m17_platform/sources/polygon_mocks; ``.url`` is its base URL."""
    mock = MockPolygon()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            parts = urlsplit(self.path)
            status, body, headers = mock.respond(
                unquote(parts.path), dict(parse_qsl(parts.query, keep_blank_values=True)),
                self.headers.get("Authorization"),
            )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    mock.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield mock
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
