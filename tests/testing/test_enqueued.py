"""Assertions on what was enqueued, whatever the backend: the enqueued_jobs fixture (the
pytest plugin's), EnqueuedJobs, assert_enqueued. TASKS: the real Redis (root conftest)."""

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from tests.testing import tasks
from worker.testing import EnqueuedJobs, assert_enqueued, assert_nothing_enqueued


def test_the_fixture_records_what_the_redis_backend_sends(enqueued_jobs):
    first = tasks.add.enqueue(1, b=2)
    tasks.add_sync.enqueue(3)
    tasks.add.enqueue_many([((5,), {}), ((6,), {})])

    [found] = enqueued_jobs.assert_enqueued(tasks.add, args=[1, 2], count=1)
    assert found.id == first.id
    enqueued_jobs.assert_enqueued(tasks.add, count=3)
    enqueued_jobs.assert_enqueued(tasks.add_sync, kwargs={"a": 3}, queue_name="reports")
    assert [r.args for r in enqueued_jobs.of(tasks.add)] == [[1], [5], [6]]
    assert len(enqueued_jobs) == 4


async def test_the_fixture_records_async_enqueues(enqueued_jobs):
    await tasks.add.aenqueue(1)
    await tasks.add.aenqueue_many([((2,), {})])

    assert_enqueued(tasks.add, count=2)  # the recorder running: the fixture's
    assert_nothing_enqueued(tasks.add_sync)


@pytest.mark.django_db(transaction=True)
async def test_a_job_waiting_for_a_commit_is_recorded_when_it_is_sent(enqueued_jobs):
    def enqueue_then(fail: bool) -> None:
        with transaction.atomic():
            tasks.add.enqueue(1)
            enqueued_jobs.assert_nothing_enqueued()
            if fail:
                raise RuntimeError

    with pytest.raises(RuntimeError):
        await sync_to_async(enqueue_then)(True)
    enqueued_jobs.assert_nothing_enqueued()
    await sync_to_async(enqueue_then)(False)
    enqueued_jobs.assert_enqueued(tasks.add, count=1)


@pytest.mark.django_db
def test_a_failed_assertion_names_the_jobs_waiting_for_a_commit(enqueued_jobs):
    with transaction.atomic():  # the code's own, inside the test's, which never commits
        tasks.add.enqueue(1)

    with pytest.raises(AssertionError) as failed:
        enqueued_jobs.assert_enqueued(tasks.add, count=1)

    assert str(failed.value) == (
        "expected 1 job(s) of tests.testing.tasks.add, found 0; enqueued:\n  (none)\n"
        "1 job(s) more wait for the commit of a transaction, which under a TestCase never "
        "comes: run_jobs() sends them, as does captureOnCommitCallbacks(execute=True) around "
        "the code that enqueues"
    )


def test_a_recorder_records_while_it_runs_the_innermost_answering():
    tasks.add.enqueue(0)  # before: not recorded
    with EnqueuedJobs() as outer:
        tasks.add.enqueue(1)
        with EnqueuedJobs() as inner:
            tasks.add.enqueue(2)
            assert_enqueued(tasks.add, count=1)  # the inner one's
        tasks.add.enqueue(3)
    tasks.add.enqueue(4)  # after: not recorded

    assert [r.args for r in outer] == [[1], [2], [3]]
    assert [r.args for r in inner] == [[2]]


def test_without_a_recorder_the_redis_backend_says_how_to_get_one():
    with pytest.raises(RuntimeError, match="enqueued_jobs fixture"):
        assert_enqueued(tasks.add)


def test_a_call_that_does_not_fit_the_task_is_compared_as_given(enqueued_jobs):
    tasks.add.enqueue(1)

    with pytest.raises(AssertionError, match=r"args=\[1, 2, 3\]"):
        enqueued_jobs.assert_enqueued(tasks.add, args=[1, 2, 3])
    enqueued_jobs.assert_enqueued(tasks.add, args=(1,), kwargs={"b": 0})
