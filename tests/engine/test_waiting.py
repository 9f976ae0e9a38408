"""Waiting for a job's end (worker/waiting.py): woken by Redis when the outcome is stored,
without polling, on one connection for every waiter of a loop, through a Redis restart."""

import asyncio
import threading

import pytest
import redis
from django.tasks import task_backends

from tests.conftest import tasks_setting
from tests.engine import tasks
from worker.ops import Ops
from worker.protocol.servers import RedisServer
from worker.waiting import aall_finished, afinished, afirst_finished, finished


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The ids of every result read from Redis, from now on."""
    read: list[str] = []
    backend = type(task_backends["default"])
    real = backend.aget_result

    async def counted(self, result_id):
        read.append(result_id)
        return await real(self, result_id)

    monkeypatch.setattr(backend, "aget_result", counted)
    return read


async def test_a_waiter_wakes_when_the_job_ends_without_polling(run_worker, reads):
    result = await tasks.sleeper.aenqueue(0.3)

    async with run_worker():
        await afinished(result, timeout=10)

    assert (result.status, result.return_value) == ("SUCCESSFUL", "woke")
    # Read once on arrival, once when told of the end: not once per interval.
    assert reads == [result.id, result.id]


async def test_a_wait_past_its_timeout_raises_naming_the_jobs(backend):
    result = await tasks.add.aenqueue(1, 2)  # no worker runs it

    with pytest.raises(TimeoutError, match=rf"1 job\(s\) not finished after 0.2s: {result.id}"):
        await afinished(result, timeout=0.2)
    assert result.status == "READY"


async def test_all_and_first_finished(run_worker):
    slow, quick = await tasks.sleeper.aenqueue(1.0), await tasks.sleeper.aenqueue(0.05)

    async with run_worker():
        assert await afirst_finished([slow, quick], timeout=10) is quick
        assert not slow.is_finished
        assert await aall_finished([slow, quick], timeout=10) == [slow, quick]
    assert slow.status == quick.status == "SUCCESSFUL"


async def test_a_cancelled_queued_job_wakes_its_waiter(backend):
    result = await tasks.add.aenqueue(1, 2)
    waiting = asyncio.ensure_future(afinished(result, timeout=10))
    await asyncio.sleep(0)  # (the waiter subscribes before the cancel: either order works)

    assert await asyncio.to_thread(Ops(backend).cancel, result.id) == "cancelled"

    assert (await waiting).status == "FAILED"


async def test_a_failed_job_wakes_its_waiter(run_worker):
    result = await tasks.permanent.aenqueue()
    async with run_worker():
        await afinished(result, timeout=10)
    assert result.status == "FAILED"


def test_sync_code_waits_too(backend):
    result = tasks.add.enqueue(2, 3)

    def run_it():
        asyncio.run(_run_one(backend))

    runner = threading.Thread(target=run_it)
    runner.start()
    try:
        assert finished(result, timeout=10).return_value == 5
    finally:
        runner.join()


async def _run_one(backend):
    worker = backend.worker(burst=True, scheduler=False, poll=0.2)
    await worker.run()
    await backend.broker.close_loop()


async def test_a_thousand_waiters_share_one_connection(run_worker, redis_url):
    results = await tasks.add.aenqueue_many([((n, 0), {}) for n in range(1000)])
    waiters = [asyncio.ensure_future(afinished(r, timeout=30)) for r in results]
    await asyncio.sleep(0.2)

    client = redis.Redis.from_url(redis_url)
    try:
        listening = [c for c in client.client_list() if "P" in c["flags"]]
    finally:
        client.close()
    async with run_worker(concurrency=100):
        done = await asyncio.gather(*waiters)

    assert [r.return_value for r in done] == list(range(1000))
    assert len(listening) == 1


@pytest.fixture
def restartable_redis(tmp_path, settings, tasks_prefix):
    """A Redis of the test's own that keeps its data on disk (AOF), TASKS on it."""
    server = RedisServer(tmp_path / "redis", persist=True).start()
    settings.TASKS = tasks_setting(server.url, tasks_prefix)
    yield server
    server.stop()


async def test_a_waiter_survives_a_redis_restart(restartable_redis, run_worker):
    result = await tasks.add.aenqueue(20, 22)
    waiting = asyncio.ensure_future(afinished(result, timeout=30))
    await asyncio.sleep(0.2)  # subscribed

    restartable_redis.stop()
    restartable_redis.start()  # same port, the job kept
    try:
        async with run_worker():
            assert (await waiting).return_value == 42
    finally:
        await task_backends["default"].broker.close_loop()
