from decimal import Decimal

import httpx
import pytest

from jobs.fake_services import PAGE_SIZE, PAGES, fake_order
from jobs.models import Order
from jobs.order_service import OrderServiceError, RemoteOrder
from jobs.tasks import notify_new_order, sync_orders, upsert_orders
from worker import PermanentFailure

pytestmark = pytest.mark.django_db(transaction=True)

ALL = PAGES * PAGE_SIZE


async def stored() -> list[tuple[str, str, Decimal, str]]:
    return [
        (o.external_id, o.customer, o.total, o.status)
        async for o in Order.objects.order_by("external_id")
    ]


def expected() -> list[tuple[str, str, Decimal, str]]:
    orders = [fake_order(n) for n in range(1, ALL + 1)]
    return [(o["id"], o["customer"], Decimal(o["total"]), o["status"]) for o in orders]


async def test_timeout_then_503_then_success_stores_each_order_once(
    order_service, enqueued_jobs, context
):
    # Attempt 1: page 1 never answers in time. Attempt 2: page 1 fine, page 3 a 503.
    order_service.faults[1] = ["stall"]
    order_service.faults[3] = [503]

    with pytest.raises(httpx.ReadTimeout):
        await sync_orders.acall(context)
    with pytest.raises(httpx.HTTPStatusError, match="503"):
        await sync_orders.acall(context)
    assert await Order.objects.acount() == 0  # nothing is written until every page is in

    summary = await sync_orders.acall(context)

    assert summary == {"fetched": ALL, "created": ALL, "updated": 0, "unchanged": 0}
    assert await stored() == expected()
    notified = sorted(r.args[0] for r in enqueued_jobs.of(notify_new_order))
    assert notified == sorted([pk async for pk in Order.objects.values_list("pk", flat=True)])


async def test_running_twice_stores_nothing_twice(order_service, enqueued_jobs, context):
    await sync_orders.acall(context)
    first = {o.external_id: o.updated_at async for o in Order.objects.all()}

    summary = await sync_orders.acall(context)

    assert summary == {"fetched": ALL, "created": 0, "updated": 0, "unchanged": ALL}
    assert {o.external_id: o.updated_at async for o in Order.objects.all()} == first
    enqueued_jobs.assert_enqueued(notify_new_order, count=ALL)


async def test_changed_orders_are_updated(order_service, context):
    await sync_orders.acall(context)
    changed = order_service.pages[2]["orders"][0]
    changed.update(total="1234.50", status="cancelled")

    summary = await sync_orders.acall(context)

    assert summary == {"fetched": ALL, "created": 0, "updated": 1, "unchanged": ALL - 1}
    order = await Order.objects.aget(external_id=changed["id"])
    assert (order.total, order.status) == (Decimal("1234.50"), "cancelled")


async def test_pages_after_the_first_are_fetched_concurrently(order_service, context):
    for page in range(2, PAGES + 1):
        order_service.faults[page] = ["slow"]

    await sync_orders.acall(context)

    assert order_service.requests[0] == 1
    assert sorted(order_service.requests) == list(range(1, PAGES + 1))
    assert order_service.max_in_flight == PAGES - 1


async def test_a_4xx_is_a_permanent_failure_naming_status_and_url(order_service, settings, context):
    order_service.faults[2] = [404]

    with pytest.raises(OrderServiceError) as caught:
        await sync_orders.acall(context)

    assert isinstance(caught.value, PermanentFailure)
    message = str(caught.value)
    assert "404" in message
    assert f"{settings.ORDER_SERVICE_URL}?page=2" in message
    assert await Order.objects.acount() == 0


async def test_429_is_retried_not_permanent(order_service, context):
    order_service.faults[1] = [429]

    with pytest.raises(httpx.HTTPStatusError) as caught:
        await sync_orders.acall(context)

    assert not isinstance(caught.value, PermanentFailure)
    assert (await sync_orders.acall(context))["created"] == ALL


@pytest.mark.parametrize(
    "page",
    [
        {"orders": [], "pages": 0},
        {"orders": [{"id": "X", "customer": "c", "total": "1.00"}], "pages": 1},
        {"orders": [{"id": "X", "customer": "c", "total": "NaN", "status": "paid"}], "pages": 1},
        {"orders": [{"id": "X", "customer": "c", "total": "1", "status": "lost"}], "pages": 1},
        ["not", "a", "page"],
    ],
)
async def test_a_malformed_page_is_a_permanent_failure(order_service, page, context):
    order_service.pages = {1: page}

    with pytest.raises(OrderServiceError, match="malformed page"):
        await sync_orders.acall(context)


async def test_progress_is_reported_page_by_page(order_service, context):
    await sync_orders.acall(context)

    assert context.reporter == [(n, PAGES, "pages fetched") for n in range(1, PAGES + 1)]


async def test_an_order_created_by_a_racing_run_is_updated_not_duplicated():
    # The second entry meets the row the first created after this run read what existed,
    # just as it would meet one created by a concurrent run.
    first = RemoteOrder("R-1", "c", Decimal("1.00"), "pending")
    racing = RemoteOrder("R-1", "c", Decimal("2.00"), "paid")

    summary = await upsert_orders([first, racing])

    assert summary == {"fetched": 2, "created": 1, "updated": 1, "unchanged": 0}
    assert await stored() == [("R-1", "c", Decimal("2.00"), "paid")]
