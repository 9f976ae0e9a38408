"""The event-loop watchdog in a real ``runworker``: the job that blocks the loop is named
once, with the line of its code where the loop is stuck, and a job sharing the loop
politely beside it never is; the lag reaches the heartbeat and ``jobs status``."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from django.tasks import TaskResultStatus, default_task_backend

from tests.processes import ROOT, project_env, runworker, stop, wait_until
from tests.telemetry import tasks
from worker.observe.watchdog import WINDOW, WorstLag
from worker.ops.api import Ops
from worker.ops.cli import cli

pytestmark = pytest.mark.e2e

WARNING = re.compile(r"WARNING worker\.watchdog: Event loop blocked for ([0-9.]+)s so far by (.*)")


def sleep_line() -> int:
    """The line of ``block`` that calls time.sleep."""
    lines, first = inspect.getsourcelines(tasks.block.func)
    return first + next(i for i, line in enumerate(lines) if "time.sleep(" in line)


def env_of(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """A worker process's: this test's Redis and keys, the tasks of tests/telemetry."""
    return project_env(REDIS_URL=redis_url, TASKS_PREFIX=prefix,
                       DJANGO_SETTINGS_MODULE="tests.telemetry.settings", **extra)  # fmt: skip


def finished(*ids: str) -> bool:
    return all(
        default_task_backend.get_result(i).status == TaskResultStatus.SUCCESSFUL for i in ids
    )


def test_the_blocking_job_is_named_once_with_its_line_and_its_lag_shows_in_status(
    tmp_path, redis_url, tasks_prefix
):
    log = tmp_path / "worker.log"
    worker = runworker(env_of(redis_url, tasks_prefix), log, "--no-scheduler")
    try:
        polite = tasks.polite.enqueue(300)  # 1.5 s or more of 5 ms steps
        blocking = tasks.block.enqueue(0.5)
        wait_until(lambda: finished(polite.id, blocking.id), 30, "both jobs to end")
        assert default_task_backend.get_result(polite.id).return_value == 300
        # The next heartbeats carry the worst lag of the last minute.
        [info] = wait_until(
            lambda: [w for w in Ops().workers() if (w.loop_lag or 0) >= 0.45], 15,
            "a heartbeat with the lag",
        )  # fmt: skip
        status = CliRunner().invoke(cli, ["status"])
    finally:
        stop(worker)
    output = log.read_text()
    named = WARNING.findall(output)
    about_blocking = [culprit for _, culprit in named if blocking.id in culprit]
    assert len(about_blocking) == 1, output  # once for the whole stall
    [culprit] = about_blocking
    assert f"(task {tasks.block.module_path}, queue default, attempt 1)" in culprit
    assert f" at {tasks.__file__}:{sleep_line()} in block:" in culprit, culprit
    assert not [culprit for _, culprit in named if polite.id in culprit], output
    # The stack that follows starts at the job's own coroutine, not in the event loop.
    first_frame = output[output.index(culprit) :].splitlines()[1]
    assert first_frame.strip().startswith('File "') and first_frame.endswith("in _execute")

    assert info.loop_lag < 5
    assert status.exit_code == 0, status.output
    [row] = [line for line in status.stdout.splitlines() if info.id in line]
    assert re.search(r"\s(4[5-9]\d|[5-9]\d\d|\d{4,})ms\s", row), status.stdout
    assert "LOOP LAG" in status.stdout


def test_off_the_watchdog_names_nothing_and_measures_no_lag(tmp_path, redis_url, tasks_prefix):
    tasks.block.enqueue(0.3)
    done = subprocess.run(
        [sys.executable, "manage.py", "runworker", "--burst", "--no-scheduler",
         "--loop-lag-threshold", "0"],
        cwd=ROOT, env=env_of(redis_url, tasks_prefix), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "stopped after 1 jobs" in done.stderr
    assert "Event loop blocked" not in done.stderr


def test_a_threshold_too_small_is_refused_naming_it(redis_url, tasks_prefix):
    done = subprocess.run(
        [sys.executable, "manage.py", "runworker", "--loop-lag-threshold", "0.001"],
        cwd=ROOT, env=env_of(redis_url, tasks_prefix), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "--loop-lag-threshold must be 0 (no watchdog) or at least 0.01 seconds, not 0.001" in (
        done.stderr
    )


def test_the_worst_lag_is_of_the_last_minute():
    worst = WorstLag()
    worst.add(1000.2, 0.3)
    worst.add(1000.7, 0.1)  # the same second: its worst stays
    worst.add(1030.0, 0.2)
    assert worst.worst(1030.5) == 0.3
    assert worst.worst(1000.0 + WINDOW + 0.5) == 0.2  # the 0.3 is over a minute old
    assert worst.worst(1030.0 + WINDOW + 1) == 0.0
