"""A Redis key prefix of each test's own (worker/testing/isolation.py, applied by the
pytest plugin and JobsTestMixin): a development worker on the same Redis never sees a
test's job, and the keys go with the test."""

import uuid

import pytest
import redis
from django.tasks import TaskResultStatus, task_backends

from tests.processes import ROOT
from tests.testing import tasks
from tests.testing.conftest import in_process_setting
from worker.backend import RedisBackend
from worker.protocol.keys import Keys
from worker.testing import isolated, isolated_tasks, run_jobs

pytest_plugins = ["pytester"]


@pytest.fixture
def dev_prefix(settings, redis_url) -> str:
    """TASKS as a project's development settings give it: a Redis, its prefix."""
    prefix = f"dev-{uuid.uuid4().hex[:8]}"
    settings.TASKS = {
        "default": {
            "BACKEND": "worker.backend.RedisBackend",
            "QUEUES": ["default", "reports", "other"],
            "OPTIONS": {"url": redis_url, "prefix": prefix},
        }
    }
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def keys(redis_url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return list(client.scan_iter(f"{prefix}*", count=1000))
    finally:
        client.close()


def development_worker_runs(settings_tasks: dict) -> int:
    """How many jobs a development worker (a burst of runworker, on the development prefix)
    finds and runs."""
    from asgiref.sync import async_to_sync

    backend = RedisBackend("dev", settings_tasks["default"])
    worker = backend.worker(burst=True, scheduler=False)

    async def burst() -> None:
        try:
            await worker.run()
        finally:
            await backend.broker.close_loop()

    async_to_sync(burst)()
    return worker.processed


def test_a_development_worker_never_sees_an_isolated_tests_job(settings, dev_prefix, redis_url):
    dev_tasks = settings.TASKS
    with isolated_tasks() as isolated_setting:
        prefix = isolated_setting["default"]["OPTIONS"]["prefix"]
        result = tasks.add.enqueue(1, 2)

        assert development_worker_runs(dev_tasks) == 0
        assert keys(redis_url, prefix)  # the job is there, under the test's prefix
        assert task_backends["default"].get_result(result.id).status == TaskResultStatus.READY
        assert run_jobs() == 1  # and the test's own run_jobs finds it

    assert keys(redis_url, prefix) == []  # deleted with the test
    client = redis.Redis.from_url(redis_url)
    assert list(client.scan_iter(Keys(dev_prefix).jobs_glob("default"))) == []  # no job there
    client.close()


def test_the_prefix_names_the_xdist_worker_and_is_new_each_time(settings, monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    setting = {"default": {"BACKEND": "worker.backend.RedisBackend", "OPTIONS": {"prefix": "p"}}}

    first = isolated(setting)["default"]["OPTIONS"]["prefix"]
    second = isolated(setting)["default"]["OPTIONS"]["prefix"]

    assert first.startswith("p-test-gw3-") and second.startswith("p-test-gw3-")
    assert first != second
    assert setting["default"]["OPTIONS"]["prefix"] == "p"  # the setting itself unchanged


def test_other_backends_are_copied_as_they_are_and_made_anew(settings):
    settings.TASKS = in_process_setting("RecordingBackend")
    outer = task_backends["default"]
    tasks.add.enqueue(1)

    with isolated_tasks() as setting:
        assert setting["default"] == settings.TASKS["default"]
        inner = task_backends["default"]
        tasks.add.enqueue(2)

    assert inner is not outer
    assert [r.args for r in outer.results] == [[1]]
    assert [r.args for r in inner.results] == [[2]]


PLUGIN_TEST = """
import os

from django.tasks import default_task_backend

from tests.testing import tasks


def test_enqueue():
    prefix = default_task_backend.options_.prefix
    print("PREFIX=" + prefix)
    tasks.add.enqueue(1, 2)
    assert prefix.startswith(os.environ["DEV_PREFIX"] + os.environ["EXPECTED"])


async def test_aenqueue():
    prefix = default_task_backend.options_.prefix
    print("PREFIX=" + prefix)
    await tasks.add.aenqueue(1, 2)
"""


@pytest.fixture
def plugin_session(pytester, monkeypatch, redis_url, dev_prefix):
    """Runs a pytest session of the project's (pytest-django, this package's plugin loaded
    by its entry point) on PLUGIN_TEST; its prefixes, its outcome."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.testing.plugin_settings")
    monkeypatch.setenv("TEST_REDIS_URL", redis_url)
    monkeypatch.setenv("DEV_PREFIX", dev_prefix)
    pytester.makepyfile(test_plugin=PLUGIN_TEST)

    def run(*args: str):
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-s", "-o", "asyncio_mode=auto", *args
        )
        prefixes = [line.split("=", 1)[1] for line in result.outlines if "PREFIX=" in line]
        return result, prefixes

    return run


def test_the_plugin_isolates_each_test_by_default(plugin_session, monkeypatch, redis_url):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw5")
    monkeypatch.setenv("EXPECTED", "-test-gw5-")

    result, prefixes = plugin_session()

    result.assert_outcomes(passed=2)
    assert len(set(prefixes)) == 2  # one per test
    for prefix in prefixes:
        assert keys(redis_url, prefix) == []  # deleted after the test, sync or async


def test_the_plugin_can_be_turned_off(plugin_session, monkeypatch, redis_url, dev_prefix):
    monkeypatch.setenv("EXPECTED", "")

    result, prefixes = plugin_session("-o", "worker_isolation=false")

    result.assert_outcomes(passed=2)
    assert set(prefixes) == {dev_prefix}  # the development prefix: what isolation prevents
    assert keys(redis_url, f"{dev_prefix}:")
