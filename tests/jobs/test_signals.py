from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from jobs.models import Order
from jobs.tasks import notify_new_order

pytestmark = pytest.mark.django_db(transaction=True)


def new_order(external_id: str = "N-1") -> Order:
    return Order(external_id=external_id, customer="c", total=Decimal("1.00"))


async def test_a_new_order_enqueues_one_notification(enqueued_jobs):
    order = new_order()
    await order.asave()

    enqueued_jobs.assert_enqueued(notify_new_order, args=[order.pk], count=1)
    (result,) = enqueued_jobs
    assert result.task.queue_name == "default"


async def test_an_updated_order_enqueues_nothing(enqueued_jobs):
    order = new_order()
    await order.asave()
    order.status = Order.Status.PAID
    await order.asave()

    enqueued_jobs.assert_enqueued(notify_new_order, args=[order.pk], count=1)


async def test_the_job_is_sent_on_commit_and_not_on_rollback(enqueued_jobs):
    class Rollback(Exception):
        pass

    def create(external_id: str, fail: bool) -> list:
        with transaction.atomic():
            new_order(external_id).save()
            seen_inside = list(enqueued_jobs)
            if fail:
                raise Rollback
        return seen_inside

    with pytest.raises(Rollback):
        await sync_to_async(create)("N-rolled-back", fail=True)
    enqueued_jobs.assert_nothing_enqueued()

    seen_inside = await sync_to_async(create)("N-committed", fail=False)
    assert seen_inside == []
    committed = await Order.objects.aget(external_id="N-committed")
    enqueued_jobs.assert_enqueued(notify_new_order, args=[committed.pk], count=1)


async def test_notify_new_order_stamps_the_order_once():
    order = new_order()
    await order.asave()

    assert await notify_new_order.acall(order.pk) == {"order_id": order.pk, "notified": True}
    assert await notify_new_order.acall(order.pk) == {"order_id": order.pk, "notified": False}
    await order.arefresh_from_db()
    assert order.notified_at is not None


async def test_notify_new_order_of_a_deleted_order_does_nothing():
    assert await notify_new_order.acall(999_999) == {"order_id": 999_999, "notified": False}
