"""A command run in its own process group goes down with the process that started it:
SIGTERM / SIGINT reach the whole group, and what ignores them is killed after the grace."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from m17_platform.runs import process_alive

ROOT = Path(__file__).resolve().parents[2]

SUPERVISOR = (
    "import sys; sys.path.insert(0, {root!r}); from m17_platform.supervise import run_in_own_group; "
    "sys.exit(run_in_own_group(sys.argv[2:], cwd='.', grace_seconds=float(sys.argv[1]), name='test'))"
)
# the command: a leader that starts a child, both write their pids, then both wait
TREE = (
    "import os, signal, subprocess, sys, time\n"
    "ignore = sys.argv[2] == 'ignore'\n"
    "child = 'import os, signal, sys, time\\n'"
    " + ('signal.signal(signal.SIGTERM, signal.SIG_IGN); signal.signal(signal.SIGINT, signal.SIG_IGN)\\n' if ignore else '')"
    " + 'open(sys.argv[1] + \".child\", \"w\").write(str(os.getpid()))\\ntime.sleep(600)'\n"
    "subprocess.Popen([sys.executable, '-c', child, sys.argv[1]])\n"
    "open(sys.argv[1] + '.leader', 'w').write(str(os.getpid()))\n"
    "time.sleep(float(sys.argv[3]))\n"
)


def _start(tmp_path: Path, grace: float, mode: str, leader_seconds: float) -> tuple[subprocess.Popen, int, int]:
    marker = tmp_path / "pid"
    cmd = [sys.executable, "-c", SUPERVISOR.format(root=str(ROOT)), str(grace),
           sys.executable, "-c", TREE, str(marker), mode, str(leader_seconds)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    paths = [Path(f"{marker}.leader"), Path(f"{marker}.child")]
    while not all(p.exists() and p.read_text() for p in paths):
        assert time.monotonic() < deadline and proc.poll() is None, "the process tree did not start"
        time.sleep(0.05)
    return proc, int(paths[0].read_text()), int(paths[1].read_text())


def _gone(*pids: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while any(process_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _cleanup(*pids: int) -> None:
    for pid in pids:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_supervisor_stops_the_whole_group(tmp_path, sig):
    proc, leader, child = _start(tmp_path, 20.0, "obey", 600)
    try:
        assert os.getpgid(leader) == os.getpgid(child) == leader != os.getpgid(proc.pid)
        proc.send_signal(sig)
        assert proc.wait(timeout=20) == 128 + sig
        assert _gone(leader, child)
    finally:
        _cleanup(leader, child, proc.pid)


def test_what_ignores_the_signal_is_killed_after_the_grace(tmp_path):
    proc, leader, child = _start(tmp_path, 1.0, "ignore", 600)
    try:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert _gone(leader, child)
        assert time.monotonic() - started >= 1.0
        assert b"did not stop within 1 s" in proc.stderr.read()
    finally:
        _cleanup(leader, child, proc.pid)


def test_members_left_when_the_leader_exits_are_killed_after_the_grace(tmp_path):
    proc, leader, child = _start(tmp_path, 1.0, "ignore", 0.5)
    try:
        assert proc.wait(timeout=20) == 0  # the leader's status
        assert _gone(leader, child)
    finally:
        _cleanup(leader, child, proc.pid)
