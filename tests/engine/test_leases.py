"""Leases under the rarer races: a stale worker's outcome, a fetch whose reply was lost."""

import asyncio

from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.engine.helpers import finished
from worker.ops.api import Ops
from worker.protocol.records import Outcome, OutcomeKind, error_json


async def test_a_stale_outcome_does_not_take_the_job_from_its_new_owner(backend):
    queue = backend.broker.queue("default")
    result = await tasks.add.aenqueue(1, 2)
    [first] = (await queue.fetch(10, "w1:1:a")).leases
    await queue.requeue("w1:1:a", "lost", error_json("x.Lost", "w1 looked dead"))
    [second] = (await queue.fetch(10, "w2:2:b")).leases
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
    assert backend.broker.queue("default").sizes("ready") == [0]


async def test_leases_whose_fetch_reply_was_lost_are_released(backend, monkeypatch):
    from worker.runtime import worker as runtime

    monkeypatch.setattr(runtime, "STRAY_AFTER", 0.0)
    result = await tasks.add.aenqueue(2, 2)
    worker = backend.worker(poll=0.2, scheduler=False)
    # A FETCH that ran in Redis under this worker's id, but whose reply never arrived.
    [lost] = (await backend.broker.queue("default").fetch(10, worker.id)).leases
    assert lost.id == result.id
    running = asyncio.create_task(worker.run())
    try:
        await finished(result, timeout=10)  # without the release: RUNNING for ever
    finally:
        worker.stop()
        await running
    assert result.return_value == 4
    assert result.attempts == 1  # the lost lease was not counted as an attempt


def counters(backend) -> dict[str, int]:
    return Ops(backend).stats("default").counters


async def test_a_replayed_ack_changes_nothing(backend):
    """An ack whose reply was lost is sent again: the job a cancel request ended is not
    retried by the replay, and no counter moves twice."""
    queue = backend.broker.queue("default")
    result = await tasks.flaky.aenqueue("k", fail_times=1)  # a retry would run it again
    [lease] = (await queue.fetch(10, "w1:1:a")).leases
    assert Ops(backend).cancel(result.id) == "requested"
    failed = [Outcome(result.id, 1, OutcomeKind.FAILED, error_json("builtins.OSError", "x"))]
    cancelled = error_json("worker.exceptions.Cancelled", "not retried")
    assert await queue.ack("w1:1:a", failed, 60_000, cancelled) == [result.id]
    assert await queue.ack("w1:1:a", failed, 60_000, cancelled) == []

    await result.arefresh()
    assert result.status == TaskResultStatus.FAILED
    assert Ops(backend).place(Ops(backend).job(result.id)).state == "cancelled"
    assert backend.broker.sync.zcard(backend.broker.keys.delayed("default")) == 0
    assert (counters(backend)["cancelled"], counters(backend)["retried"]) == (1, 0)

    other = await tasks.add.aenqueue(1, 2)
    [lease] = (await queue.fetch(10, "w1:1:a")).leases
    ok = [Outcome(other.id, lease.attempt, OutcomeKind.SUCCEEDED, b"3")]
    for _ in range(3):
        await queue.ack("w1:1:a", ok, 60_000)
    assert counters(backend)["succeeded"] == 1


async def test_the_late_success_of_a_job_taken_for_dead_is_no_dead_letter(backend):
    """A worker stopped past its lease has its one-attempt job dead-lettered; it resumes and
    succeeds: the job is SUCCESSFUL, no longer a dead letter, and counted once, as a
    success (also when that ack is replayed)."""
    ops, queue = Ops(backend), backend.broker.queue("default")
    result = await tasks.slow_async.aenqueue(0)  # max_attempts=1
    await queue.fetch(10, "w1:1:a")
    lost = await queue.requeue("w1:1:a", "lost", error_json("x.Lost", "looked dead"))
    assert lost == (0, 1, [], [tasks.slow_async.module_path])  # the task: for the metrics
    assert ops.dead_count("default") == 1

    ok = [Outcome(result.id, 1, OutcomeKind.SUCCEEDED, b'"done"')]
    for _ in range(2):
        await queue.ack("w1:1:a", ok, 60_000)
    await result.arefresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == "done"
    assert ops.dead_count("default") == 0 and ops.dead("default") == []
    assert (counters(backend)["succeeded"], counters(backend)["failed"]) == (1, 0)
    assert ops.retry_dead("default") == 0


async def test_a_late_outcome_does_not_end_the_attempt_its_own_worker_runs_now(backend):
    """A worker taken for dead fetches its job again: the outcome of its first attempt,
    arriving late (or replayed), neither frees nor ends the second attempt."""
    queue = backend.broker.queue("default")
    result = await tasks.flaky.aenqueue("k", fail_times=1)
    await queue.fetch(10, "w1:1:a")
    await queue.requeue("w1:1:a", "lost", error_json("x.Lost", "looked dead"))
    [second] = (await queue.fetch(10, "w1:1:a")).leases
    assert second.attempt == 2

    late = [Outcome(result.id, 1, OutcomeKind.FAILED, error_json("builtins.OSError", "late"))]
    for _ in range(2):
        await queue.ack("w1:1:a", late, 60_000)
    await result.arefresh()
    assert result.status == TaskResultStatus.RUNNING
    assert await queue.leased("w1:1:a") == {result.id}
    assert backend.broker.sync.zscore(backend.broker.keys.delayed("default"), result.id) is None

    ok = [Outcome(result.id, 2, OutcomeKind.SUCCEEDED, b"2")]
    for _ in range(2):
        await queue.ack("w1:1:a", [*late, *ok], 60_000)
    await result.arefresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 2)
    assert await queue.leased("w1:1:a") == set()
    assert (counters(backend)["succeeded"], counters(backend).get("retried", 0)) == (1, 0)


async def test_a_cancelled_job_stays_cancelled_when_the_worker_taken_for_dead_acks(backend):
    ops, queue = Ops(backend), backend.broker.queue("default")
    result = await tasks.add.aenqueue(1, 2)
    await queue.fetch(10, "w1:1:a")
    await queue.requeue("w1:1:a", "lost", error_json("x.Lost", "looked dead"))
    assert ops.cancel(result.id) == "cancelled"  # queued again: cancelled at once
    await queue.ack("w1:1:a", [Outcome(result.id, 1, OutcomeKind.SUCCEEDED, b"3")], 60_000)
    await result.arefresh()
    assert result.status == TaskResultStatus.FAILED
    assert ops.place(ops.job(result.id)).state == "cancelled"


async def test_a_job_handed_back_to_the_worker_that_runs_it_runs_once(run_worker, backend):
    """The worker was taken for dead (its heartbeat late) while the job ran, and fetches the
    requeued job itself: the attempt running here answers for the new lease, instead of a
    second run of the job beside it."""
    queue = backend.broker.queue("default")
    tasks.calls.clear()
    result = await tasks.counted_sleep.aenqueue("once", 1.0)
    async with run_worker() as worker:
        async with asyncio.timeout(5):
            while True:  # until the job runs
                if tasks.calls:
                    break
                await asyncio.sleep(0.01)
        # another worker's reaper, finding this one's heartbeat expired:
        await queue.requeue(worker.id, "lost", error_json("x.Lost", "looked dead"))
        await finished(result)
        assert await queue.leased(worker.id) == set()
    assert tasks.calls == [("counted_sleep", "once")]
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, "once")
    assert result.attempts == 2  # the lease taken away counted; the run answered for both
