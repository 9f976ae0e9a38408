"""What an operator steers besides jobs (Ops, on a real Redis, with in-process workers):
pausing a queue, quieting or stopping a worker through Redis, pausing and running periodic
schedules; and the history and per-task figures the workers write."""

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from django.tasks import TaskResultStatus
from django.tasks.exceptions import TaskResultDoesNotExist

from tests.engine import tasks
from tests.engine.helpers import eventually, finished, waiting_for_work
from worker import periodic as periodic_module
from worker.ops.api import Ops
from worker.ops.browse import JobFilter
from worker.periodic import Every, Periodic
from worker.protocol import history
from worker.protocol.queue import Queue
from worker.runtime.scheduler import Scheduler
from worker.waiting import afinished


@pytest.fixture(autouse=True)
def clear_calls():
    tasks.calls.clear()


@pytest.fixture
def ops(backend) -> Ops:
    return Ops(backend)


@pytest.fixture
def looks(monkeypatch) -> Counter[str]:
    """Per queue, the FETCHes the workers of this process had answered (those that went
    with a wait included), from now on."""
    answered: Counter[str] = Counter()
    for name in ("fetch", "wait_then_fetch"):
        real = getattr(Queue, name)

        async def counted(self, *args, _real=real, **kwargs):
            found = await _real(self, *args, **kwargs)
            answered[self.name] += 1
            return found

        monkeypatch.setattr(Queue, name, counted)
    return answered


async def looked_twice(looks: Counter[str], queue: str) -> None:
    """Until the workers have had two more FETCHes of ``queue`` answered: the second was
    sent after the first's answer, so it ran in Redis after whatever the caller did."""
    start = looks[queue]
    await eventually(lambda: looks[queue] >= start + 2, what=f"two fetches from {queue}")


async def test_a_paused_queue_starts_no_job_until_resumed(run_worker, ops, looks):
    assert ops.pause("default") is True
    assert ops.pause("default") is False  # paused already
    assert set(ops.paused()) == {"default"}
    async with run_worker(poll=1.0) as worker:
        result = await tasks.add.aenqueue(1, 2)
        other = await tasks.record.using(queue_name="reports").aenqueue("other queue")
        await finished(other)  # another queue runs on
        await looked_twice(looks, "default")  # and the worker looked at the paused one
        await result.arefresh()
        assert result.status == TaskResultStatus.READY
        assert ops.place(ops.job(result.id)).state == "ready"
        began = time.monotonic()
        assert ops.resume("default") is True
        await finished(result, timeout=2)
        assert time.monotonic() - began < 1.0  # woken at once, not at its next poll
        assert result.status == TaskResultStatus.SUCCESSFUL
        assert worker.quiet is False
    assert ops.resume("default") is False
    assert ops.paused() == {}


@pytest.mark.parametrize("queues", [["default"], None], ids=["one queue", "three queues"])
async def test_a_pause_while_a_worker_waits_holds_and_costs_nothing_as_jobs_pour_in(
    run_worker, ops, looks, queues
):
    async with run_worker(poll=1.0, queues=queues) as worker:
        await waiting_for_work(worker)
        ops.pause("default")  # while the worker waits
        held = await tasks.add.aenqueue(1, 2)
        await looked_twice(looks, "default")
        assert ops.place(ops.job(held.id)).state == "ready"
        # Each enqueue leaves a wake-up token: an idle worker that took each one to find
        # the queue paused would fetch thousands of times a second, for nothing.
        start, until = looks["default"], time.monotonic() + 2.0
        while time.monotonic() < until:
            await asyncio.gather(*(tasks.add.aenqueue(1, 2) for _ in range(20)))
        assert looks["default"] - start <= 6  # about one a second (its poll), at most
        assert ops.place(ops.job(held.id)).state == "ready"
        began = time.monotonic()
        ops.resume("default")
        await finished(held, timeout=2)
        assert time.monotonic() - began < 1.0  # woken by the resume, not at its next poll


async def test_pausing_an_unknown_queue_is_a_clear_error(ops):
    with pytest.raises(ValueError, match="no queue 'nope'"):
        ops.pause("nope")


async def test_a_quiet_worker_finishes_its_job_fetches_no_more_and_says_so(run_worker, ops):
    async with run_worker() as worker:
        long = await tasks.sleeper.aenqueue(0.5)
        await eventually(lambda: worker._running)
        ops.quiet(worker.id)
        await eventually(lambda: worker.quiet)
        later = await tasks.add.aenqueue(2, 3)
        await finished(long)
        assert long.status == TaskResultStatus.SUCCESSFUL
        await eventually(lambda: any(w.quiet for w in ops.workers()), what="its heartbeat")
        # Another worker, started now, runs the job: the quiet one, idle and live all along,
        # would have taken it at once had it still fetched.
        async with run_worker() as other:
            await finished(later)
        assert later.status == TaskResultStatus.SUCCESSFUL
        assert later.worker_ids == [other.id]
        assert worker.id in {w.id for w in ops.workers()}
    with pytest.raises(LookupError, match="no live worker"):
        ops.quiet(worker.id)  # gone now


async def test_a_worker_stops_at_an_order_given_through_redis(backend, ops):
    worker = backend.worker(poll=0.2, scheduler=False)
    running = asyncio.create_task(worker.run())
    await eventually(lambda: ops.workers())
    ops.stop_worker(worker.id)
    async with asyncio.timeout(5):
        await running  # run() returns: stopped as on SIGTERM
    assert ops.workers() == []


async def test_the_workers_write_the_history_and_each_tasks_figures(run_worker, ops):
    async with run_worker() as worker:
        done = [await tasks.add.aenqueue(i, i) for i in range(5)]
        failing = await tasks.permanent.using(queue_name="default").aenqueue()
        for result in [*done, failing]:
            await finished(result)
        await eventually(lambda: not worker._tally.jobs, what="the tally written")
    minutes = ops.history("minute")
    assert len(minutes) == 24 * 60
    assert minutes[-1].at == int(time.time() // 60) * 60 or minutes[-2].processed
    assert sum(p.processed for p in minutes) == 6
    assert sum(p.failed for p in minutes) == 1
    hours = ops.history("hour")
    assert len(hours) == 30 * 24 and sum(p.processed for p in hours) == 6
    figures = {f.task: f for f in ops.task_figures("hour")}
    add = figures["tests.engine.tasks.add"]
    assert (add.count, add.failures) == (5, 0)
    assert add.run_mean is not None and 0 <= add.run_mean < 1
    assert add.run_p95 is not None and add.run_p95 >= add.run_mean * 0.8
    assert add.wait_mean is not None and add.wait_p95 is not None
    assert figures["tests.engine.tasks.permanent"].failures == 1
    assert {f.task for f in ops.task_figures("day")} == set(figures)
    with pytest.raises(ValueError, match="window must be"):
        ops.task_figures("week")


async def test_a_burst_shorter_than_a_report_writes_its_history(backend, ops):
    for n in range(5):
        await tasks.add.aenqueue(n, n)
    worker = backend.worker(burst=True, scheduler=False)
    await worker.run()  # in well under a second: its reports come each second
    assert worker.processed == 5
    assert sum(p.processed for p in ops.history("minute")) == 5
    assert {f.task: f.count for f in ops.task_figures("hour")} == {"tests.engine.tasks.add": 5}


def test_a_tally_that_redis_refuses_for_long_stays_bounded():
    tally = history.Tally()
    for ms in range(1, 200):  # as many rows as run time buckets
        tally.add("t", False, 2 ** (ms / 4) / 1000, None)
    rows = len(tally.jobs)
    assert tally.bound(rows) == 0 and len(tally.jobs) == rows  # kept: within bounds
    assert tally.bound(rows - 1) == 199 and tally.jobs == {}  # dropped, and said how many
    assert tally.processed == 199  # (what the heartbeat shows stays)


def test_history_buckets_and_p95():
    tally = history.Tally()
    for ms in [10] * 95 + [1000] * 5:
        tally.add("t", False, ms / 1000, 5)
    written = history.increments(tally.take(), 1_000_000.0)
    [figures] = history.summarised([dict(written[("t5m", 1_000_000 // 300)])])
    assert figures.count == 100
    assert figures.run_p95 is not None and 0.010 <= figures.run_p95 < 0.012  # within a bucket
    assert figures.run_mean == pytest.approx(0.0595, rel=0.01)


@pytest.fixture
def declared(monkeypatch):
    known: dict[str, Periodic] = {}
    monkeypatch.setattr(periodic_module, "_schedules", known)
    return lambda job: known.__setitem__(job.name, job)


async def test_periodic_schedules_pause_resume_and_run_now(backend, ops, declared):
    every = Periodic("add-every-minute", tasks.add, Every(60), (1, 2), {}, "skip")
    declared(every)
    scheduler = Scheduler(backend.broker, jobs=[every])
    now = datetime(2020, 1, 1, 12, 0, 5, tzinfo=UTC)
    assert await scheduler.check(every, now) == 2
    [schedule] = ops.schedules()
    assert schedule.words == "every minute"
    assert schedule.last_fire == datetime(2020, 1, 1, 12, 0, tzinfo=UTC)
    assert schedule.paused_since is None and schedule.next_fire is not None
    [(fired_id, record)] = schedule.runs
    assert record is not None and record.args == [1, 2]

    assert ops.pause_schedule("add-every-minute") is True
    assert await Scheduler(backend.broker, jobs=[every]).check(every, now.replace(minute=1)) == 5
    [paused] = ops.schedules()
    assert paused.paused_since is not None and paused.next_fire is None
    assert [i for i, _ in paused.runs] == [fired_id]  # no job for the paused fire time

    manual = ops.run_schedule("add-every-minute")  # runs even while paused
    assert [i for i, _ in ops.schedules()[0].runs] == [manual.id, fired_id]
    assert ops.resume_schedule("add-every-minute") is True
    assert ops.resume_schedule("add-every-minute") is False
    # Resumed: the next fire time runs; the one passed while paused is not caught up.
    assert await Scheduler(backend.broker, jobs=[every]).check(every, now.replace(minute=2)) == 2
    assert len(ops.schedules()[0].runs) == 3
    with pytest.raises(LookupError, match="no periodic schedule 'nope'"):
        ops.run_schedule("nope")


async def test_delete_removes_waiting_and_finished_jobs_but_not_running_ones(run_worker, ops):
    ready = tasks.add.enqueue(1, 1)
    later = tasks.add.using(run_after=datetime(2100, 1, 1, tzinfo=UTC)).enqueue(2, 2)
    assert ops.delete(ready.id, later.id) == 2
    assert ops.jobs("default", "ready") == [] and ops.jobs("default", "delayed") == []
    async with run_worker() as worker:
        done = await tasks.add.aenqueue(3, 3)
        await finished(done)
        long = await tasks.sleeper.aenqueue(0.3)
        await eventually(lambda: worker._running)
        assert ops.delete(long.id) == 0  # running: left alone
        assert ops.delete(done.id) == 1
        assert ops.browse(JobFilter("succeeded")).records == []
        await finished(long)


async def test_a_bulk_action_skips_no_ready_job_while_workers_take_some_between_batches(
    backend, ops
):
    matching, others = [], []
    for n in range(300):
        high = tasks.add.using(priority=5) if n % 3 == 0 else tasks.add  # two ready lists
        matching.append((await high.aenqueue(n, 0)).id)
        others.append((await tasks.record.aenqueue(f"other-{n}")).id)
    chosen = JobFilter("ready", task="tests.engine.tasks.add")
    queue, cursor, cancelled, taken, steps = backend.broker.queue("default"), None, 0, set(), 0
    while True:
        step = ops.bulk_step("cancel", chosen, cursor, batch=50)
        cancelled += step.done
        steps += 1
        if step.cursor is None:
            break
        cursor = step.cursor
        # Meanwhile a worker takes jobs from the heads of the lists, matching or not.
        taken |= {lease.id for lease in (await queue.fetch(15, "w:1:a")).leases}
    assert ops.browse(chosen, limit=1000).records == []  # none left behind
    assert cancelled == len(set(matching) - taken)
    assert steps < 30  # (600 ids in batches of 50)
    for job_id in set(others) - taken:
        assert ops.place(ops.job(job_id)).state == "ready"  # not matched: left alone


async def test_a_bulk_retry_meets_each_dead_letter_once_while_the_retried_die_again(
    run_worker, ops
):
    async with run_worker():
        doomed = [await tasks.permanent.aenqueue() for _ in range(6)]
        for result in doomed:
            await finished(result)
        await eventually(lambda: ops.dead_count("default") == 6)
        chosen = JobFilter("dead", queue="default", task="tests.engine.tasks.permanent")
        cursor, retried, steps = None, 0, 0
        while steps < 20:
            step = ops.bulk_step("retry", chosen, cursor, batch=2)
            retried += step.done
            steps += 1
            # The letters just sent back run, fail for good and are dead letters again
            # (newer ones) before the next batch.
            await eventually(lambda: ops.dead_count("default") == 6, what="them to die again")
            if step.cursor is None:
                break
            cursor = step.cursor
    assert step.cursor is None and steps == 3
    assert retried == 6  # each once
    records = ops.records([r.id for r in doomed])
    assert sorted(r.attempts for r in records) == [2] * 6
    with pytest.raises(ValueError, match="bad cursor"):
        ops.bulk_step("retry", chosen, "0.1.x.-")


async def test_deleting_a_job_tells_whoever_waits_for_it(ops):
    result = await tasks.add.aenqueue(1, 2)
    waiting = asyncio.create_task(afinished(result, timeout=30))
    waited = ops.broker.keys.waited("default")
    await eventually(lambda: ops.broker.sync.sismember(waited, result.id), what="the wait")
    assert ops.delete(result.id) == 1
    async with asyncio.timeout(5):  # not the wait's 30 s
        with pytest.raises(TaskResultDoesNotExist):
            await waiting


async def test_browsing_pages_with_a_cursor_and_filters(ops):
    results = [tasks.echo.enqueue({"n": n, "tag": "odd" if n % 2 else "even"}) for n in range(7)]
    first = ops.browse(JobFilter("ready", queue="default"), limit=3)
    assert [r.id for r in first.records] == [r.id for r in results[:3]]
    assert first.total == 7 and first.cursor is not None
    second = ops.browse(JobFilter("ready", queue="default"), cursor=first.cursor, limit=3)
    assert [r.id for r in second.records] == [r.id for r in results[3:6]]
    last = ops.browse(JobFilter("ready"), cursor=second.cursor, limit=3)
    assert [r.id for r in last.records] == [results[6].id] and last.cursor is None
    odd = ops.browse(JobFilter("ready", text="ODD"), limit=10)
    assert [r.id for r in odd.records] == [r.id for r in results[1::2]]
    # A filter that matches little reads at most its budget, and says where to go on.
    narrow = ops.browse(JobFilter("ready", text=results[6].id[-8:]), limit=10, budget=4)
    assert narrow.records == [] and narrow.examined == 4 and narrow.cursor is not None
    rest = ops.browse(JobFilter("ready", text=results[6].id[-8:]), cursor=narrow.cursor)
    assert [r.id for r in rest.records] == [results[6].id]
    with pytest.raises(ValueError, match="no state 'lost'"):
        JobFilter("lost")
    with pytest.raises(ValueError, match="bad cursor"):
        ops.browse(JobFilter("ready"), cursor="x")


async def test_a_bulk_action_on_everything_a_filter_matches_goes_in_batches(run_worker, ops):
    async with run_worker():
        doomed = [await tasks.permanent.aenqueue() for _ in range(5)]
        kept = await tasks.fails_then_waits.using(queue_name="default").aenqueue()
        for result in doomed:
            await finished(result)
        await eventually(lambda: ops.dead_count("default") == 5)
    # No worker runs now: the jobs sent back stay ready to be seen.
    assert kept.id not in {r.id for r in ops.browse(JobFilter("dead")).records}
    chosen = JobFilter("dead", task="tests.engine.tasks.permanent")
    cursor, retried, steps = None, 0, 0
    while True:
        step = ops.bulk_step("retry", chosen, cursor, batch=2)
        retried += step.done
        steps += 1
        if step.cursor is None:
            break
        cursor = step.cursor
    assert retried == 5 and steps >= 3
    assert ops.dead_count("default") == 0
    assert len(ops.browse(JobFilter("ready", task="tests.engine.tasks.permanent")).records) == 5
    with pytest.raises(ValueError, match="cannot retry ready jobs"):
        ops.bulk_step("retry", JobFilter("ready"))
    assert ops.act("cancel", [r.id for r in doomed]) == 5
    cancelled = ops.browse(JobFilter("cancelled"))
    assert {r.id for r in cancelled.records} == {r.id for r in doomed}
    assert ops.act("delete", [r.id for r in doomed]) == 5
    assert ops.browse(JobFilter("cancelled")).records == []
