"""The reference app's jobs run in process, as a project tests its own tasks
(docs/testing.md): TASKS on worker.testing's backends, no worker process. The same jobs
through the real worker and Redis: test_through_worker.py."""

from decimal import Decimal

import pytest
from django.tasks import TaskResultStatus
from django.test import AsyncClient

from jobs.fake_services import PAGE_SIZE, PAGES
from jobs.models import Order, Report
from jobs.tasks import notify_new_order, send_report, sync_orders
from worker.testing import arun_jobs, in_process, run_jobs

ALL = PAGES * PAGE_SIZE


@pytest.fixture
def immediate(settings) -> None:
    settings.TASKS = in_process(settings.TASKS)


@pytest.fixture
def recording(settings) -> None:
    settings.TASKS = in_process(settings.TASKS, "recording")


@pytest.mark.django_db
def test_a_new_order_is_notified_at_once_in_the_tests_transaction(immediate):
    order = Order.objects.create(external_id="N-1", customer="c", total=Decimal(1))

    order.refresh_from_db()
    assert order.notified_at is not None  # notify_new_order ran, and saw the order


@pytest.mark.django_db(transaction=True)
async def test_sync_orders_is_retried_at_once_and_notifies_each_new_order(
    immediate, order_service, enqueued_jobs
):
    # First attempt: page 2 never answers in time and page 3 is a 503.
    order_service.faults[2] = ["stall"]
    order_service.faults[3] = [503]

    result = await sync_orders.aenqueue()

    assert (result.status, result.attempts) == (TaskResultStatus.SUCCESSFUL, 2)
    assert [e.exception_class_path for e in result.errors] == ["httpx.HTTPStatusError"]
    assert result.return_value == {"fetched": ALL, "created": ALL, "updated": 0, "unchanged": 0}
    for notified in enqueued_jobs.assert_enqueued(notify_new_order, count=ALL):
        await notified.arefresh()  # each ran as the job created its order
        assert notified.status == TaskResultStatus.SUCCESSFUL
    assert not await Order.objects.filter(notified_at__isnull=True).aexists()


@pytest.mark.django_db(transaction=True)
async def test_posting_a_report_enqueues_its_delivery_which_run_jobs_delivers(recording, webhook):
    response = await AsyncClient().post("/reports/")

    assert response.status_code == 202
    report = await Report.objects.aget()
    [job] = send_report.get_backend().assert_enqueued(send_report, args=[report.pk], count=1)
    assert webhook.requests == []  # recorded, not run

    assert await arun_jobs() == 1

    await job.arefresh()
    assert job.return_value["delivered"] is True
    assert len(webhook.requests) == 1
    await report.arefresh_from_db()
    assert report.status == Report.Status.DELIVERED


@pytest.mark.django_db
def test_a_missing_report_fails_its_job_at_once(recording, webhook):
    result = send_report.enqueue(12345)

    assert run_jobs() == 1  # PermanentFailure: no retry, though max_attempts=8

    result.refresh()
    assert (result.status, result.attempts) == (TaskResultStatus.FAILED, 1)
    assert result.errors[0].exception_class_path == "jobs.reports.ReportNotFound"
    assert webhook.requests == []
