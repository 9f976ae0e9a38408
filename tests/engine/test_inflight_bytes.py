"""Big jobs do not take a worker's memory with them: the payload bytes of the jobs one worker
runs at once are bounded (``inflight_bytes``, ``runworker --inflight-mb``)."""

import asyncio

from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.engine.helpers import finished

KB = 1024


async def test_a_fetch_leases_jobs_up_to_its_byte_budget_and_leaves_the_rest_in_order(backend):
    queue = backend.broker.queue("default")
    big = [await tasks.echo.aenqueue("x" * (100 * KB)) for _ in range(5)]
    leases = (await queue.fetch(10, "w1:1:a", byte_budget=250 * KB)).leases
    assert [lease.id for lease in leases] == [r.id for r in big[:2]]
    assert (await queue.fetch(10, "w1:1:a", byte_budget=1, idle=False)).leases == []
    leases = (await queue.fetch(10, "w1:1:a", byte_budget=1)).leases  # idle: one, any size
    assert [lease.id for lease in leases] == [big[2].id]
    leases = (await queue.fetch(10, "w1:1:a")).leases
    assert [lease.id for lease in leases] == [r.id for r in big[3:]]


async def test_a_worker_runs_big_jobs_within_its_byte_budget(run_worker):
    tasks.calls.clear()
    results = [await tasks.counted_sleep.aenqueue("x" * (100 * KB), 0.2) for _ in range(6)]
    most = 0
    async with run_worker(inflight_bytes=250 * KB) as worker:
        async with asyncio.timeout(20):
            while not all(r.is_finished for r in results):
                most = max(most, len(worker._running))
                for r in results:
                    await r.arefresh()
                await asyncio.sleep(0.01)
    assert {r.status for r in results} == {TaskResultStatus.SUCCESSFUL}
    assert most == 2
    await finished(results[-1])


async def test_a_job_too_big_for_what_is_left_waits_without_spinning(run_worker, fetches):
    tasks.calls.clear()
    first = await tasks.counted_sleep.aenqueue("x" * (100 * KB), 1.0)
    second = await tasks.counted_sleep.aenqueue("x" * (100 * KB), 0.0)
    async with run_worker(inflight_bytes=150 * KB, queues=["default"]) as worker:
        async with asyncio.timeout(5):
            while True:  # the first runs; the second does not fit beside it
                if worker._running:
                    break
                await asyncio.sleep(0.01)
        before = len(fetches)
        await finished(first)
        await finished(second)
    assert len(fetches) - before < 10  # it waited for the first to end; no busy loop
