"""Signal receivers that turn model events into jobs (connected in JobsConfig.ready)."""

from typing import Any

from asgiref.sync import sync_to_async

from jobs.models import Order
from jobs.tasks import notify_new_order


async def order_created(
    sender: type[Order], instance: Order, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    """post_save: enqueue notify_new_order for every new order (not for updates or fixtures)."""
    if not created or raw:
        return
    # Model.save() sends post_save synchronously, which runs async receivers on an event loop
    # away from the saving thread and its transaction. Enqueueing from the saving thread lets
    # the engine see that transaction: the job is sent on commit, and not at all on rollback.
    await sync_to_async(notify_new_order.enqueue)(instance.pk)
