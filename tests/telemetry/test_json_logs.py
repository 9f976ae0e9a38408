"""``runworker --log-format json`` (or OPTIONS["log_format"]) in a real process: every line
is a JSON object, and those logged inside a job, by the job's own code (async, or sync in
its thread) and by the worker about it, carry the job's id, task, queue and attempt."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime

import pytest
from django.tasks import TaskResultStatus, default_task_backend

from tests.processes import ROOT, runworker, stop, wait_until
from tests.telemetry import tasks
from tests.telemetry.test_watchdog import env_of

pytestmark = pytest.mark.e2e


def lines_of(output: str) -> list[dict]:
    """Each line of the output as JSON (a line that is not fails the test)."""
    parsed = []
    for line in output.splitlines():
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r} in:\n{output}")
    return parsed


def job_fields(line: dict) -> tuple:
    return line.get("job_id"), line.get("task"), line.get("queue"), line.get("attempt")


def test_every_line_is_json_and_a_jobs_lines_carry_it_in_async_and_sync_jobs(
    tmp_path, redis_url, tasks_prefix
):
    log = tmp_path / "worker.log"
    worker = runworker(env_of(redis_url, tasks_prefix), log, "--no-scheduler", "--log-format",
                       "json")  # fmt: skip
    try:
        spoken = tasks.say_async.enqueue("hello")
        synced = tasks.say_sync.enqueue("hi")
        retried = tasks.fail_once.enqueue("m1")
        ids = (spoken.id, synced.id, retried.id)

        def done() -> bool:
            return all(
                default_task_backend.get_result(i).status == TaskResultStatus.SUCCESSFUL
                for i in ids
            )

        wait_until(done, 30, "the three jobs to succeed")
    finally:
        stop(worker)
    lines = lines_of(log.read_text())
    by_message = {line["message"]: line for line in lines}

    [started] = [line for line in lines if line["message"].startswith("Worker ")][:1]
    assert (started["level"], started["logger"]) == ("INFO", "worker")
    assert datetime.fromisoformat(started["time"]).tzinfo is not None
    assert "job_id" not in started  # outside any job

    said = by_message["async job says hello"]
    assert (said["level"], said["logger"]) == ("WARNING", "tests.telemetry")
    assert job_fields(said) == (spoken.id, tasks.say_async.module_path, "default", 1)
    # A sync job runs in a thread of its own: its context went with it.
    assert job_fields(by_message["sync job says hi"]) == (
        synced.id, tasks.say_sync.module_path, "default", 1,
    )  # fmt: skip

    attempts = [line for line in lines if line["message"] == "attempt for m1"]
    assert [job_fields(line) for line in attempts] == [
        (retried.id, tasks.fail_once.module_path, "default", n) for n in (1, 2)
    ]
    # The worker's own line about the job, logged inside it, names it too.
    [failed] = [line for line in lines if "attempt 1 of 2 failed" in line["message"]]
    assert failed["logger"] == "worker"
    assert job_fields(failed) == (retried.id, tasks.fail_once.module_path, "default", 1)


def test_the_setting_turns_json_on(tmp_path, redis_url, tasks_prefix):
    (tmp_path / "json_settings.py").write_text(
        "from tests.telemetry.settings import *\n"
        "TASKS['default']['OPTIONS']['log_format'] = 'json'\n"
    )
    spoken = tasks.say_async.enqueue("from the setting")
    env = env_of(redis_url, tasks_prefix, PYTHONPATH=str(tmp_path))
    env["DJANGO_SETTINGS_MODULE"] = "json_settings"
    done = subprocess.run(
        [sys.executable, "manage.py", "runworker", "--burst", "--no-scheduler"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = lines_of(done.stderr)
    [said] = [line for line in lines if line["message"] == "async job says from the setting"]
    assert said["job_id"] == spoken.id
    assert [line for line in lines if line["message"].endswith("stopped after 1 jobs")]
