"""Leases under the rarer races: a stale worker's outcome, a fetch whose reply was lost."""

import asyncio

from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.engine.helpers import finished
from worker.broker import Outcome, error_json


async def test_a_stale_outcome_does_not_take_the_job_from_its_new_owner(backend):
    broker = backend.broker()
    result = await tasks.add.aenqueue(1, 2)
    [first], _ = await broker.fetch("default", 10, "w1:1:a")
    await broker.requeue("default", "w1:1:a", "lost", error_json("x.Lost", "w1 looked dead"))
    [second], _ = await broker.fetch("default", 10, "w2:2:b")
    assert (first.attempt, second.attempt) == (1, 2)

    # w1 was alive after all, and reports its attempt failed: the job stays w2's.
    stale = Outcome(result.id, 1, "err", error_json("builtins.ValueError", "late"), 0)
    await broker.ack("default", "w1:1:a", [stale], 60_000)
    await result.arefresh()
    assert result.status == TaskResultStatus.RUNNING
    assert await broker.leased("default", "w2:2:b") == {result.id}
    assert backend.client().zscore(backend.keys.delayed("default"), result.id) is None

    await broker.ack("default", "w2:2:b", [Outcome(result.id, 2, "ok", b"3")], 60_000)
    await result.arefresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 3
    assert backend.client().zcard(backend.keys.ready("default")) == 0


async def test_leases_whose_fetch_reply_was_lost_are_released(backend, monkeypatch):
    from worker import runner

    monkeypatch.setattr(runner, "STRAY_AFTER", 0.0)
    result = await tasks.add.aenqueue(2, 2)
    worker = runner.Worker(backend, poll=0.2, scheduler=False)
    # A FETCH that ran in Redis under this worker's id, but whose reply never arrived.
    [lost], _ = await backend.broker().fetch("default", 10, worker.id)
    assert lost.id == result.id
    running = asyncio.create_task(worker.run())
    try:
        await finished(result, timeout=10)  # without the release: RUNNING for ever
    finally:
        worker.stop()
        await running
    assert result.return_value == 4
    assert result.attempts == 1  # the lost lease was not counted as an attempt
