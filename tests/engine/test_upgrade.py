"""Queues written by the previous protocol (0.1: sorted sets of ready and delayed jobs, long
hash fields, leases in sets) are drained by this version's workers: every job runs, its dead
letters can be retried, and its finished results stay readable (docs/protocol.md,
"Upgrading")."""

from __future__ import annotations

import time

from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.engine.helpers import finished
from worker.ops.api import Ops
from worker.protocol.keys import new_job_id
from worker.protocol.records import error_json


def legacy_job(backend, args: list, status: str = "READY", **fields) -> tuple[str, str, int]:
    """A job hash as 0.1 wrote it; returns (id, key, score in its ready set)."""
    now = int(time.time() * 1000)
    job_id = new_job_id("default", now)
    score = 100 * 10**13 + now
    key = backend.broker.keys.legacy_job(job_id)
    payload = f'{{"task":"tests.engine.tasks.add","args":{args},"kwargs":{{}}}}'
    backend.broker.sync.hset(key, mapping={
        "payload": payload, "priority": 0, "score": score, "max_attempts": 3,
        "status": status, "attempts": 0, "enqueued_at": now, **fields,
    })  # fmt: skip
    return job_id, key, score


def legacy(backend, name: str) -> str:
    return backend.broker.keys.legacy("default", name)


async def test_a_new_worker_runs_what_the_previous_version_queued_leased_and_delayed(
    backend, run_worker
):
    client = backend.broker.sync
    ready, _, score = legacy_job(backend, [1, 2])
    client.zadd(legacy(backend, "ready"), {ready: score})
    delayed, _, _ = legacy_job(backend, [3, 4], run_after=int(time.time() * 1000))
    client.zadd(legacy(backend, "delayed"), {delayed: time.time() * 1000})
    # A 0.1 worker that died holding a lease: its set of leases, no heartbeat.
    leased, _, _ = legacy_job(backend, [5, 6], "RUNNING", attempts=1, worker_ids="old:1:a")
    client.sadd(legacy(backend, "wip:old:1:a"), leased)
    client.sadd(backend.broker.keys.workers("default"), "old:1:a")
    assert Ops(backend).stats("default").ready == 1
    assert Ops(backend).stats("default").delayed == 1
    # What a worker's reaper does once that worker's heartbeat has run out.
    lost = error_json("worker.exceptions.WorkerLost", "old:1:a stopped heartbeating")
    assert (await backend.broker.queue("default").requeue("old:1:a", "lost", lost))[:2] == (1, 0)

    async with run_worker():
        results = [await finished(backend.get_result(i)) for i in (ready, delayed, leased)]
    assert [r.return_value for r in results] == [3, 7, 11]
    assert all(r.status == TaskResultStatus.SUCCESSFUL for r in results)
    assert results[2].worker_ids[0] == "old:1:a"  # the lost attempt, kept
    assert not client.exists(legacy(backend, "ready"), legacy(backend, "delayed"))
    assert not client.exists(legacy(backend, "wip:old:1:a"))


async def test_a_dead_letter_of_the_previous_version_can_be_retried(backend, run_worker):
    dead, _, _ = legacy_job(
        backend, [2, 2], "FAILED", attempts=3, finished_at=1,
        **{"error:3": '{"exception_class_path": "builtins.ValueError", "traceback": "x"}'},
    )  # fmt: skip
    backend.broker.sync.zadd(backend.broker.keys.dead("default"), {dead: 1})
    [record] = Ops(backend).dead("default")
    assert (record.id, record.status, record.attempts) == (dead, TaskResultStatus.FAILED, 3)
    assert record.errors[0].exception_class_path == "builtins.ValueError"
    assert Ops(backend).retry(dead) == 1
    async with run_worker():
        result = await finished(backend.get_result(dead))
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 4)


def test_a_result_the_previous_version_stored_stays_readable(backend):
    job_id, key, _ = legacy_job(
        backend, [1, 1], "SUCCESSFUL", attempts=1, result="2", worker_ids="old:1:a",
        started_at=int(time.time() * 1000), finished_at=int(time.time() * 1000),
    )  # fmt: skip
    backend.broker.sync.pexpire(key, 60_000)
    result = backend.get_result(job_id)
    assert (result.status, result.return_value, result.args) == ("SUCCESSFUL", 2, [1, 1])
    assert result.worker_ids == ["old:1:a"] and result.finished_at is not None
    assert result.task.func is tasks.add.func


async def test_a_job_of_the_previous_version_that_then_succeeds_counts_its_attempt(
    backend, run_worker
):
    job_id, _, score = legacy_job(backend, [4, 4])
    backend.broker.sync.zadd(legacy(backend, "ready"), {job_id: score})
    async with run_worker():
        result = await finished(backend.get_result(job_id))
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 8)
    assert Ops(backend).job(job_id).attempts == 1
