"""RecordingBackend: jobs kept unrun for assertions, then run by run_jobs / arun_jobs as
a worker would run them."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from django.tasks import TaskResultStatus
from django.utils import timezone

from tests.testing import tasks
from worker.testing import arun_jobs, assert_enqueued, assert_nothing_enqueued, run_jobs

SUCCESSFUL, READY = TaskResultStatus.SUCCESSFUL, TaskResultStatus.READY


def test_jobs_are_kept_unrun_and_readable(recording):
    result = tasks.add.enqueue(1, 2)

    assert result.status == READY and tasks.calls == []
    assert recording.get_result(result.id).status == READY
    assert [r.id for r in recording.results] == [result.id]
    assert recording.results[0].args == [1, 2]


def test_assert_enqueued_matches_calls_as_the_task_binds_them(recording):
    tasks.add.enqueue(1, b=2)
    tasks.add.enqueue(1)
    tasks.add_sync.enqueue(5)

    assert len(recording.assert_enqueued(tasks.add)) == 2
    # args=[1, 2] matches add(1, b=2); args=[1] matches add(1) (b=0, its default) only.
    [one] = recording.assert_enqueued(tasks.add, args=[1, 2])
    assert one.kwargs == {"b": 2}
    recording.assert_enqueued(tasks.add, kwargs={"a": 1, "b": 0}, count=1)
    recording.assert_enqueued("tests.testing.tasks.add_sync", args=(5,), queue_name="reports")
    recording.assert_enqueued(tasks.add, queue_name="reports", count=0)


def test_a_failed_assertion_says_what_was_enqueued(recording):
    tasks.add.enqueue(1, 2)

    with pytest.raises(AssertionError) as failed:
        recording.assert_enqueued(tasks.add, args=[9], count=1)

    message = str(failed.value)
    assert "expected 1 job(s) of tests.testing.tasks.add with args=[9]" in message
    assert "found 0" in message
    assert "tests.testing.tasks.add(1, 2) [queue 'default'" in message
    with pytest.raises(AssertionError, match="expected 2 job"):
        recording.assert_enqueued(tasks.add, count=2)
    with pytest.raises(AssertionError, match="expected 0 job"):
        recording.assert_nothing_enqueued()


def test_the_module_assertions_look_at_the_tasks_in_process_backend(recording):
    assert_nothing_enqueued(tasks.add)
    tasks.add.enqueue(3)

    assert_enqueued(tasks.add, args=[3], count=1)
    with pytest.raises(AssertionError):
        assert_nothing_enqueued()


def test_clear_forgets_every_job(recording):
    tasks.add.enqueue(1)
    recording.clear()

    recording.assert_nothing_enqueued()
    assert run_jobs() == 0


def test_run_jobs_runs_them_by_priority_then_in_order(recording):
    low = [tasks.add.enqueue(i) for i in range(3)]
    high = tasks.add_sync.using(queue_name="default").enqueue(9)  # priority 5

    assert run_jobs() == 4

    assert tasks.calls == [("add_sync", (9, 0)), ("add", (0, 0)), ("add", (1, 0)), ("add", (2, 0))]
    for result in [*low, high]:
        result.refresh()
        assert result.status == SUCCESSFUL
    assert run_jobs() == 0  # nothing left


def test_run_jobs_runs_retries_and_the_jobs_jobs_enqueue(recording):
    flaky = tasks.flaky.enqueue("r", 1)
    tasks.fan_out.enqueue(2)

    assert run_jobs() == 2 + 1 + 2  # flaky twice, fan_out, and the two jobs it enqueued

    flaky.refresh()
    assert (flaky.status, flaky.attempts) == (SUCCESSFUL, 2)
    recording.assert_enqueued(tasks.add, count=2)
    assert all(r.status == SUCCESSFUL for r in recording.results)


def test_run_jobs_runs_deferred_jobs_as_if_their_time_had_come(recording):
    later = tasks.add.using(run_after=timezone.now() + timedelta(days=1)).enqueue(1)
    now = tasks.add.enqueue(2)

    assert run_jobs() == 2

    assert tasks.ran("add") == [(2, 0), (1, 0)]  # what is due first
    later.refresh()
    now.refresh()
    assert later.status == now.status == SUCCESSFUL


def test_run_jobs_of_chosen_queues_only(recording):
    tasks.add.enqueue(1)
    reports = tasks.add_sync.enqueue(2)  # queue "reports"

    assert run_jobs(queues=["reports"]) == 1

    reports.refresh()
    assert reports.status == SUCCESSFUL and tasks.ran("add") == []


def test_run_jobs_stops_jobs_that_never_let_the_queue_empty(recording):
    tasks.forever.enqueue(0)

    with pytest.raises(RuntimeError, match="over 20 attempts"):
        run_jobs(limit=20)


async def test_arun_jobs_runs_them_from_async_code(recording):
    results = [await tasks.add.aenqueue(i, i) for i in range(3)]
    await tasks.fan_out.aenqueue(1)

    assert await arun_jobs() == 3 + 1 + 1

    for result in results:
        await result.arefresh()
    assert [r.return_value for r in results] == [0, 2, 4]


@pytest.mark.django_db(transaction=True)
async def test_jobs_of_a_rolled_back_transaction_are_never_recorded(recording):
    def enqueue(fail: bool) -> None:
        with transaction.atomic():
            tasks.add.enqueue(1)
            recording.assert_nothing_enqueued()  # waits for the commit
            if fail:
                raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        await sync_to_async(enqueue)(True)
    recording.assert_nothing_enqueued()

    await sync_to_async(enqueue)(False)
    recording.assert_enqueued(tasks.add, count=1)
