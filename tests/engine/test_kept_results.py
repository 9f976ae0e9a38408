"""What a kept success costs Redis and how it reads back: its hash names the worker that ran
it by a number (lua/named.lua), not by the worker's id, so that its size does not grow with
the host name; every reader still gets the id in full, for results stored either way."""

from __future__ import annotations

import hashlib

from django.tasks import TaskResultStatus

from tests.engine import tasks
from worker.ops.api import Ops
from worker.protocol.records import Outcome, OutcomeKind, error_json

DAY_MS = 86_400_000
LONG_ID = "reports-worker-5d8f7c9b6-x7k2p:4242:abcdef"  # a Kubernetes pod's host name


async def run_once(queue, worker_id: str, keep_ms: int = DAY_MS, kind=OutcomeKind.SUCCEEDED):
    """Lease the next ready job as ``worker_id`` and store its outcome; its id."""
    [lease] = (await queue.fetch(1, worker_id)).leases
    value = b"3" if kind == OutcomeKind.SUCCEEDED else error_json("builtins.ValueError", "no")
    await queue.ack(worker_id, [Outcome(lease.id, lease.attempt, kind, value)], keep_ms)
    return lease.id


def number_key(queue, worker_id: str) -> str:
    """The key that holds ``worker_id`` for the results naming it by number."""
    number = int(hashlib.sha1(worker_id.encode()).hexdigest()[:4], 16) % 32768
    return f"{queue.job_prefix}wid:{number}"


async def test_every_reader_gets_the_worker_id_of_a_kept_result_in_full(backend):
    queue = backend.broker.queue("default")
    job = await tasks.add.aenqueue(1, 2)
    await run_once(queue, LONG_ID)
    result = await backend.aget_result(job.id)
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 3)
    assert result.worker_ids == [LONG_ID]
    assert Ops(backend).job(job.id).worker_ids == [LONG_ID]


async def test_a_kept_result_costs_as_much_whatever_its_workers_id(backend):
    queue, client = backend.broker.queue("default"), backend.broker.sync
    short, long = await tasks.add.aenqueue(1, 2), await tasks.add.aenqueue(1, 2)
    await run_once(queue, "w:1:a")
    await run_once(queue, LONG_ID)
    sizes = [client.memory_usage(queue.job_key(job.id), samples=0) for job in (short, long)]
    # The id is 37 bytes longer: in the hash, that would take 32 more at the least. The
    # start and end times may differ by a byte, which may cross one allocation size (16).
    assert sizes[1] - sizes[0] <= 16, sizes


async def test_a_result_stored_with_its_workers_ids_in_full_reads_as_before(backend):
    """A success stored before results named their worker by number (the previous ACK, or a
    job whose earlier attempts failed: their ids are always kept in full)."""
    queue, client = backend.broker.queue("default"), backend.broker.sync
    job = await tasks.add.aenqueue(1, 2)
    enqueued = int(job.enqueued_at.timestamp() * 1000)
    client.hset(queue.job_key(job.id), mapping={
        "a": 2, "t": 5, "l": 1005, "w": "old:1:a,12345:7:b", "f": 1010, "v": "3",
        "error:1": error_json("builtins.ValueError", "no"),
    })  # fmt: skip
    client.pexpire(queue.job_key(job.id), DAY_MS)
    client.lrem(queue.ready, 1, job.id)
    result = await backend.aget_result(job.id)
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 3)
    assert result.worker_ids == ["old:1:a", "12345:7:b"]
    assert int(result.last_attempted_at.timestamp() * 1000) == enqueued + 1005
    assert int(result.finished_at.timestamp() * 1000) == enqueued + 1010


async def test_a_success_after_a_failed_attempt_reads_both_workers(backend):
    queue = backend.broker.queue("default")
    job = await tasks.add.aenqueue(1, 2)
    await run_once(queue, "first:1:a", kind=OutcomeKind.FAILED)  # retried at once (no delay)
    await run_once(queue, LONG_ID)
    result = await backend.aget_result(job.id)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.worker_ids == ["first:1:a", LONG_ID]
    assert len(result.errors) == 1


async def test_a_number_another_worker_holds_is_not_taken(backend):
    queue, client = backend.broker.queue("default"), backend.broker.sync
    client.set(number_key(queue, LONG_ID), "other:2:b", px=DAY_MS)
    job = await tasks.add.aenqueue(1, 2)
    await run_once(queue, LONG_ID)
    assert (await backend.aget_result(job.id)).worker_ids == [LONG_ID]
    assert client.get(number_key(queue, LONG_ID)) == b"other:2:b"


async def test_a_workers_number_lasts_as_long_as_the_longest_kept_result_naming_it(backend):
    queue, client = backend.broker.queue("default"), backend.broker.sync
    for _ in range(3):
        await tasks.add.aenqueue(1, 2)
    await run_once(queue, LONG_ID, keep_ms=60_000)
    assert 60_000 < client.pttl(number_key(queue, LONG_ID)) <= 120_000
    longest = await run_once(queue, LONG_ID, keep_ms=DAY_MS)
    await run_once(queue, LONG_ID, keep_ms=60_000)  # does not shorten it
    ttl = client.pttl(number_key(queue, LONG_ID))
    assert client.pttl(queue.job_key(longest)) < ttl <= 2 * DAY_MS


async def test_a_worker_keeping_no_result_leaves_no_number(backend):
    queue, client = backend.broker.queue("default"), backend.broker.sync
    await tasks.add.aenqueue(1, 2)
    await run_once(queue, LONG_ID, keep_ms=0)
    assert not client.exists(number_key(queue, LONG_ID))


async def test_a_failure_keeps_its_workers_id_in_full(backend):
    """A dead letter is kept until purged: no number could be made to last as long."""
    queue, client = backend.broker.queue("default"), backend.broker.sync
    job = await tasks.add.aenqueue(1, 2)
    await run_once(queue, LONG_ID, kind=OutcomeKind.FATAL)
    assert client.hget(queue.job_key(job.id), "w") == LONG_ID.encode()
    assert not client.exists(number_key(queue, LONG_ID))
    assert (await backend.aget_result(job.id)).worker_ids == [LONG_ID]
