"""Flow control on one in-process worker and a real Redis: concurrency and rate limits hold,
per key, a limited task does not hold up the others, limits change at run time, a held job
can be cancelled, RateLimited costs no attempt, a dead worker's slots come back.
(tests/faults/test_flow_control.py checks the limits across worker processes.)"""

import asyncio

import pytest
from django.tasks import TaskResultStatus
from django.tasks.exceptions import InvalidTask

from tests.engine import tasks
from tests.engine.helpers import finished
from worker.exceptions import InvalidArguments
from worker.limits import LimitError, Limits, Rate, parse_rate
from worker.ops.api import Ops
from worker.protocol.records import Outcome, OutcomeKind, error_json
from worker.task import Task


@pytest.fixture
def ops(backend) -> Ops:
    return Ops(backend)


async def held(ops: Ops, count: int, timeout: float = 5.0) -> None:
    """Until ``count`` jobs of the default queue are held by a limit."""
    async with asyncio.timeout(timeout):
        while True:
            if ops.stats("default").held >= count:
                return
            await asyncio.sleep(0.02)


def test_rates_are_read_as_a_count_per_window():
    assert parse_rate("100/s") == Rate(100, 1000)
    assert parse_rate("10/m") == Rate(10, 60_000)
    assert parse_rate(" 500 / h ") == Rate(500, 3_600_000)
    assert parse_rate("10/5s") == Rate(10, 5000)
    assert parse_rate("3/250ms") == Rate(3, 250)
    assert str(Rate(10, 5000)) == "10/5s" and str(Rate(100, 1000)) == "100/s"
    for wrong in ("100", "100/fortnight", "/s", "-1/s", "1/0s", 100):
        with pytest.raises(LimitError, match="rate"):
            parse_rate(wrong)  # type: ignore[arg-type]


async def _job(customer: str) -> None: ...


@pytest.mark.parametrize(
    "options, why",
    [
        ({"rate_limit": "ten/s"}, "is not a rate"),
        ({"rate_limit": "0/s"}, "at least 1 start"),
        ({"concurrency_limit": 0}, "concurrency_limit must be a whole number >= 1"),
        ({"concurrency_limit": True}, "concurrency_limit must be a whole number >= 1"),
        ({"concurrency_limit": 1, "limit_key": "nobody"}, "'nobody' is not an argument"),
        ({"concurrency_limit": 1, "limit_key": 42}, "an argument's name or a callable"),
    ],
)
def test_wrong_limits_are_refused_with_the_reason(options, why, monkeypatch):
    monkeypatch.setattr("worker.task._refused", {})  # `manage.py check` of other tests
    task = Task(priority=0, func=_job, queue_name="default", backend="default", run_after=None,
                takes_context=False, **options)  # fmt: skip
    assert task.refusal is not None and why in task.refusal, task.refusal
    with pytest.raises(InvalidTask, match=why):
        task.enqueue("acme")


def test_a_limit_key_that_is_not_a_json_scalar_is_refused_at_enqueue():
    with pytest.raises(InvalidArguments, match="JSON scalar"):
        tasks.per_customer.enqueue(["a", "list"], 0)


async def test_no_more_run_at_once_than_the_concurrency_limit(run_worker):
    results = [await tasks.limited.aenqueue(f"j{i}", 0.1) for i in range(9)]
    async with run_worker(concurrency=20):
        for result in results:
            assert (await finished(result)).status == TaskResultStatus.SUCCESSFUL
    highest, _ = tasks.flow_record()
    assert highest["limited"] == 3


async def test_no_window_holds_more_starts_than_the_rate(run_worker, ops):
    ops.set_limit(tasks.rated.module_path, rate="4/500ms")
    results = [await tasks.rated.aenqueue(f"j{i}") for i in range(12)]
    async with run_worker(concurrency=20):
        for result in results:
            await finished(result)
    _, starts = tasks.flow_record()
    times = starts["rated"]
    assert len(times) == 12
    most = max(sum(1 for t in times if start <= t < start + 0.5) for start in times)
    assert most == 4, times
    # held jobs start when their permit comes, not a poll later: 12 at 4 per 0.5 s
    assert times[-1] - times[0] < 1.0 + 0.3, times


async def test_each_key_has_its_own_limit(run_worker):
    results = [await tasks.per_customer.aenqueue(c, 0.1) for c in ["acme", "globex"] * 3]
    async with run_worker(concurrency=20):
        for result in results:
            await finished(result)
    highest, _ = tasks.flow_record()
    assert highest == {"customer:acme": 1, "customer:globex": 1}
    # the two keys ran side by side: each key's jobs back to back
    _, starts = tasks.flow_record()
    assert abs(starts["customer:acme"][0] - starts["customer:globex"][0]) < 0.08


async def test_a_limited_task_does_not_hold_up_the_others(run_worker):
    limited = [await tasks.limited.aenqueue(f"slow{i}", 2) for i in range(10)]
    quick = [await tasks.add.aenqueue(i, 1) for i in range(20)]
    async with run_worker(concurrency=20):
        async with asyncio.timeout(1.5):  # long before a limited slot frees
            for result in quick:
                await finished(result)
        await limited[0].arefresh()
        assert limited[0].status == TaskResultStatus.RUNNING


async def test_limits_change_at_run_time_for_the_held_jobs_too(run_worker, ops, backend):
    path = tasks.limited.module_path
    ops.set_limit(path, concurrency=0)  # a pause
    results = [await tasks.limited.aenqueue(f"j{i}", 0) for i in range(4)]
    async with run_worker(concurrency=20, poll=5):
        await held(ops, 4)
        [state] = ops.limits("default", path)
        assert (state.held, state.running, state.limits, state.source, state.waits_for_slot) == (
            4, 0, Limits(concurrency=0), "task", True)  # fmt: skip
        assert "default" in ops.set_limit(path, concurrency=2)
        async with asyncio.timeout(1):  # at once: the gate opens, not at the next poll
            for result in results:
                await finished(result)
        ops.set_limit(path, reset=True)
        [state] = ops.limits("default", path)
        assert (state.limits, state.source, state.held) == (Limits(concurrency=3), "declared", 0)


async def test_a_key_can_get_a_limit_of_its_own(run_worker, ops):
    path = tasks.per_customer.module_path
    ops.set_limit(path, concurrency=2, key="acme")
    results = [await tasks.per_customer.aenqueue(c, 0.2) for c in ["acme"] * 4 + ["globex"] * 2]
    async with run_worker(concurrency=20):
        for result in results:
            await finished(result)
    highest, _ = tasks.flow_record()
    assert highest == {"customer:acme": 2, "customer:globex": 1}
    sources = {s.key: s.source for s in ops.limits("default", path)}
    assert sources == {None: "declared", '"acme"': "key"}  # the task's row, and the key's


def test_limits_of_a_task_without_flow_control_cannot_be_set(ops):
    with pytest.raises(LimitError, match="no flow control"):
        ops.set_limit(tasks.add.module_path, rate="1/s")
    with pytest.raises(LimitError, match="no limit_key"):
        ops.set_limit(tasks.limited.module_path, concurrency=1, key="acme")
    with pytest.raises(LimitError, match="is not a rate"):
        ops.set_limit(tasks.limited.module_path, rate="fast")


async def test_a_held_job_can_be_cancelled(run_worker, ops):
    ops.set_limit(tasks.limited.module_path, concurrency=0)
    result = await tasks.limited.aenqueue("never", 0)
    async with run_worker(concurrency=5):
        await held(ops, 1)
    assert ops.cancel(result.id) == "cancelled"
    assert ops.stats("default").held == 0
    assert ops.limits("default", tasks.limited.module_path)[0].next_start_ms is None


async def test_rate_limited_runs_again_later_without_using_an_attempt(run_worker, ops):
    result = await tasks.throttled.aenqueue("a")  # max_attempts=1
    async with run_worker(concurrency=5):
        await finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == 1  # its first counted attempt
    assert ops.stats("default").counters["deferred"] == 1


async def test_a_dead_workers_slots_come_back_with_its_jobs(backend, run_worker, ops):
    queue = backend.broker.queue("default")
    await queue.flow.publish({tasks.limited.module_path: tasks.limited.limits})  # as a worker does
    results = [await tasks.limited.aenqueue(f"j{i}", 0) for i in range(5)]
    fetched = await queue.fetch(10, "ghost")  # a worker that dies holding its leases
    assert len(fetched.leases) == 3  # the limit's
    [state] = ops.limits("default", tasks.limited.module_path)
    assert (state.running, state.held) == (3, 2)
    assert (await queue.requeue("ghost", "lost", error_json("WorkerLost", "gone")))[:2] == (3, 0)
    [state] = ops.limits("default", tasks.limited.module_path)
    assert state.running == 0
    async with run_worker(concurrency=20):
        for result in results:
            assert (await finished(result)).status == TaskResultStatus.SUCCESSFUL


async def test_held_jobs_are_listed_shown_and_purged_like_queued_ones(run_worker, ops):
    ops.set_limit(tasks.limited.module_path, concurrency=0)
    results = [await tasks.limited.aenqueue(f"j{i}", 0) for i in range(3)]
    async with run_worker(concurrency=5):
        await held(ops, 3)
    assert [r.id for r in ops.jobs("default", "held")] == [r.id for r in results]
    assert ops.place(ops.job(results[0].id)).state == "held"
    assert ops.purge_counts("default")["held"] == 3
    assert ops.purge("default") == 3
    assert ops.stats("default").held == 0
    assert ops.limits("default", tasks.limited.module_path)[0].next_start_ms is None


async def test_slots_a_lease_no_longer_holds_are_mended_from_the_leases(backend, ops):
    # A worker of a version without flow control recovers a dead worker's leases as the
    # old protocol did: the leases go, their slots stay counted.
    queue = backend.broker.queue("default")
    await queue.flow.publish({tasks.limited.module_path: tasks.limited.limits})
    results = [await tasks.limited.aenqueue(f"j{i}", 0) for i in range(4)]
    leases = (await queue.fetch(10, "ghost")).leases
    assert len(leases) == 3
    client = backend.broker.sync
    client.hdel(backend.broker.keys.wip("default", "ghost"), leases[0].id, leases[1].id)
    client.hincrby(queue.running, "tests.engine.tasks.nothing", 2)  # and one gone for good
    assert await queue.flow.recount() == 2
    [state] = ops.limits("default", tasks.limited.module_path)
    assert (state.running, state.held) == (1, 1)
    assert await queue.flow.recount() == 0
    # the held job may start now: one slot of the three is taken
    [lease] = (await queue.fetch(10, "other")).leases
    assert lease.id == results[3].id


async def test_a_late_outcome_of_a_job_a_limit_holds_since_is_not_run_again(backend, ops):
    queue = backend.broker.queue("default")
    path = tasks.limited.module_path
    await queue.flow.publish({path: tasks.limited.limits})
    result = await tasks.limited.aenqueue("j0", 0)
    await queue.fetch(1, "ghost")  # taken for dead while it runs: its job goes back...
    await queue.requeue("ghost", "lost", error_json("WorkerLost", "gone"))
    ops.set_limit(path, concurrency=0)
    assert (await queue.fetch(5, "other")).leases == []  # ... and a limit holds it
    ok = Outcome(result.id, 1, OutcomeKind.SUCCEEDED, b'"j0"')
    await queue.ack("ghost", [ok], 60_000)  # the ghost's outcome stands
    ops.set_limit(path, reset=True)
    assert (await queue.fetch(5, "other")).leases == []
    assert ops.stats("default").held == 0
    await result.arefresh()
    assert result.status == TaskResultStatus.SUCCESSFUL


async def test_a_fetch_that_held_a_thousand_jobs_leaves_a_token_to_go_on(backend):
    queue = backend.broker.queue("default")
    await queue.flow.publish({tasks.limited.module_path: tasks.limited.limits})
    backend.enqueue_many(tasks.limited, [((f"j{i}", 0), {}) for i in range(1010)])
    await tasks.add.aenqueue(1, 2)
    client = backend.broker.sync
    client.delete(queue.notify)  # taken by the wait this fetch follows
    fetched = await queue.fetch(10, "w")
    assert len(fetched.leases) == 3  # the limit's; the add is behind 1,007 held jobs
    assert client.llen(queue.notify) == 1  # the next fetch follows at once, not a poll later
    [lease] = (await queue.fetch(10, "w")).leases
    assert lease.payload and b"tests.engine.tasks.add" in lease.payload


async def test_a_held_job_over_the_byte_budget_is_told_as_held_back(backend, ops):
    queue = backend.broker.queue("default")
    path = tasks.limited.module_path
    await queue.flow.publish({path: tasks.limited.limits})
    ops.set_limit(path, concurrency=0)
    await tasks.limited.aenqueue("x" * 3000, 0)
    assert (await queue.fetch(5, "w")).leases == []
    ops.set_limit(path, reset=True)
    fetched = await queue.fetch(2, "w", byte_budget=100, idle=False)
    assert (fetched.leases, fetched.held_back) == ([], 1)  # the worker waits for its own


async def test_a_job_of_a_group_with_jobs_held_joins_them_as_it_is_enqueued(backend, ops):
    queue = backend.broker.queue("default")
    path = tasks.limited.module_path
    await queue.flow.publish({path: tasks.limited.limits})
    ops.set_limit(path, concurrency=0)
    first = await tasks.limited.aenqueue("first", 0)
    assert (await queue.fetch(5, "w")).leases == []  # held: its group has a gate now
    later = [await tasks.limited.aenqueue("second", 0), tasks.limited.enqueue("third", 0)]
    later += tasks.limited.enqueue_many([(("fourth", 0), {}), (("fifth", 0), {})])
    assert ops.stats("default").ready == 0  # no fetch had to move them
    assert [r.id for r in ops.jobs("default", "held")] == [first.id, *(r.id for r in later)]
