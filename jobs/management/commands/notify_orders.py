"""``manage.py notify_orders``: enqueue notify_new_order for the orders never notified."""

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone

from jobs.models import Order, customer_key
from jobs.tasks import notify_new_order
from worker.commands import AsyncCommand

# Jobs per round trip to Redis.
BATCH = 1000


class Command(AsyncCommand):
    help = (
        "Enqueue notify_new_order for every order never notified: orders loaded from "
        "fixtures (their post_save enqueues nothing) or written by hand. A repeat is "
        "harmless: the job stamps an order once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=float, default=10.0, metavar="MINUTES",
            help="only orders created at least this long ago (default 10: a younger "
            "order's own job may still be on its way)",
        )  # fmt: skip
        parser.add_argument(
            "--customer", metavar="NAME",
            help="only this customer's orders (case and spaces aside: Order.customer_key)",
        )  # fmt: skip
        parser.add_argument("--dry-run", action="store_true", help="count them, enqueue nothing")

    async def handle(
        self,
        *args: Any,
        older_than: float,
        customer: str | None,
        dry_run: bool,
        **options: Any,
    ) -> str:
        if not older_than >= 0:
            raise CommandError(f"--older-than must be >= 0 minutes, not {older_than}")
        cutoff = timezone.now() - timedelta(minutes=older_than)
        waiting = Order.objects.filter(notified_at__isnull=True, created_at__lte=cutoff)
        wanted = None if customer is None else customer_key(customer)
        if wanted is not None:
            # A row written without Order.save (loaddata, bulk_create, SQL) has no key yet:
            # its name is compared here, as customer_key compares it (not as SQL's LOWER).
            waiting = waiting.filter(Q(customer_key=wanted) | Q(customer_key__isnull=True))
        found = 0
        batch: list[tuple[tuple[int], dict[str, Any]]] = []
        rows = waiting.order_by("pk").values_list("pk", "customer_key", "customer")
        async for pk, key, name in rows:
            if wanted is not None and (key or customer_key(name)) != wanted:
                continue
            batch.append(((pk,), {}))
            if len(batch) == BATCH:
                found += await _send(batch, dry_run)
        found += await _send(batch, dry_run)
        verb = "would enqueue" if dry_run else "enqueued"
        return f"{verb} notify_new_order for {found} order(s)"


async def _send(batch: list[tuple[tuple[int], dict[str, Any]]], dry_run: bool) -> int:
    """Enqueue the batch (unless ``dry_run``) and empty it; how many it held."""
    if batch and not dry_run:
        await notify_new_order.aenqueue_many(batch)
    sent = len(batch)
    batch.clear()
    return sent
