"""Workflows and batches at their edges: cancels, deletes and failures that meet another
step's end, transactions, enqueue checks, the cost of large workflows, the order a large
group is queued in, a waiter across a Redis restart and run_jobs() under TestCase. Races
are driven through the protocol (FETCH, ACK, REQUEUE, CANCEL, DELETE as the workers and
the operators send them) so that they happen every run."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from asgiref.sync import sync_to_async
from django.db import transaction
from django.tasks import TaskResultStatus, task, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.test import TestCase, override_settings

from tests.conftest import tasks_setting
from tests.engine import tasks
from tests.engine.helpers import eventually
from tests.engine.test_waiting import listening
from tests.testing.conftest import redis_setting
from worker.exceptions import Cancelled
from worker.ops.api import Ops
from worker.protocol.records import Outcome, OutcomeKind, class_path, error_json
from worker.protocol.servers import RedisServer
from worker.testing import JobsTestMixin
from worker.workflows import (
    Batch,
    Workflow,
    WorkflowDoesNotExist,
    WorkflowStatus,
    chain,
    group,
    step,
)

pytestmark = pytest.mark.django_db(transaction=True)

BOOM = error_json("builtins.RuntimeError", "boom")
CANCELLED = error_json(class_path(Cancelled), "cancelled by hand")
LOST = error_json("worker.exceptions.WorkerLost", "the worker died")
KEEP_MS = 3_600_000


@pytest.fixture(autouse=True)
def _fresh_calls():
    tasks.calls.clear()


def ran(name: str) -> list[object]:
    return [arg for n, arg in tasks.calls if n == name]


async def _sync(function, *args):
    return await sync_to_async(function, thread_sensitive=False)(*args)


async def _drained(backend, worker, queue: str = "default") -> None:
    """Wait until ``worker`` is idle and ``queue`` holds nothing ready."""
    client = backend.broker.aclient()
    ready = backend.broker.keys.ready(queue)
    deadline = time.monotonic() + 10
    while worker._waiter is None or worker._running or await client.llen(ready):
        assert time.monotonic() < deadline, "timed out waiting for the queue to drain"
        await asyncio.sleep(0.02)


async def _leased(backend, queue: str, worker_id: str, count: int) -> list[str]:
    """FETCH as worker ``worker_id`` would: the ids it leased."""
    fetched = await backend.broker.queue(queue).fetch(count, worker_id)
    return [lease.id for lease in fetched.leases if lease.payload is not None]


# --- Batches ---------------------------------------------------------------------------


async def test_cancelling_a_batch_does_not_count_its_callbacks_as_jobs_ended(backend):
    """A batch's progress counts its jobs only: cancelling a batch of one queued job cancels
    its callbacks, and it reads 0 ended and 0 failed of 1, not its callbacks as ended."""
    batch = await Batch.aopen(
        on_success=step(tasks.record, "success"), on_complete=step(tasks.record, "complete")
    )
    await batch.aenqueue(tasks.add, 1, 1)
    assert await _sync(batch.cancel) == "cancelled"
    progress = await batch.aprogress()
    assert progress.status == WorkflowStatus.CANCELLED
    assert progress.total == 1
    assert (progress.ended, progress.failed) == (0, 0)  # no job of the batch has ended


def test_a_batch_enqueue_inside_a_rolled_back_transaction_stores_nothing(backend):
    """Batch.enqueue inside transaction.atomic() is sent on commit, as any enqueue: when the
    transaction rolls back, the batch holds no job and the job's id finds no result."""
    batch = Batch.open(on_complete=step(tasks.record, "complete"))
    with pytest.raises(RuntimeError), transaction.atomic():
        rolled_back = batch.enqueue(tasks.add, 1, 1)
        raise RuntimeError("roll back")
    assert batch.progress().total == 0
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(rolled_back.id)


def test_a_batch_opened_inside_a_transaction_shows_its_callback_ready_until_the_commit(backend):
    """Its callbacks are jobs that wait for the commit, as any job enqueued in it: READY."""
    with transaction.atomic():
        batch = Batch.open(on_complete=step(tasks.record, "complete"))
        pending_ids = [r.id for send in pending_sends() for r, _ in send.prepared]
        assert len(pending_ids) == 1
        assert backend.get_result(pending_ids[0]).status == TaskResultStatus.READY
    assert batch.progress().status == WorkflowStatus.RUNNING


def pending_sends():
    from worker.pending import _waiting

    return list(_waiting(task_backends["default"]))


# --- A step cancelled by hand while it waits, under "continue" -------------------------


async def test_a_waiting_step_cancelled_by_hand_under_continue_never_runs(run_worker, backend):
    """A step cancelled by hand while it waits for the step before it ('b') is that step's
    failure: under "continue" the workflow runs on, but the cancelled step never runs when
    its turn comes, and its result reads FAILED."""
    flow = chain(
        step(tasks.record, "a"), step(tasks.record, "b"), step(tasks.record, "c"),
        on_failure="continue",
    )  # fmt: skip
    workflow = await flow.aenqueue()
    assert await _sync(Ops(backend).cancel, workflow.steps[1]) == "cancelled"
    async with run_worker(concurrency=4) as worker:
        await workflow.afinished(10)
        await _drained(backend, worker)
    assert "b" not in ran("record")
    cancelled = await backend.aget_result(workflow.steps[1])
    assert cancelled.status == TaskResultStatus.FAILED


async def test_a_chain_step_after_one_cancelled_while_waiting_waits_for_the_one_before(backend):
    """chain(a, b, c) runs its parts one after another. Under "continue", cancelling b by
    hand while it waits for a is b's failure, and c runs after it, but only once a has
    ended: while a has not even started, c is not released and no FETCH leases it."""
    workflow = await chain(
        step(tasks.record, "a"), step(tasks.record, "b"), step(tasks.record, "c"),
        on_failure="continue",
    ).aenqueue()  # fmt: skip
    a, b, _ = workflow.steps
    assert await _sync(Ops(backend).cancel, b) == "cancelled"
    assert await _leased(backend, "default", "w1", 5) == [a]  # not c: a has not run yet


async def test_a_batch_callback_cancelled_by_hand_never_runs(backend):
    """A batch callback cancelled by hand while the batch is open is not released when the
    batch ends: no worker can lease it."""
    batch = await Batch.aopen(on_complete=step(tasks.record, "complete"))
    callback = (await batch.aprogress()).steps[0][0]
    assert await _sync(Ops(backend).cancel, callback) == "cancelled"
    await batch.aclose()
    assert await _leased(backend, "default", "w1", 5) == []


async def test_deleting_a_waiting_step_is_its_failure(backend):
    """Deleting a step that has not ended is that step's failure (docs/workflows.md), also
    while it waits for the step before it and sits on no queue list: under "fail" its
    workflow reads FAILED."""
    workflow = await chain(step(tasks.record, "a"), step(tasks.record, "b")).aenqueue()
    await _sync(Ops(backend).delete, workflow.steps[1])
    assert (await workflow.aprogress()).status == WorkflowStatus.FAILED


# --- A workflow's stop in the same script as another step's end ------------------------


async def test_a_success_acked_with_a_failure_of_its_workflow_keeps_its_result(backend):
    """A success acked in the same call as a failure of its workflow keeps its result: one
    worker's ACK carries several outcomes, and when a failure under "fail" comes first and
    stops the workflow, a step that succeeded in the same ACK reads SUCCESSFUL with its
    value and no error, in its result and in the workflow's progress; only the steps that
    had not run are cancelled."""
    workflow = (
        await group([step(tasks.add, 1, 1), step(tasks.add, 2, 2)])
        .then(step(tasks.record, "never"))
        .aenqueue()
    )
    first, second = workflow.steps[:2]
    assert sorted(await _leased(backend, "default", "w1", 2)) == sorted([first, second])
    queue = backend.broker.queue("default")
    await queue.ack(
        "w1",
        [
            Outcome(first, 1, OutcomeKind.FATAL, BOOM),
            Outcome(second, 1, OutcomeKind.SUCCEEDED, b"4"),
        ],
        KEEP_MS,
        CANCELLED,
    )
    progress = await workflow.aprogress()
    assert progress.status == WorkflowStatus.FAILED
    assert progress.steps[1] == (second, "SUCCESSFUL")
    result = await backend.aget_result(second)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 4
    assert result.errors == []  # not "its workflow ended before this step ran"
    assert progress.failed == 2  # the failed step and the callback it cancelled


async def test_a_dead_lettered_step_of_a_failed_workflow_can_be_retried(backend):
    """A worker lost with two steps of one workflow on their last attempt: REQUEUE dead-
    letters both, and the first one's failure stops the workflow in the same call. Both
    steps' ends read FAILED (they failed, they were not cancelled where they waited), and
    `jobs retry` of the second runs it again: the next FETCH leases it, as
    docs/workflows.md says, although its workflow stays FAILED."""
    # slow_async: max_attempts=1, so a lost attempt is its last
    workflow = await group([step(tasks.slow_async, 0), step(tasks.slow_async, 0)]).aenqueue()
    first, second = workflow.steps
    assert sorted(await _leased(backend, "default", "w1", 2)) == sorted([first, second])
    requeued = await backend.broker.queue("default").requeue("w1", "lost", LOST)
    assert requeued.dead == 2
    progress = await workflow.aprogress()
    assert await _sync(Ops(backend).retry, second) == 1
    assert await _leased(backend, "default", "w2", 5) == [second]
    assert progress.status == WorkflowStatus.FAILED
    assert [end for _, end in progress.steps] == ["FAILED", "FAILED"]


async def test_a_step_leased_but_not_started_when_its_workflow_is_cancelled_never_runs(backend):
    """A step leased when its workflow is cancelled is only asked to stop. If its worker
    never ran it (its FETCH reply was lost, or it is shutting down) and puts it back
    (REQUEUE 'released'), it is not started after the cancel: no later FETCH leases it."""
    workflow = await chain(step(tasks.record, "a"), step(tasks.record, "b")).aenqueue()
    first = workflow.steps[0]
    assert await _leased(backend, "default", "w1", 1) == [first]
    assert await _sync(workflow.cancel) == "cancelled"
    await backend.broker.queue("default").requeue("w1", "released", ids=[first])
    assert await _leased(backend, "default", "w2", 5) == []


async def test_afinished_returns_once_the_workflow_has_failed(backend):
    """Workflow.afinished returns as soon as the workflow has ended, not when its last
    steps have: a failure that stops the workflow while the caller waits wakes the caller
    with FAILED, although another step still runs (a sync step cannot be stopped and may run
    on for minutes; here it is held by a worker that has not answered yet)."""
    workflow = await group([step(tasks.record, "a"), step(tasks.record, "b")]).aenqueue()
    first, second = workflow.steps
    assert sorted(await _leased(backend, "default", "w1", 2)) == sorted([first, second])
    waiter = asyncio.create_task(workflow.afinished(3))
    waited = backend.broker.keys.waited("default")
    client = backend.broker.aclient()
    deadline = time.monotonic() + 5
    while not await client.sismember(waited, workflow.id):  # the waiter watches
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await backend.broker.queue("default").ack(
        "w1", [Outcome(first, 1, OutcomeKind.FATAL, BOOM)], KEEP_MS, CANCELLED
    )
    assert (await workflow.aprogress()).status == WorkflowStatus.FAILED
    progress = await waiter  # the second step is still leased to w1
    assert progress.status == WorkflowStatus.FAILED


# --- FETCH's cost with cancelled steps -------------------------------------------------


async def test_a_fetch_looks_at_no_more_than_a_thousand_cancelled_held_steps(backend):
    """One FETCH drops at most a thousand held steps of a cancelled workflow from a limit
    group's held list (docs/workflows.md): however many a cancel leaves there, a single
    call never holds Redis for all of them."""
    n = 2500
    workflow = await group([step(tasks.limited, f"s{i}", 0) for i in range(n)]).aenqueue()
    queue = backend.broker.queue("default")
    await queue.flow.publish({tasks.limited.module_path: tasks.limited.limits})
    client = backend.broker.aclient()
    running = await _leased(backend, "default", "w1", 3)  # the concurrency limit is 3
    assert len(running) == 3
    held = backend.broker.keys.held("default", "tests.engine.tasks.limited")
    for _ in range(5):  # each FETCH moves at most 1,000 ready jobs to the held list
        await queue.fetch(10, "w1")
    assert await client.llen(held) == n - 3
    assert await _sync(workflow.cancel) == "cancelled"
    # one running step ends: its slot frees, and the group's held jobs may go on
    await queue.ack("w1", [Outcome(running[0], 1, OutcomeKind.CANCELLED, CANCELLED)], KEEP_MS)
    await queue.fetch(1, "w2")
    assert await client.llen(held) >= n - 3 - 1000


# --- Enqueue checks -------------------------------------------------------------------


async def test_a_step_taking_a_result_cannot_have_a_limit_key(backend):
    """A step taking a result cannot have a limit_key (its limit group is set at enqueue,
    before the result exists): enqueueing such a workflow raises InvalidTask naming
    limit_key, rather than grouping every such step as if the value passed on were None."""
    flow = chain(step(tasks.echo, "acme"), step(tasks.per_customer, 0.0).taking_result())
    with pytest.raises(InvalidTask, match="limit_key"):
        await flow.aenqueue()


async def test_a_chain_built_one_then_at_a_time_can_be_enqueued(backend):
    """A chain built in a loop of `flow = flow.then(...)` over more steps than Python's
    recursion limit can be enqueued, with every step in it."""
    flow = step(tasks.record, "0")
    for i in range(1, 1200):
        flow = flow.then(step(tasks.record, str(i)))
    workflow = await flow.aenqueue()
    assert len(workflow.steps) == 1200


async def test_a_group_after_a_group_costs_redis_memory_linear_in_its_steps(backend):
    """group(A).then(group(B)) keeps a workflow's record in Redis linear in its steps, not
    in |A| x |B|: 500 steps then 500 steps cost under 400 bytes a step (a group of 2,000
    then one callback costs about 140)."""
    flow = group([step(tasks.record, f"a{i}") for i in range(500)]).then(
        group([step(tasks.record, f"b{i}") for i in range(500)])
    )
    workflow = await flow.aenqueue()
    key = backend.broker.keys.workflow(workflow.id)
    used = await backend.broker.aclient().memory_usage(key, samples=0)
    assert used / len(workflow.steps) < 400


# --- Transactions ---------------------------------------------------------------------


def test_a_workflows_steps_read_back_inside_its_transaction_as_ready(backend):
    """Inside transaction.atomic(), get_result finds a workflow's steps READY before the
    commit, as it finds a job enqueued there (docs/workflows.md)."""
    with transaction.atomic():
        plain = tasks.add.enqueue(1, 2)
        assert backend.get_result(plain.id).status == TaskResultStatus.READY
        workflow = chain(step(tasks.add, 1, 2), step(tasks.add, 3, 4)).enqueue()
        assert backend.get_result(workflow.steps[0]).status == TaskResultStatus.READY


async def test_an_async_enqueue_inside_a_rolled_back_transaction_stores_no_workflow(
    backend, monkeypatch
):
    """A workflow aenqueued inside a transaction its own thread opened is stored on commit,
    as a task's aenqueue is: when the transaction rolls back, neither the job nor the
    workflow is stored."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with pytest.raises(RuntimeError), transaction.atomic():
        plain = await tasks.add.aenqueue(1, 2)
        workflow = await chain(step(tasks.add, 1, 2)).aenqueue()
        raise RuntimeError("roll back")
    with pytest.raises(TaskResultDoesNotExist):
        await backend.aget_result(plain.id)  # the engine's own rule, for comparison
    with pytest.raises(WorkflowDoesNotExist):
        await Workflow.aget(workflow.id)


# --- START of a staged workflow --------------------------------------------------------


async def test_a_staged_groups_steps_join_their_queue_in_the_order_written(backend):
    """A group's steps join their queue in the order written, first in first out as an
    enqueue_many's jobs do: also in a group of more than 1,000 steps, whose first steps are
    staged ahead of START, they are queued ahead of the last 1,000 that START queues."""
    workflow = await group([step(tasks.record, f"s{i}") for i in range(1100)]).aenqueue()
    client = backend.broker.aclient()
    queued = [i.decode() for i in await client.lrange(backend.broker.keys.ready("default"), 0, -1)]
    assert queued[:3] == list(workflow.steps[:3])
    assert queued == list(workflow.steps)


# --- A batch's on_success already ended by hand ----------------------------------------


async def _batch_failing_with_a_callback_ended_by_hand(backend, end_by_hand) -> str:
    """A batch whose on_success was ended by hand (``end_by_hand(ops, id)``), then one job
    that fails, then the close: the batch ends FAILED. Returns on_success's id."""
    batch = await Batch.aopen(
        on_success=step(tasks.record, "success"), on_complete=step(tasks.record, "complete")
    )
    on_success = (await batch.aprogress()).steps[0][0]
    await _sync(end_by_hand, Ops(backend), on_success)
    failing = await batch.aenqueue(tasks.fails_with, "boom")
    await batch.aclose()
    assert await _leased(backend, "default", "w1", 1) == [failing.id]
    queue = backend.broker.queue("default")
    await queue.ack("w1", [Outcome(failing.id, 1, OutcomeKind.FATAL, BOOM)], KEEP_MS)
    assert (await batch.aprogress()).status == WorkflowStatus.FAILED
    return on_success


async def test_a_batch_callback_cancelled_by_hand_is_not_cancelled_again_when_it_fails(backend):
    """A batch's on_success cancelled by hand, then the batch fails: the callback is
    cancelled once only, so the queue counts one cancellation and lists its id once among
    the latest cancelled jobs."""
    on_success = await _batch_failing_with_a_callback_ended_by_hand(
        backend, lambda ops, job_id: ops.cancel(job_id)
    )
    client = backend.broker.aclient()
    keys = backend.broker.keys
    cancelled = [i.decode() for i in await client.lrange(keys.cancelled("default"), 0, -1)]
    assert cancelled.count(on_success) == 1
    assert int(await client.hget(keys.stats("default"), "cancelled")) == 1


async def test_a_batch_callback_deleted_by_hand_stays_deleted_when_the_batch_fails(backend):
    """A batch's on_success deleted by hand, then the batch fails: the callback stays
    deleted, and no hash comes back under its id."""
    on_success = await _batch_failing_with_a_callback_ended_by_hand(
        backend, lambda ops, job_id: ops.delete(job_id)
    )
    client = backend.broker.aclient()
    assert await client.hgetall(backend.broker.keys.job(on_success)) == {}


# --- REQUEUE of a step asked to stop ---------------------------------------------------


async def test_a_step_asked_to_stop_lost_on_its_last_attempt_ends_cancelled(backend):
    """A leased step of a workflow that is cancelled gets a cancel request; should its
    worker die first, REQUEUE ends it as cancelled rather than put it back
    (docs/protocol.md, Workflows 3), also on its last attempt: it does not go to the dead
    letters, where `jobs retry` could run a step of a cancelled workflow, and no cancel
    request is left behind for it."""
    # slow_async: max_attempts=1, so a lost attempt is its last
    workflow = await chain(step(tasks.slow_async, 0), step(tasks.record, "after")).aenqueue()
    first = workflow.steps[0]
    assert await _leased(backend, "default", "w1", 1) == [first]
    assert await _sync(workflow.cancel) == "cancelled"
    await backend.broker.queue("default").requeue("w1", "lost", LOST)
    client = backend.broker.aclient()
    keys = backend.broker.keys
    assert await client.zscore(keys.dead("default"), first) is None
    assert await client.zscore(keys.cancel("default"), first) is None
    assert (await workflow.aprogress()).steps[0] == (first, "CANCELLED")


async def test_a_lost_step_requeued_after_a_sibling_stopped_its_workflow_reads_failed(backend):
    """A worker dies holding two steps of one workflow, the first with an operator's cancel
    request. REQUEUE ends the first as cancelled, which stops the workflow ("fail"): the
    second, lost, is cancelled too (its workflow's progress reads CANCELLED) and never runs
    again, and its own result says so: FAILED, with the cancel, not READY."""
    workflow = await group([step(tasks.record, "x"), step(tasks.record, "y")]).aenqueue()
    x, y = workflow.steps
    assert await _leased(backend, "default", "w1", 2) == [x, y]
    assert await _sync(Ops(backend).cancel, x) == "requested"
    await backend.broker.queue("default").requeue("w1", "lost", LOST)
    progress = await workflow.aprogress()
    assert progress.status == WorkflowStatus.FAILED
    assert progress.steps == ((x, "CANCELLED"), (y, "CANCELLED"))
    assert await _leased(backend, "default", "w2", 5) == []  # y never runs again
    assert (await backend.aget_result(y)).status == TaskResultStatus.FAILED


# --- afinished through a Redis restart that lost the waited mark -----------------------


@pytest.fixture
def snapshot_redis(tmp_path, settings, tasks_prefix):
    """A Redis of the test's own that keeps only what a SAVE wrote (an RDB snapshot, as
    a server restarted from its last snapshot, or a replica promoted before the latest
    writes reached it, holds), TASKS on it."""
    server = RedisServer(tmp_path / "redis").start()
    settings.TASKS = tasks_setting(server.url, tasks_prefix)
    yield server
    server.stop()


async def test_afinished_hears_the_end_after_a_restart_that_lost_its_mark(
    snapshot_redis, run_worker, monkeypatch
):
    """A waiter hears its workflow's end across a Redis restart that lost the mark saying
    the workflow is waited for: the workflow is saved without the mark and Redis restarts
    from that snapshot. Redis tells only the ids in the waited set, and the listener marks
    its ids again once it has connected again, so the waiter reads again (still running)
    and, when the workflow ends, wakes with SUCCEEDED rather than at its timeout."""
    reads: list[str] = []
    real = Workflow.aprogress

    async def counted(self):
        progress = await real(self)
        reads.append(progress.status)
        return progress

    monkeypatch.setattr(Workflow, "aprogress", counted)
    backend = task_backends["default"]
    workflow = await chain(step(tasks.add, 1, 1)).aenqueue()
    client = redis.Redis.from_url(snapshot_redis.url)
    client.save()  # the workflow, not yet the mark
    client.close()
    waiter = asyncio.ensure_future(workflow.afinished(8))
    channel = backend.broker.keys.events("default")
    await listening(snapshot_redis.url, channel)
    await eventually(lambda: reads, what="the waiter's first read")
    snapshot_redis.stop()
    snapshot_redis.start()  # same port: the workflow is back, the mark is not
    try:
        # the listener subscribed again, and the waiter read again: still running
        await eventually(lambda: len(reads) >= 2, timeout=10, what="the read after the restart")
        assert reads[-1] == WorkflowStatus.RUNNING
        async with run_worker():
            progress = await waiter
        assert progress.status == WorkflowStatus.SUCCEEDED
    finally:
        waiter.cancel()
        await backend.broker.close_loop()


# --- run_jobs() and a batch closed inside a job's own transaction -----------------------


@task()
def closes_batch(batch_id: str) -> None:
    """Closes its batch inside its own transaction (so the close waits for the commit)."""
    with transaction.atomic():
        Batch.get(batch_id).close()


@override_settings(TASKS=redis_setting())
class BatchUnderTestCase(JobsTestMixin, TestCase):
    def test_run_jobs_runs_the_callback_a_close_in_a_jobs_transaction_released(self):
        """Under TestCase, run_jobs() sends what jobs left waiting for the test's commit,
        then runs what that released, as it runs the jobs that a job's own transaction
        enqueued: a job that closes its batch inside its own atomic() leaves the close
        waiting (no job in it, so it counts 0 "jobs sent"), and the close releases
        on_complete, which run_jobs runs before it returns."""
        tasks.calls.clear()
        batch = Batch.open(on_complete=step(tasks.record, "complete"))
        batch.enqueue(closes_batch, batch.id)
        self.run_jobs()
        assert ("record", "complete") in tasks.calls
