from decimal import Decimal

import httpx
import pytest

from jobs.models import Order, Report
from jobs.reports import ReportDeliveryRejected, ReportNotFound, order_figures
from jobs.tasks import send_report
from worker import PermanentFailure

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS = [
    ("A-1", "10.00", "paid"),
    ("A-2", "2.50", "paid"),
    ("A-3", "99.99", "pending"),
    ("A-4", "0.01", "cancelled"),
]


@pytest.fixture
async def orders() -> None:
    for external_id, total, status in ORDERS:
        await Order.objects.acreate(
            external_id=external_id, customer="c", total=Decimal(total), status=status
        )


async def test_figures_aggregate_all_orders_and_each_status(orders):
    assert await order_figures() == {
        "count": 4,
        "total": "112.50",
        "by_status": {
            "cancelled": {"count": 1, "total": "0.01"},
            "paid": {"count": 2, "total": "12.50"},
            "pending": {"count": 1, "total": "99.99"},
        },
    }


async def test_figures_of_no_orders_are_zero():
    assert await order_figures() == {"count": 0, "total": "0.00", "by_status": {}}


async def test_delivers_once_with_the_idempotency_key_even_when_run_twice(orders, webhook):
    report = await Report.objects.acreate()

    first = await send_report.acall(report.pk)
    second = await send_report.acall(report.pk)

    assert first["delivered"] is True and first["order_count"] == 4 and first["total"] == "112.50"
    assert second == {"report_id": report.pk, "delivered": False, "already_delivered": True}
    assert len(webhook.requests) == 1
    key, body = webhook.requests[0]
    assert key == str(report.delivery_id)
    assert body["report_id"] == report.pk and body["total"] == "112.50"
    await report.arefresh_from_db()
    assert report.status == Report.Status.DELIVERED and report.delivered_at is not None


async def test_a_lost_answer_is_resent_with_the_same_key_and_figures(orders, webhook):
    report = await Report.objects.acreate()
    webhook.faults = ["lose"]

    with pytest.raises(httpx.ReadTimeout):
        await send_report.acall(report.pk)
    # Orders arriving between attempts must not change what the retry sends.
    await Order.objects.acreate(external_id="B-1", customer="c", total=Decimal(5), status="paid")
    await send_report.acall(report.pk)

    (key1, body1), (key2, body2) = webhook.requests
    assert key1 == key2 == str(report.delivery_id)
    assert body1 == body2
    assert list(webhook.accepted) == [key1]  # the receiver kept one report


async def test_a_5xx_is_retried(orders, webhook):
    report = await Report.objects.acreate()
    webhook.faults = [502]

    with pytest.raises(httpx.HTTPStatusError) as caught:
        await send_report.acall(report.pk)
    assert not isinstance(caught.value, PermanentFailure)
    assert (await send_report.acall(report.pk))["delivered"] is True
    assert len(webhook.accepted) == 1


async def test_a_4xx_rejects_the_report_for_good(orders, webhook, settings):
    report = await Report.objects.acreate()
    webhook.faults = [422]

    with pytest.raises(ReportDeliveryRejected, match="422") as caught:
        await send_report.acall(report.pk)

    assert settings.REPORT_WEBHOOK_URL in str(caught.value)
    await report.arefresh_from_db()
    assert report.status == Report.Status.REJECTED and "422" in report.error
    assert report.delivered_at is None


async def test_a_missing_report_is_a_permanent_failure(webhook):
    with pytest.raises(ReportNotFound, match="report 12345"):
        await send_report.acall(12345)
    assert webhook.requests == []


async def test_the_daily_report_is_one_report_delivered_once_per_day(orders, webhook):
    from jobs.tasks import send_daily_report

    first = await send_daily_report.acall()
    again = await send_daily_report.acall()  # a redelivery of the same day's job

    assert first["delivered"] is True and first["order_count"] == 4
    assert again["already_delivered"] is True
    assert await Report.objects.acount() == 1
    assert len(webhook.requests) == 1


def test_the_reference_app_declares_its_periodic_jobs():
    from worker.periodic import schedules

    declared = {job.name: job.describe() for job in schedules()}
    assert declared["jobs.tasks.sync_orders"] == "every 300s, missed: skip"
    assert declared["jobs.tasks.send_daily_report"] == "cron 0 6 * * * (UTC), missed: run_once"
