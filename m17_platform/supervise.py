"""Run a command tree in a process group of its own and take it down with us.

``m17 dev`` starts ``dagster dev``, which starts the webserver, the daemon and code
servers. Left in m17's process group, a SIGTERM to m17 alone (a service manager, ``kill
PID``) stopped m17 and left that whole stack orphaned and serving. :func:`run_in_own_group`
starts the command in a new session (its own process group), forwards SIGTERM, SIGINT
(Ctrl-C reaches only the terminal's foreground group, i.e. m17) and SIGHUP to the whole
group, waits for it, and kills what is left after a grace period. On Linux the command
also gets SIGTERM when m17 dies without the chance to forward anything (SIGKILL).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
"""Signals passed on to the command's process group."""

_PR_SET_PDEATHSIG = 1


def _prctl():
    """libc's ``prctl`` (Linux), looked up in the parent: the forked child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _child_setup(prctl) -> None:  # pragma: no cover - runs in the forked child before exec
    # default dispositions (a parent started in the background may ignore SIGINT, and the
    # child would inherit that), and SIGTERM when the parent dies (Linux)
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_DFL)
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` is left (zombies included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_in_own_group(cmd: Sequence[str], *, cwd: Path | str, grace_seconds: float, name: str = "m17") -> int:
    """Run ``cmd`` in a new session until it exits, forwarding :data:`FORWARDED` signals
    to its whole process group.

    After the first forwarded signal (or after the command's leader exits on its own while
    members of its group are left), the group has ``grace_seconds`` to exit; then every
    process left in it gets SIGKILL.

    Parameters
    ----------
    cmd : sequence of str
        The command line.
    cwd : path
        Its working directory.
    grace_seconds : float
        Seconds between the stop request and SIGKILL (> 0).
    name : str
        Prefix of the line printed when the group has to be killed.

    Returns
    -------
    int
        The command's exit status; 128 + N when signal N ended it.
    """
    received: list[int] = []
    proc: subprocess.Popen | None = None

    def forward(signum, _frame) -> None:
        received.append(signum)
        if proc is not None:
            _signal_group(proc.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        prctl = _prctl()
        # preexec_fn only resets signals and calls prctl: nothing that takes a lock another
        # thread could hold at the fork
        proc = subprocess.Popen(list(cmd), cwd=cwd, start_new_session=True,
                                preexec_fn=lambda: _child_setup(prctl))  # noqa: PLW1509
        if received:  # a signal that came before the group existed
            _signal_group(proc.pid, received[0])
        deadline = None
        while proc.poll() is None or group_alive(proc.pid):
            if deadline is None and (received or proc.returncode is not None):
                deadline = time.monotonic() + grace_seconds
            if deadline is not None and time.monotonic() >= deadline:
                print(f"{name}: the process group of {cmd[0]} did not stop within {grace_seconds:g} s: killing it",
                      file=sys.stderr, flush=True)
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
                break
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code if code >= 0 else 128 - code
