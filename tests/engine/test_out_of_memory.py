"""Redis out of memory (maxmemory with noeviction) refuses writes that may grow memory;
the worker's own scripts go on, so jobs already queued still run and their outcomes are
stored, and a live worker keeps its lease."""

import logging

import pytest
import redis
from django.tasks import task_backends
from django.utils import timezone

from tests.conftest import out_of_memory, tasks_setting
from tests.engine import tasks
from tests.engine.helpers import eventually
from worker.ops.api import Ops
from worker.protocol.records import Outcome, OutcomeKind


async def test_jobs_queued_before_are_fetched_and_acked(private_redis):
    ready = await tasks.add.aenqueue(1, 2)
    due = await tasks.add.using(run_after=timezone.now()).aenqueue(3, 4)  # due at once
    queue = task_backends["default"].broker.queue("default")
    out_of_memory(private_redis)
    with pytest.raises(redis.OutOfMemoryError):
        private_redis.set("probe", "x")
    fetched = await queue.fetch(10, "w1:1:a")
    assert {lease.id for lease in fetched.leases} == {ready.id, due.id}
    outcomes = [Outcome(lease.id, lease.attempt, OutcomeKind.SUCCEEDED, b"0")
                for lease in fetched.leases]  # fmt: skip
    await queue.ack("w1:1:a", outcomes, 60_000)
    for result in (ready, due):
        await result.arefresh()
        assert result.status == "SUCCESSFUL"
    assert await queue.leased("w1:1:a") == set()


async def test_a_heartbeat_that_is_gone_is_not_renewed_but_refused(private_redis):
    broker = task_backends["default"].broker
    assert await broker.heartbeat("w1:1:a", b"{}", 10_000) is True
    out_of_memory(private_redis)
    assert await broker.heartbeat("w1:1:a", b"{}", 10_000) is False  # renewed only
    with pytest.raises(redis.OutOfMemoryError):  # a worker starting now: none to renew
        await broker.heartbeat("w2:2:b", b"{}", 10_000)


@pytest.fixture
def short_lease(private_redis, settings, tasks_prefix) -> None:
    """The private Redis, with a lease of 4 s: a missing heartbeat is believed after 2."""
    url = settings.TASKS["default"]["OPTIONS"]["url"]
    settings.TASKS = tasks_setting(url, tasks_prefix, lease=4.0)


async def test_a_worker_takes_orders_and_hands_on_a_dead_workers_jobs_all_the_same(
    private_redis, short_lease, run_worker, caplog
):
    """Redis refuses the figures a worker writes for the dashboard: said once, and not
    taken for an outage, which would put every heartbeat in doubt for as long (a dead
    worker's jobs would wait for the end of it) and hold up the orders."""
    caplog.set_level(logging.WARNING, logger="worker")
    broker = task_backends["default"].broker
    ops = Ops(task_backends["default"])
    orphan = await tasks.add.aenqueue(1, 1)
    fetched = await broker.queue("default").fetch(1, "gone:1:a")  # by a worker that died
    assert [lease.id for lease in fetched.leases] == [orphan.id]
    for _ in range(2):
        await tasks.sleeper.aenqueue(0.3)  # they end once Redis is full: figures to write
    async with run_worker() as worker:
        await eventually(lambda: len(worker._running) == 2, what="the jobs to start")
        broker.give_order(worker.id, "quiet", 60)
        out_of_memory(private_redis)
        await eventually(lambda: worker.quiet, what="the order taken")
        await eventually(lambda: ops.place(ops.job(orphan.id)).state == "ready", timeout=10,
                         what="the dead worker's job requeued")  # fmt: skip
        await eventually(lambda: worker.processed == 2 and worker._tally.jobs)
    said = [r.getMessage() for r in caplog.records if "refuses writes" in r.getMessage()]
    assert len(said) == 1 and "figures" in said[0]
    assert not [r for r in caplog.records if "retrying with backoff" in r.getMessage()]
