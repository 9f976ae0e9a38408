"""Moving outbox rows to Redis: right after the commit that wrote them, in the process
that committed (``Relayed``), and from every worker, for the rows that commit could not
move (``relay_waiting``).

Each mover takes its rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` and deletes them in
the same transaction after Redis has stored the jobs, so concurrent movers never send one
row twice. One that dies between Redis's reply and its commit leaves the rows to be sent
again: Redis stores a job id once (the job's record stands while its result is kept), so
the repeat stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, cast

from django.db import DEFAULT_DB_ALIAS, close_old_connections, transaction
from django.tasks.signals import task_enqueued

from worker import pending
from worker.outbox.models import OutboxJob
from worker.protocol.connection import REDIS_DOWN, unreachable
from worker.protocol.records import NewJob

if TYPE_CHECKING:
    from worker.backend import RedisBackend
    from worker.task import Result

logger = logging.getLogger("worker.outbox")

# Rows a worker moves per transaction: a backlog left by an outage drains in batches
# that each hold their row locks briefly.
BATCH = 500


def write(backend: RedisBackend, prepared: list[tuple[Result, NewJob]]) -> None:
    """Write the jobs to the outbox in the open transaction, and move them to Redis once
    it commits."""
    OutboxJob.objects.using(DEFAULT_DB_ALIAS).bulk_create(
        [OutboxJob.of(backend.alias, job) for _, job in prepared]
    )
    transaction.on_commit(Relayed(backend, prepared), robust=False)


class Relayed(pending.Send):
    """The on-commit move of one enqueue's rows. It never raises: the transaction has
    committed, its jobs are safe in the outbox, and what could not be moved now the
    workers move later."""

    def __call__(self) -> None:
        if self.sent:
            return
        self.sent = True
        ids = [job.id for _, job in self.prepared]
        backend = cast("RedisBackend", self.backend)
        try:
            moved = _move(backend, ids=ids)
        except Exception as e:  # Redis or the database down, Redis refusing writes...
            logger.warning(
                "%d job(s) kept in the outbox after the commit (%s): a worker sends them "
                "to Redis once it can", len(ids), _why(backend, e),
            )  # fmt: skip
            return
        if moved:
            for result, _ in self.prepared:
                task_enqueued.send(type(self.backend), task_result=result)


def fields_of(job_id: str) -> dict[bytes, bytes]:
    """The fields of a READY job hash for a job committed and still in the outbox, or {}:
    between its commit and its move, its result is READY, not unknown."""
    row = OutboxJob.objects.using(DEFAULT_DB_ALIAS).filter(job_id=job_id).first()
    return {} if row is None else _fields(row)


async def afields_of(job_id: str) -> dict[bytes, bytes]:
    row = await OutboxJob.objects.using(DEFAULT_DB_ALIAS).filter(job_id=job_id).afirst()
    return {} if row is None else _fields(row)


def _fields(row: OutboxJob) -> dict[bytes, bytes]:
    return {b"m": bytes(row.body), b"n": str(row.max_attempts).encode()}


class Relay:
    """A worker's turn at the outbox: every row of its backend moved to Redis, a batch per
    transaction. In a thread of its own (the ORM is sync), whose database connection is
    handled as Django handles a request's."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="outbox")
        self._failing = False  # said once, until a turn succeeds

    async def __call__(self) -> int:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._turn)

    def _turn(self) -> int:
        close_old_connections()
        moved = 0
        try:
            while batch := _move(self.backend):
                moved += batch
                if batch < BATCH:
                    break
        except REDIS_DOWN:
            raise  # the worker's outage, which it reports once for all its loops
        except Exception as e:  # the database down, Redis refusing writes...
            if not self._failing:
                logger.warning("Cannot move jobs from the outbox (%s); trying again every "
                               "second", _why(self.backend, e))  # fmt: skip
                self._failing = True
            return moved
        finally:
            close_old_connections()
        if self._failing:
            logger.info("Moving jobs from the outbox again")
            self._failing = False
        return moved


def _move(backend: RedisBackend, ids: list[str] | None = None) -> int:
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        rows = OutboxJob.objects.using(DEFAULT_DB_ALIAS).select_for_update(skip_locked=True)
        rows = rows.filter(backend=backend.alias)
        rows = rows.filter(job_id__in=ids) if ids is not None else rows.order_by("id")[:BATCH]
        taken = list(rows)
        if not taken:
            return 0
        _store(backend, [row.job() for row in taken])
        OutboxJob.objects.using(DEFAULT_DB_ALIAS).filter(pk__in=[r.pk for r in taken]).delete()
    return len(taken)


def _store(backend: RedisBackend, jobs: list[NewJob]) -> None:
    by_queue: dict[str, list[NewJob]] = defaultdict(list)
    for job in jobs:
        by_queue[job.queue].append(job)
    for name, of_queue in by_queue.items():
        queue = backend.broker.queue(name)
        # A unique job goes alone: its script answers whether the call is stored already.
        for job in of_queue:
            if job.unique is not None:
                queue.enqueue(job)
        if plain := [job for job in of_queue if job.unique is None]:
            queue.enqueue_many(plain, lambda n: None)


def _why(backend: RedisBackend, error: Exception) -> str:
    """What stopped a move, in one line without Redis's password."""
    if isinstance(error, REDIS_DOWN):
        return unreachable(backend.url, error)
    return f"{type(error).__name__}: {error}"
