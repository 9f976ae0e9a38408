"""What ``manage.py runworker`` prints, as a real process: that it started and stopped
whatever the project's LOGGING, Django's per-job lines only when asked for, the Redis it
cannot reach by its URL (without the password), and one clear line for what it refuses."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tasks_setting
from tests.engine import tasks
from tests.processes import ROOT, project_env, runworker, stop, wait_until
from worker.protocol.servers import RedisServer, free_port

pytestmark = pytest.mark.e2e

# A project without LOGGING: Django's default logging only (LOGGING = {} is the default).
NO_LOGGING = "from tests.e2e_settings import *\nLOGGING = {}\n"
# The reference project's LOGGING: a console handler on the root logger.
WITH_LOGGING = "from tests.e2e_settings import *\n"

STARTED = re.compile(
    r"INFO worker: Worker \S+ started: serving default, reports, concurrency 100, "
    r"Redis (\S+), on (uvloop|asyncio)"
)


def project(tmp_path: Path, body: str, url: str, prefix: str, **extra: str) -> dict[str, str]:
    """Environment of a worker with settings ``body`` (on top of the test suite's: its tasks
    registered), the Redis at ``url`` and this test's keys."""
    (tmp_path / "output_settings.py").write_text(body)
    return project_env(DJANGO_SETTINGS_MODULE="output_settings", PYTHONPATH=str(tmp_path),
                       REDIS_URL=url, TASKS_PREFIX=prefix, **extra)  # fmt: skip


def burst(env: dict[str, str], *options: str) -> str:
    """``runworker --burst``: what it printed (stdout and stderr)."""
    done = subprocess.run(
        [sys.executable, "manage.py", "runworker", "--burst", "--no-scheduler", *options],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    return done.stdout


@pytest.fixture
def private(tmp_path, settings, tasks_prefix):
    """A Redis with a password, TASKS of this process pointed at it."""
    server = RedisServer(tmp_path / "redis", password="s3cret").start()
    settings.TASKS = tasks_setting(server.url, tasks_prefix)
    yield server
    server.stop()


def test_without_logging_it_says_it_started_and_stopped_and_no_line_per_job(
    tmp_path, private, tasks_prefix
):
    env = project(tmp_path, NO_LOGGING, private.url, tasks_prefix)
    for n in range(3):
        tasks.add.enqueue(n, 1)
    out = burst(env)
    [started] = STARTED.findall(out)
    assert started[0] == f"redis://:***@127.0.0.1:{private.port}/0"  # no password
    assert len(re.findall(r"INFO worker: Worker \S+ stopped after 3 jobs", out)) == 1
    assert "Task id=" not in out, out  # Django's per-job lines: off by default
    assert "s3cret" not in out

    # Asked for, with --log-jobs: a start and an end per job.
    for n in range(3):
        tasks.add.enqueue(n, 1)
    out = burst(env, "--log-jobs")
    assert len(re.findall(r"Task id=\S+ path=tests.engine.tasks.add state=RUNNING", out)) == 3
    assert len(re.findall(r"Task id=\S+ path=tests.engine.tasks.add state=SUCCESSFUL", out)) == 3


def test_log_jobs_shows_them_with_debug_off_too(tmp_path, private, tasks_prefix):
    # Django's default console handler prints only with DEBUG on: the worker's own then.
    env = project(tmp_path, NO_LOGGING, private.url, tasks_prefix, DJANGO_DEBUG="0")
    tasks.add.enqueue(1, 1)
    out = burst(env, "--log-jobs")
    assert len(re.findall(r"Task id=\S+ path=tests.engine.tasks.add state=SUCCESSFUL", out)) == 1
    assert len(STARTED.findall(out)) == 1


def test_with_the_projects_logging_each_line_shows_once(tmp_path, private, tasks_prefix):
    env = project(tmp_path, WITH_LOGGING, private.url, tasks_prefix)
    tasks.add.enqueue(1, 1)
    out = burst(env)
    assert len(STARTED.findall(out)) == 1, out
    assert len(re.findall(r"Worker \S+ stopped after 1 jobs", out)) == 1, out


def test_a_lost_redis_is_named_by_its_url_and_the_error(tmp_path, tasks_prefix):
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"  # nothing listens there
    env = project(tmp_path, NO_LOGGING, url, tasks_prefix)
    log = tmp_path / "worker.log"
    process = runworker(env, log, "--no-scheduler")
    try:
        wait_until(lambda: "retrying with backoff" in log.read_text(), 30, "the outage line")
    finally:
        stop(process)
    text = log.read_text()
    redacted = url.replace("s3cret", "***")
    [line] = [line for line in text.splitlines() if "retrying with backoff" in line]
    assert re.search(
        rf"ERROR worker: Redis at {re.escape(redacted)} is unreachable \((Error 111 connecting|"
        r"cannot connect).*Connection refused.*\); retrying with backoff$", line
    ), line  # fmt: skip
    assert "network:" not in text and "s3cret" not in text


def test_a_queue_not_in_queues_is_refused(redis_url, tasks_prefix, tmp_path):
    env = project_env(REDIS_URL=redis_url, TASKS_PREFIX=tasks_prefix)
    for extra in ([], ["--check"]):
        done = subprocess.run(
            [sys.executable, "manage.py", "runworker", "-q", "default", "-q", "report:2", *extra],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1
        assert done.stderr == (
            "CommandError: --queue: queue 'report' is not in TASKS['default']['QUEUES'] "
            "(default, reports)\n"
        )


def test_an_empty_queues_setting_asks_for_the_queues_to_serve(tmp_path, redis_url, tasks_prefix):
    (tmp_path / "empty_queues.py").write_text(
        "from project.settings import *\nTASKS['default']['QUEUES'] = []\n"
    )
    env = project_env(REDIS_URL=redis_url, TASKS_PREFIX=tasks_prefix,
                      DJANGO_SETTINGS_MODULE="empty_queues", PYTHONPATH=str(tmp_path))  # fmt: skip
    done = subprocess.run([sys.executable, "manage.py", "runworker"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr == (
        "CommandError: TASKS['default']['QUEUES'] is empty, which allows any queue name: name "
        "the queues to serve (runworker --queue NAME, run_jobs(queues=[...]))\n"
    )


def test_a_database_redis_does_not_have_is_one_line_naming_the_setting(redis_url, tasks_prefix):
    url = redis_url.rsplit("/", 1)[0] + "/10000"
    env = project_env(REDIS_URL=url, TASKS_PREFIX=tasks_prefix)
    message = (
        f"TASKS['default']['OPTIONS']['url']: Redis at {url} has no database 10000 (DB index "
        "is out of range: its databases are 0 to `databases` - 1 of its configuration, 0-15 "
        "by default)\n"
    )
    for command, prefix in ((["runworker"], "CommandError: "), (["jobs", "status"], "Error: ")):
        done = subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert done.stderr == prefix + message


def test_a_malformed_url_is_one_clear_line_naming_the_setting(redis_url, tasks_prefix):
    url = redis_url.rsplit("/", 1)[0] + "/abc"  # redis-py would take database 0
    env = project_env(REDIS_URL=url, TASKS_PREFIX=tasks_prefix)
    problem = f"OPTIONS['url'] {url!r} names database 'abc': give a number (/0, /1, ...)"
    status = subprocess.run([sys.executable, "manage.py", "jobs", "status"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert status.returncode == 1
    assert status.stderr.startswith(f"Error: TASKS['default']: {problem} (HINT: ")
    assert status.stderr.count("\n") == 1
    # runworker runs Django's checks first: their report, the line naming the setting in it.
    worker = subprocess.run([sys.executable, "manage.py", "runworker"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert worker.returncode == 1
    assert f"TASKS['default']: (worker.E003) {problem}\n" in worker.stderr
    assert "Traceback" not in worker.stderr
