"""The reference app's data fixes: ``manage.py notify_orders`` (an AsyncCommand) and the
async migration 0003 that strips customer names (run by a real ``manage.py migrate`` on a
database of its own)."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from jobs.models import Order
from jobs.order_service import _parse_page
from jobs.tasks import notify_new_order
from tests.asyncdjango.helpers import migrate
from tests.engine.helpers import finished
from worker.commands import acall_command

pytestmark = pytest.mark.django_db(transaction=True)


async def test_notify_orders_enqueues_the_orders_never_notified(run_worker, enqueued_jobs):
    hour_ago = timezone.now() - timedelta(hours=1)
    # bulk_create sends no post_save, as loaddata: no job enqueued for these.
    await Order.objects.abulk_create(
        [Order(external_id=f"F-{n}", customer="c", total=1) for n in range(3)]
        + [Order(external_id="DONE", customer="c", total=1, notified_at=hour_ago)]
    )
    await Order.objects.exclude(external_id="F-2").aupdate(created_at=hour_ago)  # F-2 is new

    dry = await acall_command("notify_orders", "--dry-run")
    assert dry == "would enqueue notify_new_order for 2 order(s)"
    assert len(enqueued_jobs) == 0
    assert await acall_command("notify_orders") == "enqueued notify_new_order for 2 order(s)"

    async with run_worker():
        results = [await finished(r) for r in enqueued_jobs.of(notify_new_order)]
    assert [r.status for r in results] == ["SUCCESSFUL"] * 2
    notified = Order.objects.filter(notified_at__isnull=False).values_list("external_id", flat=True)
    assert sorted([e async for e in notified]) == ["DONE", "F-0", "F-1"]


async def test_notify_orders_for_one_customer_finds_rows_written_without_save():
    hour_ago = timezone.now() - timedelta(hours=1)
    await Order.objects.acreate(external_id="SAVED", customer="Ada Lovelace", total=1)
    # bulk_create (as loaddata, or SQL): no Order.save, so no customer_key yet.
    await Order.objects.abulk_create(
        [Order(external_id="LOADED", customer="ADA  lovelace", total=1),
         Order(external_id="OTHER", customer="Bob", total=1)]
    )  # fmt: skip
    await Order.objects.aupdate(created_at=hour_ago)
    found = await acall_command("notify_orders", "--dry-run", "--customer", "ada lovelace")
    assert found == "would enqueue notify_new_order for 2 order(s)"


def test_notify_orders_refuses_a_negative_age():
    with pytest.raises(CommandError, match="--older-than must be >= 0 minutes, not -1"):
        call_command("notify_orders", older_than=-1)


def test_the_sync_strips_customer_names():
    page = _parse_page(
        {"orders": [{"id": 1, "customer": " Ada Lovelace\t", "total": 1, "status": "paid"}],
         "pages": 1}
    )  # fmt: skip
    assert page["orders"][0].customer == "Ada Lovelace"


def test_migration_0003_strips_the_customer_names_already_stored(process_database):
    done = migrate(process_database, "jobs", "0002")
    assert done.returncode == 0, done.stderr
    process_database.rows(
        "INSERT INTO jobs_order (external_id, customer, total, status, created_at, updated_at) "
        "VALUES ('A', ' Ada ', 1, 'paid', '2026-01-01', '2026-01-01'), "
        "('B', 'Bob', 2, 'paid', '2026-01-01', '2026-01-01')"
    )
    done = migrate(process_database, "jobs", "0003")
    assert done.returncode == 0, done.stderr
    rows = process_database.rows("SELECT external_id, customer FROM jobs_order ORDER BY 1")
    assert rows == [("A", "Ada"), ("B", "Bob")]
