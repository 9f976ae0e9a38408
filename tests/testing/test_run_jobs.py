"""run_jobs / arun_jobs against the real Redis backend (TASKS from the root conftest: a real
Redis, under a prefix of the test's own): burst workers in process, the jobs in the
caller's thread."""

import gc
import warnings
from datetime import timedelta
from decimal import Decimal

import pytest
from django.tasks import TaskResultStatus
from django.utils import timezone

from jobs.models import Order
from tests.testing import tasks
from worker.testing import arun_jobs, run_jobs

SUCCESSFUL, READY = TaskResultStatus.SUCCESSFUL, TaskResultStatus.READY


def test_run_jobs_runs_every_queued_job_and_the_jobs_they_enqueue(enqueued_jobs):
    results = [tasks.add.enqueue(i, i) for i in range(5)]
    fan_out = tasks.fan_out_sync.enqueue(3)
    other = tasks.add_sync.enqueue(1)  # queue "reports"

    assert run_jobs() == 5 + 1 + 3 + 1

    for result in [*results, fan_out, other]:
        result.refresh()
        assert result.status == SUCCESSFUL, result.errors
    assert [r.return_value for r in results] == [0, 2, 4, 6, 8]
    enqueued_jobs.assert_enqueued(tasks.add, count=5 + 3)
    assert run_jobs() == 0


async def test_arun_jobs_runs_them_from_async_code():
    results = [await tasks.add.aenqueue(i, 1) for i in range(3)]
    await tasks.fan_out.aenqueue(2)

    assert await arun_jobs() == 3 + 1 + 2

    for result in results:
        await result.arefresh()
    assert [r.return_value for r in results] == [1, 2, 3]


@pytest.mark.django_db
def test_jobs_see_what_the_test_wrote_in_its_transaction():
    Order.objects.create(external_id="T-1", customer="c", total=Decimal(1))
    counted = [tasks.count_orders.enqueue(), tasks.count_orders_sync.enqueue()]

    run_jobs()

    for result in counted:
        result.refresh()
    assert [r.return_value for r in counted] == [1, 1]


def test_jobs_due_later_stay_queued_as_with_runworker_burst():
    later = tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1)
    flaky = tasks.flaky.enqueue("f", 1)  # its retry is due 1-2 s later (backoff=2.0)

    assert run_jobs() == 1

    later.refresh()
    flaky.refresh()
    assert (later.status, later.attempts) == (READY, 0)
    assert (flaky.status, flaky.attempts, len(flaky.errors)) == (READY, 1, 1)


def test_run_jobs_of_chosen_queues_only():
    default = tasks.add.enqueue(1)
    reports = tasks.add_sync.enqueue(2)

    assert run_jobs(queues=["reports"]) == 1

    default.refresh()
    reports.refresh()
    assert (default.status, reports.status) == (READY, SUCCESSFUL)


def test_run_jobs_with_more_at_once():
    results = [tasks.add.enqueue(i) for i in range(20)]

    assert run_jobs(concurrency=10) == 20

    for result in results:
        result.refresh()
    assert {r.status for r in results} == {SUCCESSFUL}


def test_run_jobs_stops_jobs_that_never_let_the_queue_empty():
    tasks.forever.enqueue(0)

    with pytest.raises(RuntimeError, match="over 5 attempts"):
        run_jobs(limit=5)


def test_run_jobs_refuses_a_backend_it_cannot_run(settings):
    dummy = {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}
    settings.TASKS = {**settings.TASKS, "dummy": dummy}

    with pytest.raises(TypeError, match="DummyBackend"):
        run_jobs("dummy")
    assert run_jobs() == 0  # every backend: those it can run


def test_run_jobs_from_sync_code_leaves_no_connection_open():
    """Its event loop ends with the call: its Redis connections are closed with it, not
    left to the garbage collector (a ResourceWarning, an error under -W error)."""
    tasks.add.enqueue(1)
    gc.collect()  # what earlier tests left

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run_jobs() == 1
        gc.collect()

    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.mark.django_db
def test_run_jobs_runs_what_jobs_enqueue_inside_their_own_atomic():
    tasks.fan_out_in_atomic.enqueue(2)
    assert run_jobs() == 1 + 2
    assert run_jobs() == 0
