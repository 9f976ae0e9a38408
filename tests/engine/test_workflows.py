"""Workflows (chains, groups, nesting, failure policies, cancel) and batches, run by a real
worker on the real Redis."""

from __future__ import annotations

import pytest
from django.tasks import TaskResultStatus
from django.tasks.exceptions import InvalidTask

from tests.conftest import out_of_memory
from tests.engine import tasks
from tests.engine.helpers import eventually
from worker.exceptions import BrokerUnavailable, InvalidArguments
from worker.workflows import (
    Batch,
    BatchEnded,
    Workflow,
    WorkflowDoesNotExist,
    WorkflowStatus,
    chain,
    group,
    step,
)
from worker.workflows.plan import plan

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_calls():
    tasks.calls.clear()


def ran(name: str) -> list[object]:
    return [arg for n, arg in tasks.calls if n == name]


def error_of(result) -> str:
    return result.errors[-1].exception_class_path


async def test_a_chain_runs_its_steps_in_order_passing_values_on(run_worker, backend):
    flow = chain(
        step(tasks.record, "a"),
        step(tasks.concat, "b").taking_result(),
        step(tasks.concat, "c").taking_result(),
    )
    workflow = await flow.aenqueue()
    async with run_worker(concurrency=4):
        progress = await workflow.afinished(10)
    assert progress.status == WorkflowStatus.SUCCEEDED
    assert (progress.ended, progress.total, progress.failed) == (3, 3, 0)
    assert ran("concat") == ["b", "c"]
    last = await backend.aget_result(workflow.steps[-1])
    assert last.return_value == "abc"


async def test_a_step_waits_for_the_one_before_it(run_worker, backend):
    workflow = await chain(step(tasks.record, "first"), step(tasks.record, "second")).aenqueue()
    second = await backend.aget_result(workflow.steps[1])
    assert second.status == TaskResultStatus.READY
    assert await backend.broker.aclient().llen(backend.broker.keys.ready("default")) == 1
    async with run_worker(concurrency=4):
        await workflow.afinished(10)
    assert ran("record") == ["first", "second"]


async def test_a_groups_callback_runs_once_with_every_value_in_order(run_worker, backend):
    flow = group([step(tasks.add, i, i) for i in range(10)]).then(
        step(tasks.gather).taking_result()
    )
    workflow = await flow.aenqueue()
    async with run_worker(concurrency=8):
        progress = await workflow.afinished(10)
    assert progress.status == WorkflowStatus.SUCCEEDED
    assert ran("gather") == [[2 * i for i in range(10)]]
    callback = await backend.aget_result(workflow.steps[-1])
    assert callback.return_value == {"values": [2 * i for i in range(10)], "failed": None}


async def test_groups_and_chains_nest(run_worker, backend):
    inner_chain = chain(step(tasks.record, "x"), step(tasks.concat, "y").taking_result())
    flow = chain(
        step(tasks.record, "start"),
        group([inner_chain, step(tasks.echo, "z"), group([step(tasks.add, 1, 2)])]),
        step(tasks.gather).taking_result(),
        step(tasks.record, "end"),
    )
    workflow = await flow.aenqueue()
    assert len(workflow.steps) == 7
    async with run_worker(concurrency=4):
        progress = await workflow.afinished(10)
    assert progress.status == WorkflowStatus.SUCCEEDED
    # the group's last steps, in the order written: the chain's end, echo, the inner group
    assert ran("gather") == [["xy", "z", 3]]
    assert ran("record")[0] == "start" and ran("record")[-1] == "end"


async def test_a_failed_step_fails_the_workflow_and_cancels_the_steps_not_started(
    run_worker, backend
):
    flow = chain(
        step(tasks.fails_with, "boom"),
        group([step(tasks.record, "never-1"), step(tasks.record, "never-2")]),
        step(tasks.record, "never-3"),
    )
    workflow = await flow.aenqueue()
    async with run_worker(concurrency=4):
        progress = await workflow.afinished(10)
    assert progress.status == WorkflowStatus.FAILED
    assert (progress.ended, progress.failed) == (4, 4)
    assert [end for _, end in progress.steps] == ["FAILED", *["CANCELLED"] * 3]
    assert ran("record") == []
    for job_id in workflow.steps[1:]:
        result = await backend.aget_result(job_id)
        assert result.status == TaskResultStatus.FAILED
        assert error_of(result) == "worker.exceptions.Cancelled"


async def test_a_failure_asks_the_running_steps_to_stop(run_worker, backend):
    flow = group([step(tasks.sleeper, 30), step(tasks.fails_with, "boom")]).then(
        step(tasks.record, "never")
    )
    workflow = await flow.aenqueue()
    async with run_worker(concurrency=4):
        progress = await workflow.afinished(10)
        sleeper = await backend.aget_result(workflow.steps[0])
        await eventually(lambda: sleeper.refresh() or sleeper.is_finished, what="the stop")
    assert progress.status == WorkflowStatus.FAILED
    assert error_of(sleeper) == "worker.exceptions.Cancelled"
    assert ran("record") == []


async def test_with_continue_the_callback_runs_and_is_told_which_steps_failed(run_worker, backend):
    flow = group(
        [step(tasks.add, 1, 1), step(tasks.fails_with, "boom").on_failure("continue")]
    ).then(step(tasks.gather).taking_result())
    workflow = await flow.aenqueue()
    async with run_worker(concurrency=4):
        progress = await workflow.afinished(10)
    assert progress.status == WorkflowStatus.SUCCEEDED
    assert progress.failed == 1
    callback = await backend.aget_result(workflow.steps[-1])
    assert callback.return_value == {"values": [2, None], "failed": [workflow.steps[1]]}


async def test_continue_set_on_a_chain_applies_to_its_steps(run_worker, backend):
    flow = chain(step(tasks.fails_with, "boom"), step(tasks.record, "after"), on_failure="continue")
    workflow = await flow.aenqueue()
    async with run_worker(concurrency=4):
        progress = await workflow.afinished(10)
    assert progress.status == WorkflowStatus.SUCCEEDED
    assert ran("record") == ["after"]


async def test_cancel_stops_the_running_step_and_the_rest_never_run(run_worker, backend):
    workflow = await chain(step(tasks.sleeper, 30), step(tasks.record, "never")).aenqueue()
    async with run_worker(concurrency=4) as worker:
        await eventually(lambda: worker._running, what="the first step to start")
        assert await _cancel(workflow) == "cancelled"
        progress = await workflow.afinished(10)
        first = await backend.aget_result(workflow.steps[0])
        await eventually(lambda: first.refresh() or first.is_finished, what="the stop")
    assert progress.status == WorkflowStatus.CANCELLED
    assert ran("record") == []
    assert error_of(first) == "worker.exceptions.Cancelled"
    assert await _cancel(workflow) == "CANCELLED"


async def test_a_cancelled_workflows_queued_steps_are_skipped_where_they_wait(run_worker, backend):
    workflow = await group([step(tasks.record, f"never-{i}") for i in range(5)]).aenqueue()
    assert await _cancel(workflow) == "cancelled"
    progress = await workflow.aprogress()
    assert progress.status == WorkflowStatus.CANCELLED and progress.ended == 5
    async with run_worker(concurrency=4) as worker:
        await eventually(lambda: worker._waiter is not None, what="the worker to go idle")
    assert ran("record") == []
    queue = backend.broker.keys.ready("default")
    assert await backend.broker.aclient().llen(queue) == 0


async def test_cancelling_one_step_by_hand_fails_its_workflow(run_worker, backend):
    from worker.ops.api import Ops

    workflow = await chain(step(tasks.record, "a"), step(tasks.record, "b")).aenqueue()
    ops = Ops(backend)
    assert await _sync(ops.cancel, workflow.steps[1]) == "cancelled"
    progress = await workflow.aprogress()
    assert progress.status == WorkflowStatus.FAILED
    async with run_worker(concurrency=4) as worker:
        await eventually(lambda: worker._waiter is not None, what="the worker to go idle")
    assert ran("record") == []


async def test_a_workflow_is_read_back_by_id(backend):
    workflow = await chain(step(tasks.record, "a"), step(tasks.record, "b")).aenqueue()
    again = await Workflow.aget(workflow.id)
    assert again.steps == workflow.steps
    assert again.ends == workflow.ends == (workflow.steps[-1],)
    progress = await again.aprogress()
    assert (progress.status, progress.ended, progress.total) == (WorkflowStatus.RUNNING, 0, 2)
    with pytest.raises(WorkflowDoesNotExist):
        await Workflow.aget("default:" + "0" * 27)


def test_the_sync_api_enqueues_and_waits(backend, run_worker):
    workflow = chain(step(tasks.add, 1, 2), step(tasks.echo, "b")).enqueue()
    progress = workflow.progress()
    assert progress.status == WorkflowStatus.RUNNING


async def test_bad_arguments_of_any_step_enqueue_nothing(backend):
    flow = chain(step(tasks.record, "a"), step(tasks.add, 1))  # add needs two
    with pytest.raises(InvalidArguments, match="add"):
        await flow.aenqueue()
    client = backend.broker.aclient()
    assert [key async for key in client.scan_iter(backend.broker.keys.glob("*"))] == []


async def test_a_step_taking_a_result_must_accept_it(backend):
    with pytest.raises(InvalidArguments, match="echo"):  # echo(value) takes one argument
        await chain(step(tasks.record, "a"), step(tasks.echo, "b").taking_result()).aenqueue()
    with pytest.raises(ValueError, match="no step comes before it"):
        await chain(step(tasks.concat, "b").taking_result()).aenqueue()


async def test_unique_tasks_cannot_be_steps(backend):
    with pytest.raises(InvalidTask, match="unique"):
        await chain(step(tasks.unique_add, 1)).aenqueue()


def test_bad_canvases_are_named():
    with pytest.raises(TypeError, match="step"):
        chain(tasks.record)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_failure"):
        step(tasks.record, "a").on_failure("ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        group([])
    with pytest.raises(TypeError, match="a list"):
        group(step(tasks.record, "a"))  # type: ignore[arg-type]


def test_the_plan_numbers_steps_as_written_with_what_each_takes():
    laid_out = plan(
        chain(
            step(tasks.record, "a"),
            group([step(tasks.concat, "b").taking_result(), step(tasks.record, "c")]),
            step(tasks.gather).taking_result(),
        )
    )
    assert [n.before for n in laid_out.nodes] == [(), (1,), (1,), (2, 3)]
    assert laid_out.after == [(2, 3), (4,), (4,), ()]
    assert [laid_out.takes(i) for i in (1, 2, 3, 4)] == ["", "v 1", "", "l 2 3"]
    assert [laid_out.kept(i) for i in (1, 2, 3, 4)] == [True, True, True, False]
    assert laid_out.ends() == [4]


async def test_enqueue_is_all_or_nothing_when_redis_refuses_writes(private_redis, backend):
    flow = group([step(tasks.record, f"s{i}") for i in range(50)]).then(
        step(tasks.gather).taking_result()
    )
    out_of_memory(private_redis)
    before = private_redis.dbsize()
    with pytest.raises(BrokerUnavailable):
        await flow.aenqueue()
    assert private_redis.dbsize() == before


async def test_a_batch_runs_on_success_and_on_complete_once(run_worker, backend):
    batch = await Batch.aopen(
        on_success=step(tasks.gather).taking_result(), on_complete=step(tasks.record, "complete")
    )
    for i in range(5):
        await batch.aenqueue(tasks.add, i, i)
    await batch.aenqueue(tasks.adds_to_batch, batch.id, 3)  # adds 3 more as it runs
    await batch.aclose()
    async with run_worker(concurrency=4):
        assert (await batch.afinished(10)).status == WorkflowStatus.SUCCEEDED
        await eventually(lambda: len(ran("gather")) == 1 and "complete" in ran("record"),
                         timeout=10, what="the callbacks")  # fmt: skip
        progress = await batch.aprogress()
    assert progress.status == WorkflowStatus.SUCCEEDED
    assert (progress.ended, progress.total) == (9, 9)
    assert ran("gather") == [{"batch": batch.id, "jobs": 9, "failed": []}]
    assert ran("record").count("complete") == 1
    with pytest.raises(BatchEnded):
        await batch.aenqueue(tasks.add, 1, 1)


async def test_a_batch_with_a_failure_runs_on_complete_only(run_worker, backend):
    batch = await Batch.aopen(
        on_success=step(tasks.record, "success"), on_complete=step(tasks.gather).taking_result()
    )
    await batch.aenqueue(tasks.add, 1, 1)
    failing = await batch.aenqueue(tasks.fails_with, "boom")
    await batch.aclose()
    async with run_worker(concurrency=4):
        await eventually(lambda: ran("gather"), timeout=10, what="on_complete")
    assert ran("gather") == [{"batch": batch.id, "jobs": 2, "failed": [failing.id]}]
    assert ran("record") == []
    assert (await batch.aprogress()).status == WorkflowStatus.FAILED


async def test_a_batch_closed_with_its_jobs_done_fires_at_the_close(run_worker, backend):
    batch = await Batch.aopen(on_complete=step(tasks.record, "complete"))
    await batch.aenqueue(tasks.add, 1, 1)
    async with run_worker(concurrency=4) as worker:
        await eventually(lambda: worker._waiter is not None and not worker._running)
        assert ran("record") == []
        await batch.aclose()
        await eventually(lambda: ran("record") == ["complete"], what="on_complete")


async def test_an_unknown_batch_is_named(backend):
    with pytest.raises(WorkflowDoesNotExist):
        await Batch.get("default:" + "0" * 27).aenqueue(tasks.add, 1, 1)


async def _cancel(workflow: Workflow) -> str:
    return await _sync(workflow.cancel)


async def _sync(function, *args):
    from asgiref.sync import sync_to_async

    return await sync_to_async(function, thread_sensitive=False)(*args)


async def test_a_large_workflow_is_written_in_short_calls_and_runs_whole(run_worker, backend):
    flow = group([step(tasks.add, i, 0) for i in range(2500)]).then(
        step(tasks.gather).taking_result()
    )
    workflow = await flow.aenqueue()
    async with run_worker(concurrency=50):
        progress = await workflow.afinished(60)
    assert (progress.status, progress.ended, progress.total) == (
        WorkflowStatus.SUCCEEDED,
        2501,
        2501,
    )
    assert ran("gather") == [list(range(2500))]


async def test_a_large_workflow_whose_enqueue_broke_off_leaves_nothing_that_runs(backend):
    from worker.protocol.workflows import STAGED_MS
    from worker.workflows.start import _prepared

    workflow, flow, _, _ = _prepared(group([step(tasks.record, f"s{i}") for i in range(2500)]))
    workflows = backend.broker.workflows
    client = backend.broker.aclient()
    fast = backend.broker.loop().fast
    for script, keys, args in workflows._calls(flow)[:-1]:  # every call but START's
        await fast.run(script, keys, args)
    staged = await client.hgetall(backend.broker.keys.job(workflow.steps[0]))
    assert staged  # written, but out of sight:
    assert await client.llen(backend.broker.keys.ready("default")) == 0
    assert not await client.exists(backend.broker.keys.steps("default"))
    with pytest.raises(WorkflowDoesNotExist):
        await Workflow.aget(workflow.id)
    ttl = await client.pttl(backend.broker.keys.job(workflow.steps[0]))
    assert 0 < ttl <= STAGED_MS  # and gone after a while
