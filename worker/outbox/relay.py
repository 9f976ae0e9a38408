"""Moving outbox rows to Redis: right after the commit that wrote them, in the process
that committed (``Relayed``), and from every worker, for the rows that commit could not
move (``Relay``).

Each mover takes its rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` and deletes them in
the same transaction after Redis has stored the jobs, so concurrent movers never send one
row twice. One that dies between Redis's reply and its commit leaves the rows to be sent
again: Redis stores a job id once (the job's record stands while its result is kept), so
the repeat stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, cast

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.tasks.signals import task_enqueued

from worker import pending
from worker.outbox.models import OutboxJob
from worker.protocol.connection import REDIS_DOWN, unreachable
from worker.protocol.enqueue import chunks
from worker.protocol.records import NewJob, now_ms

if TYPE_CHECKING:
    from worker.backend import RedisBackend
    from worker.task import Result

logger = logging.getLogger("worker.outbox")

# Rows a worker moves per transaction: a backlog left by an outage drains in batches
# that each hold their row locks briefly.
BATCH = 500
# Batches a worker moves per turn: a stopping worker waits for one turn at most.
TURN = 10


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
        backend = cast("RedisBackend", self.backend)
        ids = [job.id for _, job in self.prepared]
        try:
            moved = set(_move(backend, ids=ids))
        except Exception as e:  # Redis or the database down, Redis refusing writes...
            logger.warning(
                "%d job(s) kept in the outbox after the commit (%s): a worker sends them "
                "to Redis once it can", len(ids), _why(backend, e),
                exc_info=not isinstance(e, (*REDIS_DOWN, DatabaseError)),
            )  # fmt: skip
            return
        for result, job in self.prepared:  # (a worker may have taken some rows first)
            if job.id in moved:
                task_enqueued.send(type(backend), task_result=result)


def twin(backend: RedisBackend, job: NewJob) -> str | None:
    """For a unique job, the id of the same call's job waiting in the outbox (committed by
    another transaction, not yet moved), within its uniqueness window."""
    if job.unique is None:
        return None
    key, window_ms = job.unique
    found = OutboxJob.objects.using(DEFAULT_DB_ALIAS).filter(
        backend=backend.alias, queue=job.queue, unique_key=key,
        enqueued_ms__gte=now_ms() - window_ms,
    )  # fmt: skip
    return found.values_list("job_id", flat=True).first()


def fields_of(job_id: str) -> dict[bytes, bytes]:
    """The fields of a READY job hash for a job committed and still in the outbox, or {}:
    between its commit and its move, its result is READY, not unknown."""
    try:
        row = OutboxJob.objects.using(DEFAULT_DB_ALIAS).filter(job_id=job_id).first()
    except DatabaseError:  # the database down: what Redis said (no such job) stands
        return {}
    return {} if row is None else _fields(row)


async def afields_of(job_id: str) -> dict[bytes, bytes]:
    try:
        row = await OutboxJob.objects.using(DEFAULT_DB_ALIAS).filter(job_id=job_id).afirst()
    except DatabaseError:
        return {}
    return {} if row is None else _fields(row)


def _fields(row: OutboxJob) -> dict[bytes, bytes]:
    fields = {b"m": bytes(row.body), b"n": str(row.max_attempts).encode()}
    if row.priority:
        fields[b"p"] = str(row.priority).encode()
    if row.run_after_ms is not None:
        fields[b"r"] = str(row.run_after_ms).encode()
    return fields


class Relay:
    """A worker's turn at the outbox: up to TURN batches of its backend's rows moved to
    Redis, a transaction each. In a thread of its own (the ORM is sync), which keeps its
    database connection while it works (a new one each second would cost more than the
    look itself), and drops it after an error."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="outbox")
        self._closed = threading.Event()
        self._failing = False  # said once, until a turn succeeds
        self._missing: bool | None = None  # the table, looked for at the first turn

    def _table_missing(self) -> bool:
        table = OutboxJob._meta.db_table
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            with connection.cursor() as cursor:
                found = table in connection.introspection.table_names(cursor)
        except DatabaseError:
            return False  # the database down: the turns will say so
        if not found:
            logger.warning("OPTIONS['outbox'] is on but the table %s does not exist (run "
                           "`manage.py migrate`): this worker moves no outbox rows until it "
                           "restarts", table)  # fmt: skip
        return not found

    async def __call__(self) -> int:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._turn)

    async def close(self) -> None:
        """Stop between batches; the thread closes its connection and ends."""
        self._closed.set()
        await asyncio.get_running_loop().run_in_executor(self._thread, connections.close_all)
        self._thread.shutdown()

    def _turn(self) -> int:
        moved = 0
        if self._missing is None:
            self._missing = self._table_missing()
        if self._missing:
            return 0
        try:
            for _ in range(TURN):
                if self._closed.is_set():
                    break
                batch = len(_move(self.backend))
                moved += batch
                if batch < BATCH:
                    break
        except Exception as e:
            connections.close_all()  # a broken connection is not used again
            if isinstance(e, REDIS_DOWN):
                raise  # the worker's outage, which it reports once for all its loops
            if not self._failing:  # the database down, Redis refusing writes...
                logger.warning("Cannot move jobs from the outbox (%s); trying again every "
                               "second", _why(self.backend, e))  # fmt: skip
                self._failing = True
            return moved
        if self._failing:
            logger.info("Moving jobs from the outbox again")
            self._failing = False
        return moved


def _move(backend: RedisBackend, ids: list[str] | None = None) -> list[str]:
    """Move rows (those of ``ids``, else the oldest BATCH) to Redis; the ids moved."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        rows = OutboxJob.objects.using(DEFAULT_DB_ALIAS).select_for_update(skip_locked=True)
        rows = rows.filter(backend=backend.alias)
        rows = rows.filter(job_id__in=ids) if ids is not None else rows.order_by("id")[:BATCH]
        taken = list(rows)
        if not taken:
            return []
        _store(backend, [row.job() for row in taken])
        OutboxJob.objects.using(DEFAULT_DB_ALIAS).filter(pk__in=[r.pk for r in taken]).delete()
    return [row.job_id for row in taken]


def _store(backend: RedisBackend, jobs: list[NewJob]) -> None:
    for of_queue in chunks(jobs, lambda job: job):
        queue = backend.broker.queue(of_queue[0].queue)
        # A unique job goes alone: its script answers whether the call is stored already.
        for job in of_queue:
            if job.unique is not None and (first := queue.enqueue(job)) not in (None, job.id):
                logger.info("Job %s not stored: the same call is job %s", job.id, first)
        if plain := [job for job in of_queue if job.unique is None]:
            queue.enqueue_many(plain, lambda n: None)


def _why(backend: RedisBackend, error: Exception) -> str:
    """What stopped a move, in one line without Redis's password."""
    if isinstance(error, REDIS_DOWN):
        return unreachable(backend.url, error)
    return f"{type(error).__name__}: {error}"
