"""The worker, in process, against a real Redis: outcomes, retries, timeouts, dead letters,
threads, signals, priorities."""

import asyncio
import threading
from datetime import timedelta

import pytest
from django.tasks import TaskResultStatus
from django.tasks.signals import task_finished, task_started
from django.utils import timezone

from tests.engine import tasks
from tests.engine.helpers import finished, waiting_for_work


@pytest.fixture(autouse=True)
def clear_calls():
    tasks.calls.clear()


def dead_ids(backend, queue="default") -> list[str]:
    return [m.decode() for m in backend.broker.sync.zrange(backend.broker.keys.dead(queue), 0, -1)]


async def test_success_stores_return_value_timestamps_and_worker(run_worker):
    result = await tasks.add.aenqueue(2, 3)
    async with run_worker() as worker:
        await finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.worker_ids == [worker.id]
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert result.errors == []


async def test_sync_task_runs_in_a_thread_not_on_the_loop(run_worker):
    result = await tasks.where_it_runs.aenqueue()
    async with run_worker():  # on this test's loop, in this thread
        await finished(result)
    ran = result.return_value
    assert ran["thread_id"] != threading.get_ident()
    assert ran["thread"].startswith("job") and ran["loop_here"] is False


async def test_failures_are_retried_with_backoff_then_succeed(run_worker):
    result = await tasks.flaky.aenqueue("a", fail_times=2)
    async with run_worker():
        await finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3
    assert result.attempts == 3
    assert [e.exception_class_path for e in result.errors] == ["builtins.ConnectionError"] * 2
    assert "attempt 1 failed" in result.errors[0].traceback


async def test_out_of_attempts_goes_to_the_dead_letters(run_worker, backend):
    result = await tasks.flaky.aenqueue("b", fail_times=10)
    async with run_worker():
        await finished(result)
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3  # max_attempts
    assert len(result.errors) == 3
    assert dead_ids(backend) == [result.id]
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018


def test_retry_delays_grow_exponentially_with_jitter():
    task = tasks.flaky.using()
    assert [task.retry_delay(n, 0.0) for n in (1, 2, 3)] == [0.025, 0.05, 0.05]  # capped at 0.1
    assert task.retry_delay(1, 0.999) == pytest.approx(0.05, rel=0.01)


async def test_permanent_failure_is_not_retried(run_worker, backend):
    result = await tasks.permanent.aenqueue()
    async with run_worker():
        await finished(result)
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1
    assert result.errors[0].exception_class_path == "worker.exceptions.PermanentFailure"
    assert "404" in result.errors[0].traceback
    assert dead_ids(backend) == [result.id]


async def test_async_task_over_its_timeout_is_cancelled_and_failed(run_worker):
    result = await tasks.slow_async.aenqueue(5)
    async with run_worker():
        await finished(result)
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.TimeoutError"
    assert "ran over its timeout of 0.2s" in result.errors[0].traceback


async def test_sync_task_over_its_timeout_is_reported_timed_out(run_worker):
    result = await tasks.slow_sync.aenqueue(1.0)
    fast = await tasks.add.aenqueue(1, 1)
    async with run_worker():
        await finished(result)
        await finished(fast)
    assert result.status == TaskResultStatus.FAILED
    assert "ran over its timeout" in result.errors[0].traceback
    assert fast.status == TaskResultStatus.SUCCESSFUL


async def test_a_non_json_return_value_fails_the_job_clearly(run_worker):
    result = await tasks.bad_return.aenqueue()
    async with run_worker():
        await finished(result)
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1
    assert "returned a value JSON cannot hold" in result.errors[0].traceback


async def test_context_carries_the_result_and_attempt(run_worker):
    result = await tasks.with_context.aenqueue("t")
    async with run_worker():
        await finished(result)
    assert result.return_value == {"tag": "t", "attempt": 1, "id": result.id}


async def test_started_and_finished_signals_are_sent(run_worker):
    seen = []

    def on_started(sender, task_result, **kwargs):
        seen.append(("started", task_result.id, task_result.status))

    def on_finished(sender, task_result, **kwargs):
        seen.append(("finished", task_result.id, task_result.status))

    task_started.connect(on_started)
    task_finished.connect(on_finished)
    try:
        result = await tasks.add.aenqueue(1, 1)
        async with run_worker():
            await finished(result)
    finally:
        task_started.disconnect(on_started)
        task_finished.disconnect(on_finished)
    assert seen == [
        ("started", result.id, TaskResultStatus.RUNNING),
        ("finished", result.id, "SUCCESSFUL"),
    ]


async def test_higher_priority_runs_first(run_worker):
    low = await tasks.record.using(priority=-10).aenqueue("low")
    normal = await tasks.record.aenqueue("normal")
    high = await tasks.record.using(priority=50).aenqueue("high")
    async with run_worker(concurrency=1):
        for result in (low, normal, high):
            await finished(result)
    assert [label for _, label in tasks.calls] == ["high", "normal", "low"]


async def test_deferred_job_waits_for_its_time(run_worker):
    soon = timezone.now() + timedelta(seconds=0.5)
    result = await tasks.add.using(run_after=soon).aenqueue(1, 1)
    async with run_worker():
        await finished(result)
    assert result.started_at >= soon - timedelta(milliseconds=1)  # stored in whole ms


async def test_idle_worker_starts_a_new_job_without_waiting_for_its_poll(run_worker):
    async with run_worker(poll=30) as worker:
        await waiting_for_work(worker)
        result = await tasks.add.aenqueue(1, 1)
        await finished(result, timeout=2)


async def test_many_jobs_all_run_once(run_worker):
    results = [await tasks.record.aenqueue(str(i)) for i in range(300)]
    async with run_worker(concurrency=20):
        for r in results:
            await finished(r)
    assert sorted(label for _, label in tasks.calls) == sorted(str(i) for i in range(300))


async def test_jobs_on_other_queues_are_left_alone(run_worker):
    other = await tasks.add.using(queue_name="other").aenqueue(1, 1)
    mine = await tasks.add.aenqueue(1, 1)
    async with run_worker(queues=["default"]):
        await finished(mine)
    await other.arefresh()
    assert other.status == TaskResultStatus.READY


async def test_a_deferred_job_survives_worker_restarts(run_worker):
    due = timezone.now() + timedelta(seconds=0.6)
    result = await tasks.add.using(run_after=due).aenqueue(2, 2)
    async with run_worker() as worker:
        await waiting_for_work(worker)  # it knows of the job, and stops before it is due
    await result.arefresh()
    assert result.status == TaskResultStatus.READY
    await asyncio.sleep((due - timezone.now()).total_seconds())  # due while no worker runs
    async with run_worker():
        await finished(result)
    assert result.return_value == 4


async def test_return_values_come_back_exactly(run_worker):
    value = {"name": 'Zoë ✓ \\ " \u0000', "big": 2**53 + 1, "float": 0.1, "list": [None, True]}
    result = await tasks.echo.aenqueue(value)
    async with run_worker():
        await finished(result)
    assert result.return_value == value
    assert result.args == [value]


async def test_a_cancelled_error_raised_by_the_task_is_an_error_not_a_stuck_job(run_worker):
    result = await tasks.cancels_itself.aenqueue()
    async with run_worker():
        await finished(result)
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 2
    assert [e.exception_class_path for e in result.errors] == [
        "asyncio.exceptions.CancelledError"
    ] * 2


async def test_the_last_failed_attempt_finishes_the_job_for_signal_receivers(run_worker):
    seen = []

    def on_finished(sender, task_result, **kwargs):
        seen.append(task_result)

    task_finished.connect(on_finished)
    try:
        result = await tasks.flaky.aenqueue("last", fail_times=5)  # 3 attempts, all fail
        async with run_worker():
            await finished(result)
    finally:
        task_finished.disconnect(on_finished)
    [final] = seen
    assert final.status is TaskResultStatus.FAILED
    assert final.finished_at is not None
    assert final.attempts == 3 and len(final.errors) == 3
    assert final.last_attempted_at > final.started_at  # the third attempt's start


async def test_an_error_reply_while_storing_outcomes_loses_none(run_worker, monkeypatch):
    import redis

    from worker.protocol import Queue

    real_ack, failures = Queue.ack, []

    async def failing_once(self, *args, **kwargs):
        if not failures:
            failures.append(1)
            raise redis.ResponseError("OOM command not allowed when used memory > 'maxmemory'")
        return await real_ack(self, *args, **kwargs)

    monkeypatch.setattr(Queue, "ack", failing_once)
    results = [await tasks.add.aenqueue(i, i) for i in range(5)]
    async with run_worker():
        for r in results:
            await finished(r)
    assert failures and [r.return_value for r in results] == [0, 2, 4, 6, 8]


def test_retry_delays_of_late_attempts_stay_capped():
    from worker.task import Task

    task = Task(func=tasks.add.func, max_attempts=5000, backoff=1.0, backoff_max=30.0)
    assert task.retry_delay(3000, 1.0) == 30.0  # 2.0 ** 2999 would overflow


async def test_a_polled_job_never_goes_back_from_running_to_ready(run_worker, backend):
    # A job's state is read in one step (hash and lease): read in two, an ACK landing
    # between them showed a job that had just finished as READY with no attempt.
    went_back = []

    async def poll(result) -> None:
        seen = []
        while not seen or seen[-1] not in ("SUCCESSFUL", "FAILED"):
            seen.append((await backend.aget_result(result.id)).status)
        if "RUNNING" in seen and "READY" in seen[seen.index("RUNNING") :]:
            went_back.append(seen)

    async with run_worker(concurrency=20, queues=["default"]):
        for _ in range(5):
            results = [await tasks.slow_async.aenqueue(0.02) for _ in range(40)]
            await asyncio.wait_for(asyncio.gather(*(poll(r) for r in results)), 30)
    assert went_back == []


async def test_an_idle_worker_starts_each_job_with_the_fetch_its_wait_carries(
    run_worker, backend, fetches
):
    # One queue, jobs one at a time: the FETCH sent with the BLPOP leases each job, and
    # after a wake-up that left nothing ready the worker waits again without another.
    async with run_worker(queues=["default"]) as worker:
        await waiting_for_work(worker)
        before = len(fetches)
        for i in range(5):
            assert (await finished(await tasks.add.aenqueue(i, 1))).return_value == i + 1
    assert len(fetches) - before <= 1
