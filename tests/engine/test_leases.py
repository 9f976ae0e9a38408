"""Leases under the rarer races: a stale worker's outcome, a fetch whose reply was lost."""

import asyncio

from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.engine.helpers import finished
from worker.protocol.records import Outcome, OutcomeKind, error_json


async def test_a_stale_outcome_does_not_take_the_job_from_its_new_owner(backend):
    queue = backend.broker.queue("default")
    result = await tasks.add.aenqueue(1, 2)
    [first], _ = await queue.fetch(10, "w1:1:a")
    await queue.requeue("w1:1:a", "lost", error_json("x.Lost", "w1 looked dead"))
    [second], _ = await queue.fetch(10, "w2:2:b")
    assert (first.attempt, second.attempt) == (1, 2)

    # w1 was alive after all, and reports its attempt failed: the job stays w2's.
    stale = Outcome(result.id, 1, OutcomeKind.FAILED, error_json("builtins.ValueError", "late"))
    await queue.ack("w1:1:a", [stale], 60_000)
    await result.arefresh()
    assert result.status == TaskResultStatus.RUNNING
    assert await queue.leased("w2:2:b") == {result.id}
    assert backend.broker.sync.zscore(backend.broker.keys.delayed("default"), result.id) is None

    await queue.ack("w2:2:b", [Outcome(result.id, 2, OutcomeKind.SUCCEEDED, b"3")], 60_000)
    await result.arefresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 3
    assert backend.broker.sync.zcard(backend.broker.keys.ready("default")) == 0


async def test_leases_whose_fetch_reply_was_lost_are_released(backend, monkeypatch):
    from worker.runtime import worker as runtime

    monkeypatch.setattr(runtime, "STRAY_AFTER", 0.0)
    result = await tasks.add.aenqueue(2, 2)
    worker = backend.worker(poll=0.2, scheduler=False)
    # A FETCH that ran in Redis under this worker's id, but whose reply never arrived.
    [lost], _ = await backend.broker.queue("default").fetch(10, worker.id)
    assert lost.id == result.id
    running = asyncio.create_task(worker.run())
    try:
        await finished(result, timeout=10)  # without the release: RUNNING for ever
    finally:
        worker.stop()
        await running
    assert result.return_value == 4
    assert result.attempts == 1  # the lost lease was not counted as an attempt
