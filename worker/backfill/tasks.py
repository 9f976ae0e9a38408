"""The jobs of a backfill's run: ``plan_backfill`` splits the table into chunks (once per
run) and enqueues a ``run_backfill_chunk`` job for each chunk not done yet; each runs the
backfill's function on its rows in one transaction that also marks the chunk done."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from asgiref.sync import async_to_sync, sync_to_async
from django.db import transaction
from django.db.models import F, Max, Window
from django.db.models.functions import Mod, RowNumber
from django.tasks import TaskContext, task, task_backends
from django.utils import timezone

from worker.backfill.registry import Backfill, lookup
from worker.exceptions import RateLimited
from worker.protocol.backfills import Backfills
from worker.task import Task

# Chunks per INSERT, and chunk jobs per round trip to Redis, as a plan makes them.
BATCH = 1000
# A job naming a backfill this worker's code does not declare is put off, not failed, for
# this long after its enqueue: the time a rolling deploy takes to replace the workers that
# still run the code from before the backfill (docs/async-django.md, "Deploying").
DEPLOY_WINDOW = 3600.0
PUT_OFF = 60.0  # seconds, each time


class NotDeclaredHere(RateLimited):
    """The job names a backfill this worker does not know: a worker of the code before the
    backfill's, during a rolling deploy. The job runs again later (not counted as an
    attempt), on a worker that knows it."""


def _task(**options: Any) -> Callable[[Callable[..., Any]], Task]:
    """Django's @task with the engine's options (max_attempts, ...), which Django's type
    stubs do not know; it makes the engine's Task."""
    return cast("Callable[[Callable[..., Any]], Task]", task(**options))


@dataclass(frozen=True, slots=True)
class Plan:
    chunks: int  # all of the run's
    todo: list[tuple[int, int]]  # (first, last) of the chunks not done
    done: list[tuple[int, int]]  # (first, rows) of those done


@_task(max_attempts=5, backoff=1.0, backoff_max=60, takes_context=True)
async def plan_backfill(context: TaskContext[Any, Any], name: str, run: int) -> dict[str, Any]:
    """Split the table into chunks (once per run: a plan run again finds them) and enqueue
    a job per chunk not done. Rows added to the table after the first plan are not in any
    chunk: the code that adds them must write what the backfill fills in."""
    spec = _declared(context, name)
    plan = await sync_to_async(_plan)(spec, run)
    if isinstance(plan, str):
        return {"run": run, "skipped": plan}
    progress = _progress(context)
    if not await progress.planned(name, run, spec.label, plan.chunks):
        return {"run": run, "skipped": "a later run of this backfill is counted"}
    for first, rows in plan.done:  # counted again where Redis lost them; once, whatever
        await progress.chunk_done(name, run, first, rows)
    chunk = run_backfill_chunk.using(queue_name=spec.queue) if spec.queue else run_backfill_chunk
    for start in range(0, len(plan.todo), BATCH):
        await chunk.aenqueue_many(
            [((name, run, first, last), {}) for first, last in plan.todo[start : start + BATCH]]
        )
    return {"run": run, "chunks": plan.chunks, "enqueued": len(plan.todo)}


def _plan(spec: Backfill, run_id: int) -> Plan | str:
    """The run's chunks, made first if they are not yet; or why there is nothing to do."""
    from worker.backfill.models import BackfillChunk, BackfillRun

    db = spec.database
    with transaction.atomic(using=db):
        # One plan of a run at a time (on SQLite, its write lock): a second plan waits
        # here, then finds the chunks made.
        runs = BackfillRun.objects.using(db).select_for_update()
        run = runs.filter(pk=run_id, name=spec.name).first()
        if run is None:
            return "its run is gone (the migration that started it was reversed)"
        if _superseded(spec, run_id):
            return "a later run of this backfill replaces it"
        if run.planned_at is None:
            made = (BackfillChunk(run=run, first=f, last=last) for f, last in _ranges(spec))
            for batch in _batches(made):
                BackfillChunk.objects.using(db).bulk_create(batch)
            run.planned_at = timezone.now()
            run.save(update_fields=["planned_at"])
    chunks = BackfillChunk.objects.using(db).filter(run_id=run_id)
    todo = list(chunks.filter(done_at__isnull=True).order_by("first").values_list("first", "last"))
    done = [(first, rows or 0) for first, rows in
            chunks.filter(done_at__isnull=False).values_list("first", "rows")]  # fmt: skip
    return Plan(len(todo) + len(done), todo, done)


def _ranges(spec: Backfill) -> Iterator[tuple[int, int]]:
    """(first, last) primary keys of the chunks of the table as it is: every chunk_size-th
    key (in order) starts one, read in one pass over the key's index, so a chunk holds
    chunk_size rows however sparse the keys, and the work grows with the rows, not with the
    keys' span."""
    rows = spec.model._default_manager.using(spec.database)
    starts = (
        rows.annotate(_backfill_row=Window(RowNumber(), order_by=F("pk").asc()))
        .annotate(_backfill_step=Mod(F("_backfill_row") - 1, spec.chunk_size))
        .filter(_backfill_step=0)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    first = None
    for start in starts.iterator(chunk_size=BATCH):
        if first is not None:
            yield first, start - 1
        first = start
    if first is not None:
        # Up to the largest key as it is now (read after the starts): rows added since
        # have keys above the last start, and are in the last chunk.
        yield first, rows.aggregate(last=Max("pk"))["last"]


def _batches[T](items: Iterator[T]) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


@_task(max_attempts=10, backoff=1.0, backoff_max=60, takes_context=True)
async def run_backfill_chunk(
    context: TaskContext[Any, Any], name: str, run: int, first: int, last: int
) -> dict[str, Any]:
    """Run the backfill's function on the rows ``first``..``last``, unless that chunk is
    done already (then count it done in Redis again, if a run before died first), or its
    run is gone or replaced by a later one."""
    spec = _declared(context, name)
    rows, said = await sync_to_async(_run_chunk)(spec, run, first)
    if rows is None:
        return {"run": run, "first": first, "last": last, "skipped": said}
    await _progress(context).chunk_done(name, run, first, rows)
    return {"run": run, "first": first, "last": last, "rows": rows, "already_done": said == "done"}


def _run_chunk(spec: Backfill, run_id: int, first: int) -> tuple[int | None, str]:
    """In the job's thread, on its connection: (rows processed, "done" if it was done
    already, else "ran"), or (None, why it was skipped)."""
    from worker.backfill.models import BackfillChunk

    db = spec.database
    with transaction.atomic(using=db):
        # Locked: a second run of the chunk (a job redelivered while the first still runs)
        # waits here, then finds it done.
        chunks = BackfillChunk.objects.using(db).select_for_update()
        chunk = chunks.filter(run_id=run_id, first=first).first()
        if chunk is None:
            return None, "its run is gone (the migration that started it was reversed)"
        if _superseded(spec, run_id):
            return None, "a later run of this backfill replaces it"
        if chunk.done_at is not None:
            return chunk.rows or 0, "done"
        rows = spec.rows(first, chunk.last)
        if inspect.iscoroutinefunction(spec.function):
            # On the worker's event loop; its ORM calls come back to this thread, into the
            # transaction.
            processed = async_to_sync(spec.function)(rows)
        else:
            processed = spec.function(rows)
        if isinstance(processed, bool) or not isinstance(processed, int):
            processed = rows.count()
        chunk.rows, chunk.done_at = processed, timezone.now()
        chunk.save(update_fields=["rows", "done_at"])
    return processed, "ran"


def _superseded(spec: Backfill, run_id: int) -> bool:
    from worker.backfill.models import BackfillRun

    later = BackfillRun.objects.using(spec.database).filter(name=spec.name, pk__gt=run_id)
    return later.exists()


def _declared(context: TaskContext[Any, Any], name: str) -> Backfill:
    try:
        return lookup(name)
    except LookupError as e:
        enqueued = context.task_result.enqueued_at or timezone.now()
        if (timezone.now() - enqueued).total_seconds() < DEPLOY_WINDOW:
            raise NotDeclaredHere(
                PUT_OFF,
                f"{e}: this worker runs code without it (a deploy under way?); the job runs "
                f"again in {PUT_OFF:g}s, on a worker that has it",
            ) from None
        raise LookupError(
            f"{e}. Still unknown {DEPLOY_WINDOW / 60:g} minutes after the job was enqueued: "
            f"deploy the code that declares it to every worker, then `manage.py backfill "
            f"{name} --start`"
        ) from None


def _progress(context: TaskContext[Any, Any]) -> Backfills:
    """The progress kept in the Redis of the backend the job came from."""
    backend = task_backends[context.task_result.backend]
    return Backfills(backend.broker)  # type: ignore[attr-defined]
