"""OPTIONS ``durability = "replicated"``: enqueues and acks wait for a replica (WAIT), against
a real master and replica. An enqueue no replica confirms raises, saying the job may be
lost; an ack no replica confirms is counted and logged, and the worker goes on."""

from __future__ import annotations

import asyncio
import logging
import os
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
def pair(request, tmp_path) -> Iterator[ReplicatedRedis]:
    """A master and its replica: Redis (the redis-server on PATH), or Valkey when a test
    asks for it (indirect parameter "valkey": the binary VALKEY_SERVER names)."""
    binary = needed_redis_binary()
    if getattr(request, "param", "redis") == "valkey":
        binary = os.environ.get("VALKEY_SERVER", "")
        if not binary:
            pytest.skip("set VALKEY_SERVER to a valkey-server binary (Valkey 8 shows it)")
    started = ReplicatedRedis(tmp_path, binary).start()
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
NOT_CONFIRMED = f"stored it, but no replica confirmed it within {int(TIMEOUT * 1000)} ms"


@pytest.mark.parametrize("how", ENQUEUES)
async def test_an_enqueue_no_replica_confirms_raises_saying_it_may_be_lost(
    replicated, lagging, backend, how
):
    with pytest.raises(BrokerUnavailable) as failed:
        if asyncio.iscoroutine(outcome := ENQUEUES[how]()):
            await outcome
    assert failed.value.maybe_stored
    assert NOT_CONFIRMED in str(failed.value)
    assert len(backend.broker.queue("default").ids("ready", 0, -1)) == 1  # on the master


async def test_a_single_enqueue_no_replica_confirms_says_only_its_key_makes_a_repeat_safe(
    replicated, lagging, backend
):
    with pytest.raises(BrokerUnavailable) as failed:
        await tasks.add.aenqueue(1, 2)
    said = str(failed.value)
    assert "do not enqueue it again, unless with the idempotency_key it was sent with" in said


BULK = {  # each stores 600 jobs (three slices, or chunks, of the bulk enqueue)
    "aenqueue_many": lambda: tasks.add.aenqueue_many([((i, 1), {}) for i in range(600)]),
    "enqueue_many": lambda: asyncio.to_thread(
        tasks.add.enqueue_many, [((i, 1), {}) for i in range(600)]
    ),
}


@pytest.mark.parametrize("how", BULK)
async def test_a_bulk_enqueue_no_replica_confirms_lists_the_jobs_stored_and_says_not_to_resend(
    replicated, lagging, backend, how
):
    with pytest.raises(BrokerUnavailable) as failed:
        await BULK[how]()
    error = failed.value
    assert NOT_CONFIRMED in str(error) and "do not send them again" in str(error)
    assert "idempotency_key" not in str(error)  # a bulk enqueue takes none
    on_master = set(backend.broker.queue("default").ids("ready", 0, -1))
    assert {r.id for r in error.enqueued} == on_master and on_master
    assert error.unconfirmed and {r.id for r in error.unconfirmed} <= on_master


async def test_a_workflow_no_replica_confirms_says_not_to_send_it_again(
    replicated, lagging, backend
):
    with pytest.raises(BrokerUnavailable) as failed:
        await chain(step(tasks.add, 1, 2)).aenqueue()
    assert "do not send them again" in str(failed.value)
    assert "idempotency_key" not in str(failed.value)  # a workflow takes none


def replica_acked(master: redis.Redis) -> int:
    """The replication offset the master's replica last acknowledged."""
    return int(master.info("replication")["slave0"]["offset"])


ON_VALKEY = pytest.mark.xfail(
    strict=True,
    reason="on Valkey a repeat that finds its job stored writes nothing: WAIT confirms at once",
)


@pytest.mark.parametrize("pair", ["redis", pytest.param("valkey", marks=ON_VALKEY)], indirect=True)
async def test_a_repeat_with_the_same_key_is_not_confirmed_while_the_job_is_on_the_master_only(
    pair, replicated, backend
):
    """WAIT waits for the replication offset of the connection's own last write: a repeat
    that finds its job stored already is confirmed only once a replica has the job."""
    task = tasks.add.using(idempotency_key="invoice-7")
    pair.replica.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(BrokerUnavailable) as first:
            task.enqueue(1, 2)
        assert first.value.maybe_stored and NOT_CONFIRMED in str(first.value)
        written = int(replicated.info("replication")["master_repl_offset"])
        try:
            again = await task.aenqueue(1, 2)  # as from another thread or process
        except BrokerUnavailable as e:
            assert e.maybe_stored and NOT_CONFIRMED in str(e)
        else:
            acked = replica_acked(replicated)
            assert acked < written  # the replica has not the job: it is on the master only
            pytest.fail(
                f"the repeat was confirmed (job {again.id}) while the replica had "
                f"acknowledged offset {acked} only, the job written by {written}"
            )
    finally:
        pair.replica.process.send_signal(signal.SIGCONT)


async def test_concurrent_enqueues_no_replica_confirms_each_wait_about_the_timeout(
    replicated, lagging, backend
):
    """Writes that come while a WAIT holds the connection go out together under the next
    one: no caller waits behind the others' timeouts in turn."""
    began = time.monotonic()

    async def enqueue(n: int) -> tuple[float, str]:
        try:
            await tasks.unique_add.aenqueue(n)  # unique: a script call of its own
        except BrokerUnavailable as e:
            return time.monotonic() - began, str(e)
        return time.monotonic() - began, "confirmed"

    told = await asyncio.gather(*(enqueue(n) for n in range(10)))
    assert all(NOT_CONFIRMED in said for _, said in told), told
    slowest = max(seconds for seconds, _ in told)
    assert slowest < 3 * TIMEOUT, f"the slowest of 10 was told after {slowest:.1f} s"


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
