"""Redis out of memory (maxmemory with noeviction) refuses writes that may grow memory;
the worker's own scripts go on, so jobs already queued still run and their outcomes are
stored, and a live worker keeps its lease."""

import pytest
import redis
from django.tasks import task_backends
from django.utils import timezone

from tests.conftest import out_of_memory
from tests.engine import tasks
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
