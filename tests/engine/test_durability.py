"""OPTIONS ``durability = "replicated"``: enqueues and acks wait for a replica (WAIT), against
a real master and replica. An enqueue no replica confirms raises, saying the job may be
lost; an ack no replica confirms is counted and logged, and the worker goes on."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Iterator

import pytest
import redis
from django.tasks import TaskResultStatus

from tests.conftest import tasks_setting
from tests.engine import tasks
from tests.engine.helpers import finished
from tests.sentinel import ReplicatedRedis, needed_redis_binary
from worker.exceptions import BrokerUnavailable
from worker.workflows import WorkflowStatus, chain, step

TIMEOUT = 0.3  # OPTIONS durability_timeout, seconds


@pytest.fixture
def pair(tmp_path) -> Iterator[ReplicatedRedis]:
    started = ReplicatedRedis(tmp_path, needed_redis_binary()).start()
    yield started
    started.stop()


@pytest.fixture
def replicated(pair, settings, tasks_prefix) -> redis.Redis:
    """TASKS on the pair's master with durability "replicated"; a client of the master."""
    url = pair.master.url
    settings.TASKS = tasks_setting(url, tasks_prefix, durability="replicated",
                                   durability_timeout=TIMEOUT)  # fmt: skip
    return redis.Redis.from_url(url)


@pytest.fixture
def lagging(pair) -> Iterator[None]:
    """The replica stops answering (SIGSTOP) until the test ends."""
    pair.replica.process.send_signal(signal.SIGSTOP)
    yield
    pair.replica.process.send_signal(signal.SIGCONT)


def waits(client: redis.Redis) -> int:
    """WAIT commands the server has run."""
    return int(client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))


async def test_every_kind_of_enqueue_and_the_ack_wait_for_the_replica(
    replicated, backend, run_worker
):
    before = waits(replicated)
    results = [
        await tasks.add.aenqueue(1, 2),
        tasks.add.enqueue(2, 3),
        await tasks.unique_add.aenqueue(3),
        *await tasks.add.aenqueue_many([((i, i), {}) for i in range(3)]),
        *tasks.add.enqueue_many([((i, 1), {}) for i in range(3)]),
    ]
    flow = await chain(step(tasks.add, 1, 1), step(tasks.add, 2, 2)).aenqueue()
    enqueue_waits = waits(replicated) - before
    assert enqueue_waits >= 6  # one per script call (bulk jobs go in one call each)
    async with run_worker():
        for result in results:
            await finished(result)
        assert (await flow.afinished(timeout=10)).status == WorkflowStatus.SUCCEEDED
    assert waits(replicated) > before + enqueue_waits  # the acks waited too
    assert [r.status for r in results] == [TaskResultStatus.SUCCESSFUL] * len(results)
    assert backend.broker.durability.unconfirmed == 0


ENQUEUES = {
    "aenqueue": lambda: tasks.add.aenqueue(1, 2),
    "enqueue": lambda: tasks.add.enqueue(1, 2),
    "aenqueue_many": lambda: tasks.add.aenqueue_many([((1, 2), {})]),
    "enqueue_many": lambda: tasks.add.enqueue_many([((1, 2), {})]),
    "workflow": lambda: chain(step(tasks.add, 1, 2)).aenqueue(),
}


@pytest.mark.parametrize("how", ENQUEUES)
async def test_an_enqueue_no_replica_confirms_raises_saying_it_may_be_lost(
    replicated, lagging, backend, how
):
    with pytest.raises(BrokerUnavailable) as failed:
        if asyncio.iscoroutine(outcome := ENQUEUES[how]()):
            await outcome
    assert failed.value.maybe_stored
    assert f"stored it, but no replica confirmed it within {int(TIMEOUT * 1000)} ms" in str(
        failed.value
    )
    assert "idempotency_key" in str(failed.value)
    assert len(backend.broker.queue("default").ids("ready", 0, -1)) == 1  # on the master


async def test_an_ack_no_replica_confirms_is_counted_and_logged_once(
    replicated, pair, backend, run_worker, caplog
):
    results = [await tasks.add.aenqueue(i, i) for i in range(3)]
    caplog.set_level(logging.WARNING, "worker")
    pair.replica.process.send_signal(signal.SIGSTOP)
    try:
        async with run_worker(concurrency=1):
            for result in results:
                await finished(result)
    finally:
        pair.replica.process.send_signal(signal.SIGCONT)
    assert [r.return_value for r in results] == [0, 2, 4]  # stored on the master all the same
    assert backend.broker.durability.unconfirmed >= 1
    said = [r.getMessage() for r in caplog.records if "no replica confirmed an ack" in r.message]
    assert len(said) == 1 and "redis://127.0.0.1:" in said[0]

    again = await tasks.add.aenqueue(5, 5)  # the replica answers again
    async with run_worker():
        await finished(again)
    assert any("replicas confirm acks again" in r.message for r in caplog.records)


async def test_a_write_waiting_for_replicas_holds_up_no_other_command(replicated, lagging, backend):
    enqueue = asyncio.create_task(tasks.add.aenqueue(1, 1))
    await asyncio.sleep(0)  # the enqueue goes out, and waits in WAIT
    began = time.monotonic()
    assert await backend.broker.loop().fast.execute("PING") == b"PONG"
    assert time.monotonic() - began < TIMEOUT / 2  # a heartbeat would not wait for WAIT
    with pytest.raises(BrokerUnavailable):
        await enqueue
