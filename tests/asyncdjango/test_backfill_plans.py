"""A backfill's plan and progress, in process: chunks made of the rows as they are (however
sparse the keys), once per run whatever plans at once, a run's progress replacing an
earlier run's, and a job a worker cannot run yet (a rolling deploy) put off, not failed."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.tasks import TaskResultStatus
from django.utils import timezone

from jobs.models import Order
from worker.backfill import backfill, tasks
from worker.backfill.models import BackfillChunk, BackfillRun
from worker.backfill.registry import lookup
from worker.ops import Ops
from worker.protocol.backfills import Backfills

FAR = 10**12  # a key far from the others: chunks by key value would be 5 * 10**11 of them


@backfill(Order, chunk_size=2)
def in_pairs(orders) -> int:
    return orders.count()


PAIRS = "tests.asyncdjango.test_backfill_plans.in_pairs"


async def until(condition, timeout: float = 10.0) -> None:
    """Poll ``condition`` (sync: it reads Redis) until it holds."""
    async with asyncio.timeout(timeout):
        while True:
            if await sync_to_async(condition)():
                return
            await asyncio.sleep(0.02)


def orders(*pks: int) -> None:
    Order.objects.bulk_create(
        [Order(pk=pk, external_id=f"O-{pk}", customer="ada", total=1) for pk in pks]
    )


def new_run() -> BackfillRun:
    return BackfillRun.objects.create(name=PAIRS, created_at=timezone.now())


@pytest.mark.django_db
def test_chunks_hold_chunk_size_rows_however_sparse_the_keys():
    orders(1, 2, 3, FAR, FAR + 1)
    run = new_run()
    plan = tasks._plan(lookup(PAIRS), run.pk)
    assert plan.todo == [(1, 2), (3, FAR), (FAR + 1, FAR + 1)]
    assert (plan.chunks, plan.done) == (3, [])
    run.refresh_from_db()
    assert run.planned_at is not None


@pytest.mark.django_db
def test_a_plan_run_again_keeps_the_chunks_it_made():
    orders(1, 2, 3)
    run = new_run()
    first = tasks._plan(lookup(PAIRS), run.pk)
    orders(4, 5)  # the new code's rows: in no chunk (but the last, which ends at 3)
    BackfillChunk.objects.filter(run=run, first=1).update(rows=2, done_at=timezone.now())
    again = tasks._plan(lookup(PAIRS), run.pk)
    assert first.todo == [(1, 2), (3, 3)]
    assert (again.chunks, again.todo, again.done) == (2, [(3, 3)], [(1, 2)])


@pytest.mark.django_db
def test_an_empty_table_makes_a_run_of_no_chunks():
    run = new_run()
    assert tasks._plan(lookup(PAIRS), run.pk) == tasks.Plan(0, [], [])


@pytest.mark.django_db
def test_a_run_gone_or_replaced_plans_nothing():
    orders(1, 2, 3)
    gone = new_run()
    gone.delete()  # its migration was reversed
    earlier, later = new_run(), new_run()
    assert tasks._plan(lookup(PAIRS), gone.pk).startswith("its run is gone")
    assert tasks._plan(lookup(PAIRS), earlier.pk).startswith("a later run")
    assert not BackfillChunk.objects.filter(run=earlier).exists()
    assert tasks._plan(lookup(PAIRS), later.pk).chunks == 2
    assert tasks._run_chunk(lookup(PAIRS), later.pk, 1) == (2, "ran")
    assert tasks._run_chunk(lookup(PAIRS), later.pk, 1) == (2, "done")
    later.delete()
    assert tasks._run_chunk(lookup(PAIRS), later.pk, 3)[0] is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_plans_of_one_run_at_once_make_its_chunks_once():
    orders(*range(1, 2001))
    run = new_run()
    start = threading.Barrier(2)

    def plan() -> tasks.Plan:
        start.wait()
        try:
            return tasks._plan(lookup(PAIRS), run.pk)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(2) as pool:
        plans = list(pool.map(lambda _: plan(), range(2)))
    assert [p.chunks for p in plans] == [1000, 1000]
    assert BackfillChunk.objects.filter(run=run).count() == 1000


async def test_a_backfill_progress_counts_its_latest_run(backend):
    progress = Backfills(backend.broker)
    assert await progress.planned(PAIRS, 1, "jobs.Order", 2)
    assert await progress.chunk_done(PAIRS, 1, 1, 2) == 1
    assert await progress.chunk_done(PAIRS, 1, 1, 2) == 1  # said twice, counted once
    assert await progress.planned(PAIRS, 2, "jobs.Order", 3)  # the migration applied again
    assert await progress.chunk_done(PAIRS, 1, 3, 2) == -1  # the earlier run's job
    assert not await progress.planned(PAIRS, 1, "jobs.Order", 2)
    state = progress.state(PAIRS)
    assert (state.run, state.chunks, state.done, state.rows, state.state) == (
        2, 3, 0, 0, "running"
    )  # fmt: skip
    for first in (1, 3, 5):
        await progress.chunk_done(PAIRS, 2, first, 2)
    assert progress.state(PAIRS).state == "done"
    progress.forget(PAIRS, 1)  # not the run counted: kept
    assert [s.run for s in progress.states()] == [2]
    progress.forget(PAIRS, 2)
    assert progress.states() == [] and progress.state(PAIRS) is None


async def test_a_run_of_no_chunks_is_done_once_planned(backend):
    progress = Backfills(backend.broker)
    assert await progress.planned(PAIRS, 7, "jobs.Order", 0)
    state = progress.state(PAIRS)
    assert (state.run, state.chunks, state.state) == (7, 0, "done")


@pytest.mark.django_db(transaction=True)
async def test_a_worker_that_does_not_know_the_backfill_puts_its_job_off(
    run_worker, backend, monkeypatch, caplog
):
    # A worker still on the code before the backfill's, during a rolling deploy.
    put_off = await tasks.plan_backfill.aenqueue("shop.tasks.coming_soon", 1)
    async with run_worker():
        await until(lambda: Ops(backend).stats("default").counters["deferred"] == 1)
    await put_off.arefresh()
    assert (put_off.status, put_off.attempts) == (TaskResultStatus.READY, 0)  # in a minute
    said = [r.getMessage() for r in caplog.records if put_off.id in r.getMessage()]
    assert said == [
        f"Job {put_off.id} rate limited: runs again in 60.0s (not counted as an attempt): no "
        "backfill 'shop.tasks.coming_soon' is declared in this project (decorate a function "
        "of an installed app's tasks module with @backfill(Model)): this worker runs code "
        "without it (a deploy under way?); the job runs again in 60s, on a worker that has it"
    ]

    # An hour on, it is a failure as any other (retried, then dead-lettered), saying what to do.
    monkeypatch.setattr(tasks, "DEPLOY_WINDOW", 0.0)
    failed = await tasks.plan_backfill.aenqueue("shop.tasks.coming_soon", 1)
    async with run_worker():
        await until(lambda: failed.refresh() or failed.errors)
    assert (failed.status, failed.attempts) == (TaskResultStatus.READY, 1)  # retried later
    assert failed.errors[-1].exception_class_path == "builtins.LookupError"
    assert "deploy the code that declares it to every worker" in failed.errors[-1].traceback
