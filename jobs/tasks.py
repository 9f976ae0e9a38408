"""The application's jobs. Each is safe to run more than once: the engine delivers at least
once and retries failures, so a job may repeat work a previous attempt already did."""

import logging
from typing import Any

from django.db import IntegrityError
from django.db.models import QuerySet
from django.tasks import task
from django.utils import timezone

from jobs import reports
from jobs.models import Order, Report, customer_key
from jobs.order_service import RemoteOrder, fetch_orders
from worker.backfill import backfill
from worker.context import JobContext
from worker.periodic import periodic

logger = logging.getLogger(__name__)


@periodic(every=300)
@task(max_attempts=5, timeout=120, backoff=2.0, backoff_max=60, takes_context=True)
async def sync_orders(context: JobContext) -> dict[str, int]:
    """Mirror the order service's orders into Order rows, creating and updating as needed;
    reports the pages fetched as its progress."""

    def fetched(done: int, pages: int) -> None:
        context.report_progress(done, pages, note="pages fetched")

    remote = await fetch_orders(on_page=fetched)
    summary = await upsert_orders(remote)
    logger.info("synced orders: %s", summary)
    return summary


async def upsert_orders(remote: list[RemoteOrder]) -> dict[str, int]:
    """Create or update an Order per remote order; unchanged orders are not written at all."""
    existing = {
        o.external_id: o
        async for o in Order.objects.filter(external_id__in=[r.external_id for r in remote])
    }
    created = updated = 0
    for order in remote:
        fields = {
            "customer": order.customer,
            "customer_key": customer_key(order.customer),
            "total": order.total,
            "status": order.status,
        }
        current = existing.get(order.external_id)
        if current is None:
            # A plain INSERT rather than update_or_create: the row's post_save enqueues its
            # notify_new_order, and no read-then-write transaction is held, which SQLite
            # would fail at once ("database is locked") while another job writes.
            try:
                await Order.objects.acreate(external_id=order.external_id, **fields)
                created += 1
                continue
            except IntegrityError:
                pass  # a run racing this one created it a moment ago: update it instead
        elif all(getattr(current, name) == value for name, value in fields.items()):
            continue
        # update() skips auto_now, hence updated_at by hand.
        await Order.objects.filter(external_id=order.external_id).aupdate(
            **fields, updated_at=timezone.now()
        )
        updated += 1
    return {
        "fetched": len(remote),
        "created": created,
        "updated": updated,
        "unchanged": len(remote) - created - updated,
    }


@task(queue_name="reports", max_attempts=8, timeout=60, backoff=5.0, backoff_max=300)
async def send_report(report_id: int) -> dict[str, Any]:
    """Compute the report's figures (once) and deliver it to the report webhook (once)."""
    report = await reports.build(report_id)
    if report.delivered_at is not None:
        return {"report_id": report_id, "delivered": False, "already_delivered": True}
    status_code = await reports.deliver(report)
    logger.info("report %s delivered (HTTP %s)", report_id, status_code)
    return {
        "report_id": report_id,
        "delivered": True,
        "status_code": status_code,
        "order_count": report.order_count,
        "total": str(report.total_amount),
    }


@periodic(cron="0 6 * * *", missed="run_once")
@task(queue_name="reports", max_attempts=8, timeout=60, backoff=5.0, backoff_max=300)
async def send_daily_report() -> dict[str, Any]:
    """Every morning, the day's report, built and delivered like any other; a second run
    (a retry, a redelivery) finds the day's report and does not deliver it again."""
    report, _ = await Report.objects.aget_or_create(day=timezone.localdate())
    return await send_report.acall(report.pk)


@task(max_attempts=3, timeout=10, backoff=1.0)
async def notify_new_order(order_id: int) -> dict[str, Any]:
    """Announce a new order (here: log it and stamp notified_at, at most once per order)."""
    stamped = await Order.objects.filter(pk=order_id, notified_at__isnull=True).aupdate(
        notified_at=timezone.now()
    )
    if stamped:
        logger.info("new order %s", order_id)
    # 0 rows: already notified by an earlier run, or the order is gone; nothing to do.
    return {"order_id": order_id, "notified": bool(stamped)}


@backfill(Order, chunk_size=1000)
async def fill_customer_keys(orders: QuerySet[Order]) -> int:
    """Migration 0004's backfill: customer_key for the orders stored before it existed. The
    orders of one chunk, customer by customer: one UPDATE per name, however many orders."""
    unfilled = orders.filter(customer_key__isnull=True)
    filled = 0
    names = unfilled.order_by().values_list("customer", flat=True).distinct()
    for name in [name async for name in names]:
        filled += await unfilled.filter(customer=name).aupdate(customer_key=customer_key(name))
    return filled
