"""Background backfills: a migration enqueues the work, the workers do it, chunk by chunk.

    # shop/tasks.py (an installed app's tasks module, as for tasks)
    from worker.backfill import backfill

    @backfill(Order, chunk_size=1000)
    async def fill_customer_keys(orders):   # the rows of one primary-key range
        async for order in orders:
            ...

    # shop/migrations/0012_order_customer_key.py
    from worker.backfill.operations import RunBackfill

    operations = [AddField(...), RunBackfill("shop.tasks.fill_customer_keys")]

The migration only makes a new run of the backfill and enqueues its plan job (in its
transaction: sent if it commits). A worker splits the table into primary-key ranges of
``chunk_size`` rows, one row each in worker_backfill_backfillchunk, and enqueues a job per
range; each job calls the function on its rows inside one transaction that also marks the
chunk done, so a chunk's writes are made exactly once whatever kills a worker, and a chunk
done is never run again. The migration applied again (after it was reversed) runs the
backfill again. Progress shows in ``jobs status`` and ``manage.py backfill NAME [--wait]``.
Add ``"worker.backfill"`` to INSTALLED_APPS. See docs/async-django.md, which says what the
function must guarantee, and in which order to deploy.
"""

from worker.backfill.registry import Backfill, backfill

__all__ = ["Backfill", "backfill"]
