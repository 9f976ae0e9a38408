"""The Redis protocol: key names and every command the engine sends (docs/protocol.md).

Enqueue's arguments are built once for the sync ``enqueue`` and the async ``aenqueue``; the
worker's side (lease, ack, requeue, heartbeats) is async only.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import orjson
import redis.asyncio as aioredis
from django.tasks.base import TASK_MAX_PRIORITY

from worker import scripts
from worker.fastredis import FastRedis, Lua
from worker.message import queue_of

# How many of the latest successful job ids a queue remembers (for listing them).
HISTORY = 10_000


def now_ms() -> int:
    return int(time.time() * 1000)


class Keys:
    """Every key name. A queue's keys share the hash tag {queue} (one Redis Cluster slot)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def queue(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}"

    def job_prefix(self, queue: str) -> str:
        return f"{self.queue(queue)}:job:"

    def job(self, job_id: str) -> str:
        return self.job_prefix(queue_of(job_id)) + job_id

    def ready(self, queue: str) -> str:
        return f"{self.queue(queue)}:ready"

    def delayed(self, queue: str) -> str:
        return f"{self.queue(queue)}:delayed"

    def dead(self, queue: str) -> str:
        return f"{self.queue(queue)}:dead"

    def stats(self, queue: str) -> str:
        return f"{self.queue(queue)}:stats"

    def done(self, queue: str) -> str:
        return f"{self.queue(queue)}:done"

    def notify(self, queue: str) -> str:
        return f"{self.queue(queue)}:notify"

    def workers(self, queue: str) -> str:
        return f"{self.queue(queue)}:workers"

    def wip(self, queue: str, worker_id: str) -> str:
        return f"{self.queue(queue)}:wip:{worker_id}"

    def periodic(self, queue: str) -> str:
        return f"{self.queue(queue)}:periodic"

    def unique(self, queue: str, fingerprint: str) -> str:
        return f"{self.queue(queue)}:unique:{fingerprint}"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    def cancel(self, queue: str) -> str:
        """Cancel requests for running jobs: member = job id, score = when asked, ms."""
        return f"{self.queue(queue)}:cancel"

    def glob(self, rest: str) -> str:
        """A SCAN pattern for keys under this prefix: the prefix glob-escaped, then ``rest``."""
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.prefix)
        return f"{escaped}:{rest}"


class NewJob(NamedTuple):
    """What an enqueue writes. (Tuples, like Lease and Outcome: one is made per job on the
    hot paths, and a tuple is made in a fraction of a frozen dataclass's time.)"""

    id: str
    queue: str
    body: bytes
    priority: int
    max_attempts: int
    run_after_ms: int | None
    enqueued_ms: int
    unique: tuple[str, int] | None = None  # (fingerprint of the call, window in ms)


def _fields(job: NewJob) -> tuple[list[Any], bool]:
    """The job's ARGV[1..8] for the enqueue scripts, and whether it waits in delayed."""
    # Higher priority first, then first in first out (ms); 201 levels x 1e13 stays exact.
    score = (TASK_MAX_PRIORITY - job.priority) * 10**13 + job.enqueued_ms
    run_after = job.run_after_ms
    deferred = run_after is not None and run_after > job.enqueued_ms
    due = "" if run_after is None else run_after
    argv = [job.id, job.body, job.priority, score, job.max_attempts, job.enqueued_ms, due]
    argv.append(run_after if deferred else score)
    return argv, deferred


def enqueue_arguments(keys: Keys, job: NewJob) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of the ENQUEUE script for ``job`` (run by a sync or an async client)."""
    argv, deferred = _fields(job)
    target = keys.delayed(job.queue) if deferred else keys.ready(job.queue)
    keys_ = [keys.job(job.id), target, keys.notify(job.queue)]
    if job.unique is not None:
        fingerprint, window_ms = job.unique
        keys_.append(keys.unique(job.queue, fingerprint))
        argv += [window_ms, keys.job_prefix(job.queue)]
    return keys_, argv


def enqueue_many_arguments(keys: Keys, queue: str, jobs: list[NewJob]) -> tuple[list[str], list]:
    """KEYS and ARGV of the ENQUEUE_MANY script for ``jobs``, all of ``queue``."""
    argv: list[Any] = [keys.job_prefix(queue)]
    for job in jobs:
        fields, deferred = _fields(job)
        argv += fields
        argv.append(int(deferred))
    return [keys.ready(queue), keys.delayed(queue), keys.notify(queue)], argv


class Lease(NamedTuple):
    """A job leased to this worker by a fetch. ``payload`` is None when the job is gone."""

    id: str
    payload: bytes | None
    attempt: int = 0
    max_attempts: int = 1
    worker_ids: tuple[str, ...] = ()
    enqueued_ms: int | None = None
    started_ms: int | None = None  # the job's first start
    attempted_ms: int | None = None  # this attempt's start

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


class Outcome(NamedTuple):
    """The end of one attempt, as the ack script takes it."""

    job_id: str
    attempt: int  # whose outcome this is: a stale one must not overwrite a later attempt's
    kind: str  # "ok", "err" (retried while attempts remain), "fatal" or "cancel"
    value: bytes  # JSON: the return value, or {"exception_class_path", "traceback"}
    retry_delay_ms: int = 0


def error_json(exception_class_path: str, traceback: str) -> bytes:
    return orjson.dumps({"exception_class_path": exception_class_path, "traceback": traceback})


FETCH, ACK = Lua(scripts.FETCH), Lua(scripts.ACK)


class Broker:
    """The worker's side of the protocol: the hot path (fetch, ack) on the lean pipelined
    connection, the rest (blocking waits, heartbeats, recovery) on redis.asyncio."""

    def __init__(self, client: aioredis.Redis, fast: FastRedis, keys: Keys) -> None:
        self.client = client
        self.fast = fast
        self.keys = keys
        self._requeue = client.register_script(scripts.REQUEUE)

    async def fetch(self, queue: str, count: int, worker_id: str) -> tuple[list[Lease], int | None]:
        """Lease up to ``count`` ready jobs; also returns when the next delayed job is due."""
        k = self.keys
        keys = [k.ready(queue), k.delayed(queue), k.wip(queue, worker_id), k.workers(queue)]
        keys.append(k.notify(queue))
        now = now_ms()
        rows, next_due = await self.fast.run(
            FETCH, keys, [now, count, worker_id, k.job_prefix(queue)]
        )
        leases = []
        for row in rows:
            job_id = row[0].decode()
            if row[1] is None:
                leases.append(Lease(job_id, None))
                continue
            leases.append(
                Lease(
                    id=job_id,
                    payload=row[1],
                    attempt=int(row[2]),
                    max_attempts=int(row[6] or 1),
                    worker_ids=tuple(row[3].decode().split(",")),
                    enqueued_ms=int(row[4]) if row[4] else None,
                    started_ms=int(row[5]),
                    attempted_ms=now,
                )
            )
        return leases, int(float(next_due)) if next_due is not None else None

    async def ack(
        self, queue: str, worker_id: str, outcomes: list[Outcome], result_ttl_ms: int
    ) -> None:
        """Store outcomes and drop their leases, all in one atomic call."""
        k = self.keys
        batch = orjson.dumps(
            [(o.job_id, o.kind, o.value.decode(), o.retry_delay_ms, o.attempt) for o in outcomes]
        )
        args: list[Any] = [now_ms(), k.job_prefix(queue), result_ttl_ms, HISTORY, batch]
        keys = [k.wip(queue, worker_id), k.ready(queue), k.delayed(queue), k.dead(queue)]
        await self.fast.run(ACK, [*keys, k.stats(queue), k.done(queue), k.cancel(queue)], args)

    async def requeue(
        self, queue: str, worker_id: str, mode: str, error: bytes = b"", ids: list[str] = ()
    ) -> tuple[int, int]:
        """Put a worker's leased jobs back (only ``ids``, if given): ``mode`` is "lost" (it
        died) or "released" (not run: shutting down, or never started). Returns
        (requeued, dead-lettered)."""
        k = self.keys
        keys = [k.wip(queue, worker_id), k.ready(queue), k.dead(queue), k.workers(queue)]
        keys += [k.notify(queue), k.stats(queue)]
        argv = [now_ms(), k.job_prefix(queue), worker_id, mode, error, *ids]
        back, dead = await self._requeue(keys, argv)
        return int(back), int(dead)

    async def leased(self, queue: str, worker_id: str) -> set[str]:
        """The ids ``worker_id`` holds leases on in ``queue``."""
        return {i.decode() for i in await self.client.smembers(self.keys.wip(queue, worker_id))}

    async def cancel_requests(self, queue: str) -> list[str]:
        """Ids of running jobs of ``queue`` an operator asked to cancel (worker/ops.py)."""
        return [i.decode() for i in await self.client.zrange(self.keys.cancel(queue), 0, -1)]

    async def wait_for_work(self, queues: list[str], timeout: float) -> None:
        """Block until a job may be ready in one of ``queues`` or ``timeout`` seconds pass."""
        await self.client.blpop([self.keys.notify(q) for q in queues], timeout=max(timeout, 0.001))

    async def heartbeat(self, worker_id: str, info: bytes, ttl_ms: int) -> None:
        await self.client.set(self.keys.heartbeat(worker_id), info, px=ttl_ms)

    async def forget(self, worker_id: str) -> None:
        await self.client.delete(self.keys.heartbeat(worker_id))

    async def dead_workers(self, queue: str) -> list[str]:
        """Workers holding leases in ``queue`` whose heartbeat has expired."""
        ids = [w.decode() for w in await self.client.smembers(self.keys.workers(queue))]
        if not ids:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for wid in ids:
                pipe.exists(self.keys.heartbeat(wid))
            alive = await pipe.execute()
        return [wid for wid, up in zip(ids, alive, strict=True) if not up]
