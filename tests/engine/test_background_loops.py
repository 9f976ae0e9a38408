"""A worker's background loops (heartbeat, reaper, outcome writer, scheduler) survive errors
of any kind, and log each with its traceback: none dies silently."""

import asyncio
import logging

import pytest
import redis
from django.tasks import task_backends

from tests.conftest import tasks_setting
from tests.engine import tasks
from tests.engine.helpers import finished
from worker.protocol import Broker, Queue
from worker.runtime.scheduler import Scheduler

LEASE = 3.0


@pytest.fixture(autouse=True)
def clear_calls():
    tasks.calls.clear()


@pytest.fixture
def backend(settings, redis_url, tasks_prefix):
    """The backend, with a short lease: workers taken for dead are found in seconds."""
    settings.TASKS = tasks_setting(redis_url, tasks_prefix, lease=LEASE)
    return task_backends["default"]


async def started(timeout: float = 5.0) -> None:
    """Wait until a job of the test's tasks has begun."""
    async with asyncio.timeout(timeout):
        while True:
            if tasks.calls:
                return
            await asyncio.sleep(0.01)


async def logged(caplog, text: str, timeout: float = 5.0) -> logging.LogRecord:
    """The first record whose message holds ``text``, waited for."""
    async with asyncio.timeout(timeout):
        while True:
            for record in caplog.records:
                if text in record.getMessage():
                    return record
            await asyncio.sleep(0.02)


async def test_a_heartbeat_that_raises_for_a_while_costs_no_job_a_second_run(
    run_worker, monkeypatch, caplog
):
    victim: list[str] = []
    beats: dict[str, int] = {}
    real_heartbeat = Broker.heartbeat

    async def heartbeat(self, worker_id, info, ttl_ms):
        beats[worker_id] = beats.get(worker_id, 0) + 1
        # Beats 2 and 3 fail: the lease (three periods of beats) never runs out.
        if worker_id in victim and beats[worker_id] in (2, 3):
            raise RuntimeError("a bug in the heartbeat")
        return await real_heartbeat(self, worker_id, info, ttl_ms)

    monkeypatch.setattr(Broker, "heartbeat", heartbeat)
    # Long enough for the victim's heartbeat to have expired, and its job to have been
    # taken by the other worker, had its heartbeat loop died at the first error.
    result = await tasks.counted_sleep.aenqueue("once", 2 * LEASE)
    with caplog.at_level(logging.ERROR, logger="worker"):
        async with run_worker() as first:
            victim.append(first.id)  # before its first heartbeat: run() has not begun
            await started()
            async with run_worker():  # a live peer, reaping the leases of dead workers
                await finished(result, timeout=4 * LEASE)
    assert result.return_value == "once"
    assert result.worker_ids == [first.id]
    assert tasks.calls == [("counted_sleep", "once")]
    assert beats[first.id] > 3
    failures = [r for r in caplog.records if r.exc_info and "heartbeat" in r.getMessage()]
    assert len(failures) == 2
    assert "a bug in the heartbeat" in str(failures[0].exc_info[1])


async def test_an_error_storing_outcomes_is_logged_and_they_are_stored_after(
    run_worker, monkeypatch, caplog
):
    real_ack, failures = Queue.ack, []

    async def ack(self, *args, **kwargs):
        if not failures:
            failures.append(1)
            raise RuntimeError("a bug while storing outcomes")
        return await real_ack(self, *args, **kwargs)

    monkeypatch.setattr(Queue, "ack", ack)
    results = [await tasks.add.aenqueue(i, 1) for i in range(3)]
    with caplog.at_level(logging.ERROR, logger="worker"):
        async with run_worker():
            for r in results:
                await finished(r)
    assert [r.return_value for r in results] == [1, 2, 3]
    [record] = [r for r in caplog.records if r.exc_info]
    assert "Storing outcomes failed" in record.getMessage()
    assert "a bug while storing outcomes" in str(record.exc_info[1])


async def test_a_background_loop_that_dies_is_logged_at_once(run_worker, monkeypatch, caplog):
    async def broken(self):
        raise RuntimeError("the scheduler broke")

    monkeypatch.setattr(Scheduler, "run", broken)
    with caplog.at_level(logging.ERROR, logger="worker"):
        async with run_worker(scheduler=True):
            record = await logged(caplog, "background loop of the worker stopped")
    assert "the scheduler broke" in str(record.exc_info[1])


@pytest.mark.parametrize("queues", [["default"], ["default", "reports"]])
async def test_a_wait_that_keeps_failing_backs_off_instead_of_spinning(
    run_worker, monkeypatch, fetches, queues
):
    # The wait's own connection cannot be had (say Redis's maxclients is reached) while
    # the shared one works: the worker retries the wait with a backoff, no busy loop.
    waits: list[int] = []
    fifth = asyncio.Event()

    async def refused(*args, **kwargs):
        waits.append(1)
        if len(waits) == 5:
            fifth.set()
        raise redis.ConnectionError("max number of clients reached")

    monkeypatch.setattr(Queue, "wait_then_fetch", refused)  # serving one queue
    monkeypatch.setattr(Broker, "wait_for_work", refused)  # serving several
    loop = asyncio.get_running_loop()
    async with run_worker(queues=queues) as worker:
        began = loop.time()
        await asyncio.wait_for(fifth.wait(), 10)
        elapsed = loop.time() - began
        assert worker._outage.since is None  # the shared connection's outage is not declared
    # Four backoffs of at least half of 0.05, 0.1, 0.2 and 0.4 s came between the five.
    assert elapsed >= 0.35
    assert len(fetches) <= 2 * len(waits) + 2
