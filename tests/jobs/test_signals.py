from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from jobs.models import Order
from jobs.tasks import notify_new_order

pytestmark = pytest.mark.django_db(transaction=True)


def new_order(external_id: str = "N-1") -> Order:
    return Order(external_id=external_id, customer="c", total=Decimal("1.00"))


def notifications(enqueued) -> list[list]:
    return [r.args for r in enqueued if r.task.name == "notify_new_order"]


async def test_a_new_order_enqueues_one_notification(enqueued):
    order = new_order()
    await order.asave()

    assert notifications(enqueued) == [[order.pk]]
    (result,) = enqueued
    assert result.task.queue_name == "default"


async def test_an_updated_order_enqueues_nothing(enqueued):
    order = new_order()
    await order.asave()
    order.status = Order.Status.PAID
    await order.asave()

    assert notifications(enqueued) == [[order.pk]]


async def test_the_job_is_sent_on_commit_and_not_on_rollback(enqueued):
    class Rollback(Exception):
        pass

    def create(external_id: str, fail: bool) -> list:
        with transaction.atomic():
            new_order(external_id).save()
            seen_inside = list(enqueued)
            if fail:
                raise Rollback
        return seen_inside

    with pytest.raises(Rollback):
        await sync_to_async(create)("N-rolled-back", fail=True)
    assert enqueued == []

    seen_inside = await sync_to_async(create)("N-committed", fail=False)
    assert seen_inside == []
    committed = await Order.objects.aget(external_id="N-committed")
    assert notifications(enqueued) == [[committed.pk]]


async def test_notify_new_order_stamps_the_order_once():
    order = new_order()
    await order.asave()

    assert await notify_new_order.acall(order.pk) == {"order_id": order.pk, "notified": True}
    assert await notify_new_order.acall(order.pk) == {"order_id": order.pk, "notified": False}
    await order.arefresh_from_db()
    assert order.notified_at is not None


async def test_notify_new_order_of_a_deleted_order_does_nothing():
    assert await notify_new_order.acall(999_999) == {"order_id": 999_999, "notified": False}
