"""The shop's backfill (imported by ShopConfig.ready: the test process, which does not
install the app, imports its tasks module and must not import its models)."""

import asyncio

from django.db.models import F

from tests.asyncdjango.shop.models import Item
from worker.backfill import backfill


@backfill(Item, chunk_size=1000)
async def add_one(items) -> int:
    """Not idempotent by nature: a chunk run twice would add two. Slow enough (50 ms a
    chunk, inside its transaction) for a kill to catch chunks in flight."""
    added = await items.aupdate(price=F("price") + 1)
    await asyncio.sleep(0.05)
    return added
