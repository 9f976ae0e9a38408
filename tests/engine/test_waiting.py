"""Waiting for a job's end (worker/waiting.py): woken by Redis when the outcome is stored,
without polling, on one connection for every waiter of a loop, through a Redis restart."""

import asyncio
import threading

import pytest
import redis
import redis.asyncio
from django.tasks import task_backends

from tests.conftest import tasks_setting
from tests.engine import tasks
from worker.ops import Ops
from worker.protocol import listener
from worker.protocol.records import error_json
from worker.protocol.servers import RedisServer
from worker.waiting import aall_finished, afinished, afirst_finished, all_finished, finished


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


async def waited(backend, count: int, queue: str = "default") -> None:
    """Until ``count`` jobs of ``queue`` are marked as waited for (their waiters listen)."""
    client = backend.broker.aclient()
    async with asyncio.timeout(10):
        while True:
            if await client.scard(backend.broker.keys.waited(queue)) == count:
                return
            await asyncio.sleep(0.01)


async def test_a_cancelled_queued_job_wakes_its_waiter(backend):
    result = await tasks.add.aenqueue(1, 2)
    waiting = asyncio.ensure_future(afinished(result, timeout=10))
    await waited(backend, 1)  # told by CANCEL, not found by the waiter's first read

    assert await asyncio.to_thread(Ops(backend).cancel, result.id) == "cancelled"

    assert (await waiting).status == "FAILED"


async def test_a_job_dead_lettered_with_its_dead_worker_wakes_its_waiter(backend):
    result = await tasks.slow_async.aenqueue(0)  # max_attempts=1
    queue = backend.broker.queue("default")
    await queue.fetch(10, "w1:1:a")
    waiting = asyncio.ensure_future(afinished(result, timeout=10))
    await waited(backend, 1)

    await queue.requeue("w1:1:a", "lost", error_json("x.Lost", "looked dead"))

    assert (await waiting).status == "FAILED"


async def test_a_waiter_of_another_queue_arriving_while_the_listener_connects_hears(
    run_worker, backend
):
    one = await tasks.sleeper.aenqueue(0.2)
    other = await tasks.sleeper.using(queue_name="other").aenqueue(0.2)
    another = await tasks.sleeper.using(queue_name="other").aenqueue(0.2)
    first = asyncio.ensure_future(afinished(one, timeout=10))
    connecting = backend.broker.loop().listener
    async with asyncio.timeout(10):  # the listener has begun to connect for the first
        while True:
            if connecting._tasks and (connecting._pubsub is not None or connecting._lock.locked()):
                break
            await asyncio.sleep(0)

    # Two waiters of one new channel, both waiting for the subscription lock.
    second = asyncio.ensure_future(afinished(other, timeout=10))
    third = asyncio.ensure_future(afinished(another, timeout=10))
    async with run_worker():
        await asyncio.gather(first, second, third)

    assert one.status == other.status == another.status == "SUCCESSFUL"


async def test_a_wait_outlasting_the_marks_lifetime_still_hears_the_end(
    backend, run_worker, monkeypatch
):
    monkeypatch.setattr(listener, "WAITED_TTL_MS", 300)  # renewed every 0.15 s
    result = await tasks.sleeper.aenqueue(1.0)

    async with run_worker():
        await afinished(result, timeout=10)

    assert result.status == "SUCCESSFUL"


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


def test_waiting_for_no_job_returns_at_once():
    assert all_finished([], timeout=1) == []


async def _run_one(backend):
    worker = backend.worker(burst=True, scheduler=False, poll=0.2)
    await worker.run()
    await backend.broker.close_loop()


async def listening(url: str, channel: str, at_least: int = 1, timeout: float = 10) -> int:
    """How many connections are subscribed to ``channel``, once at least ``at_least`` are."""
    client = redis.asyncio.Redis.from_url(url)
    try:
        async with asyncio.timeout(timeout):
            while True:
                [(_, subscribers)] = await client.pubsub_numsub(channel)
                if subscribers >= at_least:
                    return int(subscribers)
                await asyncio.sleep(0.01)
    finally:
        await client.aclose()


async def test_a_thousand_waiters_share_one_connection(run_worker, redis_url, backend):
    results = await tasks.add.aenqueue_many([((n, 0), {}) for n in range(1000)])
    waiters = [asyncio.ensure_future(afinished(r, timeout=30)) for r in results]
    waited = backend.broker.keys.waited("default")
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        async with asyncio.timeout(10):  # every waiter has marked its job
            while True:
                if await client.scard(waited) == 1000:
                    break
                await asyncio.sleep(0.01)
    finally:
        await client.aclose()

    subscribers = await listening(redis_url, backend.broker.keys.events("default"))
    async with run_worker(concurrency=100):
        done = await asyncio.gather(*waiters)

    assert [r.return_value for r in done] == list(range(1000))
    assert subscribers == 1


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
    backend = task_backends["default"]
    await listening(restartable_redis.url, backend.broker.keys.events("default"))

    restartable_redis.stop()
    restartable_redis.start()  # same port, the job kept
    try:
        async with run_worker():
            assert (await waiting).return_value == 42
    finally:
        await task_backends["default"].broker.close_loop()
