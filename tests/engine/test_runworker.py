"""``manage.py runworker`` as a real process: runs jobs, exits 0 on SIGTERM, and with
--processes keeps its children alive."""

import os
import signal

import orjson
import pytest
import redis
from django.tasks import TaskResultStatus

from tests.processes import project_env, runworker, stop, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def worker_env(redis_url, tasks_prefix):
    return project_env(REDIS_URL=redis_url, TASKS_PREFIX=tasks_prefix)


def live_workers(redis_url, prefix) -> dict[str, dict]:
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}:worker:*"))
    values = client.mget(keys) if keys else []
    client.close()
    return {k.decode(): orjson.loads(v) for k, v in zip(keys, values, strict=True) if v}


def test_runworker_refuses_unregistered_tasks_and_exits_on_sigterm(worker_env, tmp_path, backend):
    from tests.engine import tasks as engine_tasks  # not registered in the worker process

    process = runworker(worker_env, tmp_path / "worker.log", "--concurrency", "5")
    try:
        # The worker only runs tasks registered in the project: one from the test suite
        # is dead-lettered as unknown, never imported.
        stranger = engine_tasks.add.enqueue(1, 2)
        failed = wait_until(
            lambda: (r := backend.get_result(stranger.id)).is_finished and r, 20, "the job"
        )
        assert failed.status == TaskResultStatus.FAILED
        assert "is not registered in this project" in failed.errors[0].traceback
    finally:
        code = stop(process)
    assert code == 0, (tmp_path / "worker.log").read_text()


def test_processes_restarts_a_child_that_dies(worker_env, tmp_path, redis_url, tasks_prefix):
    parent = runworker(worker_env, tmp_path / "worker.log", "--processes", "2")
    try:
        first = wait_until(
            lambda: len(w := live_workers(redis_url, tasks_prefix)) == 2 and w, 30, "2 workers"
        )
        victim = next(iter(first.values()))["pid"]
        os.kill(victim, signal.SIGKILL)

        def replaced():
            pids = {w["pid"] for w in live_workers(redis_url, tasks_prefix).values()}
            return victim not in pids and len(pids) == 2

        wait_until(replaced, 30, "a new child")  # the dead one's heartbeat expires (lease)
    finally:
        code = stop(parent)
    assert code == 0
    assert live_workers(redis_url, tasks_prefix) == {}, "children left their heartbeats"


@pytest.mark.parametrize(("choice", "loop"), [("auto", "uvloop"), ("asyncio", "asyncio")])
def test_runworker_runs_on_the_event_loop_chosen(worker_env, tmp_path, backend, choice, loop):
    from tests.engine import tasks as engine_tasks

    pytest.importorskip("uvloop")  # a dependency, except on Windows
    log = tmp_path / "worker.log"
    process = runworker(worker_env, log, "--loop", choice, "--no-scheduler")
    try:
        wait_until(lambda: "serving" in log.read_text(), 30, "the worker to start")
        assert f"on {loop}" in log.read_text()
        # Leased, refused (not a project task) and acked: the whole round on that loop.
        job = engine_tasks.add.enqueue(1, 2)
        wait_until(lambda: backend.get_result(job.id).is_finished, 20, "the job")
    finally:
        assert stop(process) == 0, log.read_text()


def test_runworker_refuses_an_unknown_event_loop(worker_env, tmp_path):
    log = tmp_path / "worker.log"
    process = runworker(worker_env, log, "--loop", "trio")
    assert process.wait(30) != 0
    assert "invalid choice: 'trio'" in log.read_text()


def test_runworker_takes_queue_weights_and_refuses_wrong_ones(worker_env, tmp_path, redis_url,
                                                              tasks_prefix):  # fmt: skip
    log = tmp_path / "wrong.log"
    assert runworker(worker_env, log, "--queue", "default:0").wait(30) != 0
    assert "--queue 'default:0': weight of queue 'default' must be a whole number >= 1" in (
        log.read_text()
    )
    log = tmp_path / "worker.log"
    process = runworker(worker_env, log, "-q", "default:3", "-q", "reports", "--no-scheduler")
    try:
        [info] = wait_until(lambda: list(live_workers(redis_url, tasks_prefix).values()), 30,
                            "the worker's heartbeat")  # fmt: skip
        assert (info["queues"], info["weights"], info["strict"]) == (
            ["default", "reports"], {"default": 3, "reports": 1}, False)  # fmt: skip
    finally:
        assert stop(process) == 0, log.read_text()
