"""Delayed jobs and retries start within 100 ms of their due time, however they came to be
delayed, even when that is sooner than the worker's poll interval (1 s here)."""

import asyncio
from datetime import timedelta

import pytest
from django.tasks import TaskResultStatus
from django.utils import timezone

from tests.engine import tasks
from tests.engine.helpers import finished, waiting_for_work
from worker.ops.api import Ops

POLL = 1.0
ON_TIME_MS = 100


@pytest.fixture(autouse=True)
def clear_calls():
    tasks.calls.clear()


async def due_of(backend, job_id: str, timeout: float = 5.0) -> int:
    """When the job is due (epoch ms), read from the delayed set once it waits there."""
    client = backend.broker.aclient()
    delayed = backend.broker.keys.delayed("default")
    async with asyncio.timeout(timeout):
        while True:
            if (due := await client.zscore(delayed, job_id)) is not None:
                return int(due)
            await asyncio.sleep(0.005)


async def last_start(backend, job_id: str) -> int:
    """When the job's latest attempt started (epoch ms), from its record."""
    result = await backend.aget_result(job_id)
    return round(result.last_attempted_at.timestamp() * 1000)


async def attempt_started(backend, job_id: str, attempt: int, timeout: float = 5.0) -> None:
    """Wait until attempt number ``attempt`` of the job has started."""
    async with asyncio.timeout(timeout):
        while True:
            if len((await backend.aget_result(job_id)).worker_ids) >= attempt:
                return
            await asyncio.sleep(0.005)


async def test_a_retry_due_sooner_than_the_poll_starts_on_time(run_worker, backend):
    result = await tasks.fails_once.aenqueue("soon")
    async with run_worker(poll=POLL):
        due = await due_of(backend, result.id)
        await finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.attempts == 2
    late = await last_start(backend, result.id) - due
    assert 0 <= late < ON_TIME_MS


async def test_a_retry_scheduled_by_another_worker_starts_on_time(run_worker, backend):
    tasks.gates["elsewhere"] = asyncio.Event()
    result = await tasks.fails_once_when_released.aenqueue("elsewhere")
    async with run_worker(poll=POLL) as first:
        await attempt_started(backend, result.id, 1)
        async with run_worker(poll=POLL) as second:
            await waiting_for_work(second)
            # The first worker stops fetching; its job fails meanwhile, and the retry its
            # ACK schedules is the second worker's to run.
            first.stop()
            tasks.gates["elsewhere"].set()
            due = await due_of(backend, result.id)
            await finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.worker_ids == [first.id, second.id]
    late = await last_start(backend, result.id) - due
    assert 0 <= late < ON_TIME_MS


@pytest.mark.parametrize(("concurrency", "queues"), [(10, None), (1, None), (1, ["default"])])
async def test_a_job_enqueued_for_later_starts_on_time(run_worker, backend, concurrency, queues):
    # With one slot, the idle worker's wait holds it (serving one queue, its FETCH may lease
    # a job): the job falling due must not wait for that wait's BLPOP to time out.
    async with run_worker(poll=POLL, concurrency=concurrency, queues=queues) as worker:
        await waiting_for_work(worker)
        due = timezone.now() + timedelta(seconds=0.4)
        result = await tasks.add.using(run_after=due).aenqueue(1, 2)
        await finished(result)
    late = await last_start(backend, result.id) - int(due.timestamp() * 1000)
    assert 0 <= late < ON_TIME_MS


async def test_a_dead_letter_sent_back_starts_at_once(run_worker, backend):
    dead = await tasks.permanent.aenqueue()
    async with run_worker(poll=POLL):
        await finished(dead)
        sent_ms = int(timezone.now().timestamp() * 1000)
        assert Ops(backend).retry(dead.id) == 1
        await attempt_started(backend, dead.id, 2)
    late = await last_start(backend, dead.id) - sent_ms
    assert 0 <= late < ON_TIME_MS
