"""How long a finished job's record is kept: per task (``@task(result_ttl=...)``), else the
backend's OPTIONS["result_ttl"]; 0 keeps none, while dead letters stay for the operators."""

from __future__ import annotations

import asyncio

import pytest
from django.tasks import TaskResultStatus
from django.tasks.exceptions import TaskResultDoesNotExist

from tests.engine import tasks
from tests.engine.helpers import finished
from worker.ops.api import Ops


async def test_a_task_with_result_ttl_0_keeps_no_result_but_counts_it(run_worker, backend):
    forgotten = await tasks.add_forgotten.aenqueue(1, 2)
    kept = await tasks.add.aenqueue(1, 2)
    async with run_worker():
        await finished(kept)
        async with asyncio.timeout(10):
            while True:
                stats = backend.broker.queue("default").stats()
                if stats.counters["succeeded"] == 2:
                    break
                await asyncio.sleep(0.01)
    with pytest.raises(TaskResultDoesNotExist):
        await backend.aget_result(forgotten.id)
    assert backend.broker.queue("default").ids("successful", 0, -1) == [kept.id]
    assert 86_000_000 < backend.broker.sync.pttl(backend.broker.keys.job(kept.id)) <= 86_400_000


async def test_a_dead_letter_is_kept_whatever_the_result_ttl(run_worker, backend):
    failed = await tasks.fail_forgotten.aenqueue()
    async with run_worker():
        result = await finished(failed)
    assert result.status == TaskResultStatus.FAILED
    assert backend.broker.queue("default").ids("dead", 0, -1) == [failed.id]
    assert backend.broker.sync.pttl(backend.broker.keys.job(failed.id)) == -1


async def test_a_task_result_ttl_overrides_the_backend_default(run_worker, backend):
    kept = await tasks.add_kept_a_minute.aenqueue(2, 3)
    async with run_worker():
        result = await finished(kept)
    assert result.return_value == 5
    assert 59_000 < backend.broker.sync.pttl(backend.broker.keys.job(kept.id)) <= 60_000


def test_cancelling_a_queued_job_of_a_task_keeping_no_result_drops_it(backend):
    queued = tasks.add_forgotten.enqueue(1, 1)
    assert Ops(backend).cancel(queued.id) == "cancelled"
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(queued.id)
    assert backend.broker.queue("default").stats().counters["cancelled"] == 1
