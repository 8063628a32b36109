"""Runs executed in-process carry their process in their tags, and a run whose process
was killed is marked FAILURE instead of staying STARTED forever."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from m17_platform.runs import HOST_TAG, PID_START_TAG, PID_TAG, fail_dead_runs, in_process_tags, process_alive

ROOT = Path(__file__).resolve().parents[2]

# a tiny job run in-process with the m17 tags; its op says it started, then waits to be killed
_RUNNER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    import dagster as dg
    from m17_platform.runs import in_process_tags

    marker = Path(sys.argv[1])

    @dg.op
    def wait_forever(context):
        marker.write_text(context.run_id)
        while True:
            time.sleep(1)

    @dg.job
    def tiny():
        wait_forever()

    with dg.DagsterInstance.get() as instance:
        tiny.execute_in_process(instance=instance, tags=in_process_tags())
""")


def test_in_process_tags_name_this_process_and_host():
    tags = in_process_tags()
    assert tags[PID_TAG] == str(os.getpid())
    assert tags[HOST_TAG]
    assert process_alive(os.getpid(), tags.get(PID_START_TAG))


def test_a_process_is_dead_when_gone_a_zombie_or_its_id_reused():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # exited, not yet reaped: a zombie
        if Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.05)
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid)
    # this process, but with another start time: the id was reused
    assert not process_alive(os.getpid(), "1")
    assert not process_alive(0)


def _start_runner(tmp_path: Path, name: str) -> tuple[subprocess.Popen, str]:
    marker = tmp_path / f"{name}.started"
    script = tmp_path / "runner.py"
    script.write_text(_RUNNER.format(root=str(ROOT)))
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, str(script), str(marker)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the run did not start in time"
        time.sleep(0.2)
    return proc, marker.read_text()


@pytest.mark.slow
def test_a_killed_in_process_run_is_marked_failed_and_a_live_one_is_left(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    killed, killed_run = _start_runner(tmp_path, "killed")
    alive, alive_run = _start_runner(tmp_path, "alive")
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.STARTED
            assert fail_dead_runs(instance) == [killed_run]
            run = instance.get_run_by_id(killed_run)
            assert run.status == dg.DagsterRunStatus.FAILURE
            (failure,) = instance.all_logs(killed_run, of_type=dg.DagsterEventType.RUN_FAILURE)
            assert f"pid {run.tags[PID_TAG]}" in failure.dagster_event.message
            assert instance.get_run_by_id(alive_run).status == dg.DagsterRunStatus.STARTED
            assert fail_dead_runs(instance) == []  # nothing more to do
    finally:
        alive.kill()
        alive.wait(timeout=30)
