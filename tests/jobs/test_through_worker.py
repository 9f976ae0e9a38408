"""The jobs run by the engine's real worker (in-process, on a real Redis), not called directly."""

import pytest
from django.db import connection
from django.test import AsyncClient

from jobs.fake_services import PAGE_SIZE, PAGES
from jobs.models import Order
from jobs.tasks import notify_new_order, sync_orders
from tests.engine.helpers import finished

pytestmark = pytest.mark.django_db(transaction=True)


def concurrency() -> int:
    # The SQLite test database lives in memory, shared between the connections of the threads
    # jobs run in, and there a write locks whole tables at once (no busy timeout to wait on):
    # jobs running side by side fail each other. One at a time there; PostgreSQL copes.
    return 1 if connection.vendor == "sqlite" else 10


async def test_sync_orders_fails_its_first_attempt_then_succeeds_storing_orders_once(
    order_service, run_worker, enqueued_jobs
):
    # First attempt: page 2 never answers in time and page 3 is a 503, concurrently.
    order_service.faults[2] = ["stall"]
    order_service.faults[3] = [503]
    result = await sync_orders.aenqueue()

    async with run_worker(concurrency=concurrency()):
        result = await finished(result, timeout=20)
        # Each new order's post_save enqueued notify_new_order from inside the job.
        notifications = enqueued_jobs.of(notify_new_order)
        notifications = [await finished(r, timeout=20) for r in notifications]

    assert result.status == "SUCCESSFUL", result.errors
    assert result.attempts == 2
    assert [e.exception_class_path for e in result.errors] == ["httpx.HTTPStatusError"]
    assert "503" in result.errors[0].traceback
    total = PAGES * PAGE_SIZE
    assert result.return_value == {"fetched": total, "created": total, "updated": 0, "unchanged": 0}
    assert await Order.objects.acount() == total
    assert {r.status for r in notifications} == {"SUCCESSFUL"}
    assert len(notifications) == total
    assert not await Order.objects.filter(notified_at__isnull=True).aexists()


async def test_a_4xx_fails_sync_orders_at_once(order_service, run_worker):
    order_service.faults[1] = [404]
    result = await sync_orders.aenqueue()

    async with run_worker(concurrency=concurrency()):
        result = await finished(result, timeout=20)

    assert result.status == "FAILED" and result.attempts == 1
    assert [e.exception_class_path for e in result.errors] == [
        "jobs.order_service.OrderServiceError"
    ]
    assert "404" in result.errors[0].traceback


async def test_a_report_of_freshly_synced_orders_runs_as_a_workflow(
    order_service, webhook, run_worker
):
    client = AsyncClient()
    response = await client.post("/reports/?sync=1")
    assert response.status_code == 202
    body = response.json()
    async with run_worker(concurrency=concurrency()):
        workflow = (await client.get(f"{body['status_url']}?wait=20")).json()
    assert workflow["status"] == "SUCCEEDED", workflow
    assert (workflow["ended"], workflow["total"]) == (2, 2)
    report = (await client.get(body["report_url"])).json()
    # built after the sync step had stored every order
    assert report["order_count"] == PAGES * PAGE_SIZE
    assert report["delivered_at"] is not None
