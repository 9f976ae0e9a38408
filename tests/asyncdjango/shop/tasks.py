"""Jobs of the async-Django tests that use the database. The models are imported when a
job runs: the test process, which only enqueues them, does not install this app."""

import asyncio
from decimal import Decimal

from django.tasks import task


@task()
async def write_item(n: int) -> int:
    """One read and one write: an item per call (a repeat adds none)."""
    from tests.asyncdjango.shop.models import Item

    name = f"item-{n}"
    if not await Item.objects.filter(name=name).aexists():
        await Item.objects.acreate(name=name, price=Decimal(n))
    return n


@task(max_attempts=5, backoff=0.1, backoff_max=0.5)
async def hold_connection(seconds: float) -> None:
    """Take a connection and keep it ``seconds``, as a slow job does; the item "holding"
    says it has one."""
    from tests.asyncdjango.shop.models import Item

    await Item.objects.acreate(name="holding")
    await asyncio.sleep(seconds)


@task(max_attempts=5, backoff=0.5, backoff_max=1)
async def count_items() -> int:
    from tests.asyncdjango.shop.models import Item

    return await Item.objects.acount()
