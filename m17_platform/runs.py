"""Dagster runs that execute in this process, and runs whose process died.

``m17 ingest`` and ``m17 demo`` run their jobs in-process (``job.execute_in_process``):
no run launcher started them, so the daemon's run monitoring cannot tell when such a
process is killed, and its run would stay STARTED forever. Such runs carry the tags of
:func:`in_process_tags` (the process id, its start time and the host), and
:func:`fail_dead_runs` marks FAILURE every in-progress run of this host whose process is
gone, with a message saying so.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

PID_TAG = "m17/pid"
"""Run tag: id of the process executing the run in-process."""
PID_START_TAG = "m17/pid_start"
"""Run tag: that process's start time (clock ticks since boot, ``/proc/<pid>/stat``), so a
reused process id is not taken for the run's process; absent where there is no /proc."""
HOST_TAG = "m17/host"
"""Run tag: host name of that process (only this host's processes can be checked)."""


def _stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of process ``pid`` from /proc, or None when
    there is no such file (no such process, or no /proc on this system)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (2nd field) is in parentheses and may hold spaces: split after it
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], fields[19]


def _start_time(pid: int) -> str | None:
    stat = _stat(pid)
    return None if stat is None else stat[1]


def in_process_tags() -> dict[str, str]:
    """Tags for a run executed in this process (``execute_in_process(tags=...)``), so that
    :func:`fail_dead_runs` can tell when the process is gone.

    Returns
    -------
    dict[str, str]
        :data:`PID_TAG`, :data:`HOST_TAG` and, where /proc exists, :data:`PID_START_TAG`.
    """
    tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    start = _start_time(os.getpid())
    if start is not None:
        tags[PID_START_TAG] = start
    return tags


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` runs on this host: it exists, is not a zombie and, when
    ``start`` is given and /proc is there, started at that time (not a reused id).

    Parameters
    ----------
    pid : int
        Process id (> 0).
    start : str, optional
        Its start time as :data:`PID_START_TAG` records it.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    stat = _stat(pid)
    if stat is None:
        return True  # no /proc: existing is all we can tell
    state, started = stat
    return state != "Z" and (start is None or started == start)


def fail_dead_runs(instance) -> list[str]:
    """Mark FAILURE the runs of this host tagged by :func:`in_process_tags` that are still
    STARTING or STARTED although their process is gone (killed, or crashed without
    reporting), each with a message naming the process.

    Parameters
    ----------
    instance : dagster.DagsterInstance

    Returns
    -------
    list[str]
        The run ids marked failed (empty when none).
    """
    from dagster import DagsterRunStatus, RunsFilter

    host = socket.gethostname()
    runs = instance.get_runs(filters=RunsFilter(
        statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED], tags={HOST_TAG: host}))
    failed = []
    for run in runs:
        try:
            pid = int(run.tags.get(PID_TAG, ""))
        except ValueError:
            continue
        if process_alive(pid, run.tags.get(PID_START_TAG)):
            continue
        message = (f"m17: the process that ran this run in-process (pid {pid} on {host}) is gone: it was killed "
                   "or crashed before it could report; marked failed")
        instance.report_run_failed(run, message, _crash_data())
        failed.append(run.run_id)
    return failed


def _crash_data():
    """Dagster's failure data for a run whose worker ended unexpectedly (what its own run
    monitoring reports), or None on a Dagster without it."""
    try:
        from dagster._core.events import JobFailureData, RunFailureReason
    except ImportError:  # pragma: no cover - other Dagster versions
        return None
    return JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)
