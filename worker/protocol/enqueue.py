"""Writing new jobs: the enqueue scripts' arguments, and the batcher through which
concurrent ``aenqueue`` calls on one event loop share their round trips to Redis.

A busy async site enqueues from many requests at once. A call made while no other is
being sent goes out at once; calls made meanwhile gather, and go out together in one
ENQUEUE_MANY call per queue. So an idle caller pays one round trip, as before, and a busy
one a fraction of one.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from worker.protocol.fastredis import FastRedis
from worker.protocol.keys import Keys
from worker.protocol.records import NewJob
from worker.protocol.scripts import ENQUEUE, ENQUEUE_MANY

CHUNK = 1000  # jobs per script call: Redis runs nothing else while a script runs

Pending = tuple[NewJob, "asyncio.Future[None]"]  # a job waiting to be sent, and its caller


def job_fields(job: NewJob) -> tuple[Any, ...]:
    """The job's ARGV[1..7] for the enqueue scripts (lua/store.lua)."""
    run_after = job.run_after_ms
    deferred = run_after is not None and run_after > job.enqueued_ms
    return (
        job.id,
        job.body,
        job.priority,
        job.max_attempts,
        "" if run_after is None else run_after,
        run_after if deferred else "",
        job.limit or "",
    )


def queue_keys(keys: Keys, queue: str) -> list[str]:
    """The keys a new job of ``queue`` may go to: ready, priorities, later, notify, gates
    (lua/store.lua)."""
    return [keys.ready(queue), keys.priorities(queue), keys.delayed(queue), keys.notify(queue),
            keys.gates(queue)]  # fmt: skip


def enqueue_arguments(keys: Keys, job: NewJob) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of the ENQUEUE script for ``job`` (run by a sync or an async client)."""
    argv = list(job_fields(job))
    keys_ = [keys.job(job.id), *queue_keys(keys, job.queue)]
    if job.unique is not None:
        fingerprint, window_ms = job.unique
        keys_.append(keys.unique(job.queue, fingerprint))
        argv += [window_ms, keys.job_prefix(job.queue)]
    return keys_, argv


def enqueue_many_arguments(
    keys: Keys, queue: str, jobs: list[NewJob]
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of the ENQUEUE_MANY script for ``jobs``, all of ``queue``."""
    argv: list[Any] = [keys.job_prefix(queue)]
    for job in jobs:
        argv += job_fields(job)
    return queue_keys(keys, queue), argv


def chunks[Item](items: list[Item], job_of: Callable[[Item], NewJob]) -> Iterator[list[Item]]:
    """``items`` in slices of at most CHUNK, each of one queue (what one script call takes)."""
    by_queue: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_queue[job_of(item).queue].append(item)
    for group in by_queue.values():
        for start in range(0, len(group), CHUNK):
            yield group[start : start + CHUNK]


class EnqueueBatcher:
    """Gathers the jobs of concurrent ``aenqueue`` calls on one event loop into shared
    script calls over the loop's fast connection."""

    def __init__(self, redis: FastRedis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._pending: list[Pending] = []
        self._busy = False  # a round is being sent; new jobs wait for the next
        self._rest: asyncio.Task[None] | None = None

    async def send(self, job: NewJob) -> None:
        """Return once the job is stored; raise what Redis raised if it was not."""
        if not self._busy:
            # Nobody is sending: this caller sends its job at once, then leaves what
            # gathered meanwhile to a task of its own.
            self._busy = True
            try:
                await self.store([job])
            finally:
                if self._pending:
                    self._rest = asyncio.get_running_loop().create_task(self._send_rest())
                else:
                    self._busy = False
            return
        future = asyncio.get_running_loop().create_future()
        self._pending.append((job, future))
        await future

    async def _send_rest(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    for chunk in chunks(batch, _first):
                        await self._settle(chunk)
                except BaseException:
                    # Cancelled (the loop is closing): what was not stored goes back, rather
                    # than leave a caller waiting for ever (a job is stored once, however
                    # often its script runs).
                    self._pending[:0] = [entry for entry in batch if not entry[1].done()]
                    raise
        finally:
            self._busy = False

    async def _settle(self, entries: list[Pending]) -> None:
        """Store the jobs of one chunk and tell their callers how it went."""
        try:
            await self.store([job for job, _ in entries])
        except Exception as e:  # handed to every caller of the chunk
            for _, future in entries:
                if not future.done():
                    future.set_exception(e)
            return
        for _, future in entries:
            if not future.done():
                future.set_result(None)

    async def store(self, jobs: list[NewJob]) -> None:
        """Store jobs of one queue in one script call."""
        if len(jobs) == 1:  # the plain script: cheaper to pack than a batch of one
            await self._redis.run(ENQUEUE, *enqueue_arguments(self._keys, jobs[0]))
        else:
            queue = jobs[0].queue
            await self._redis.run(ENQUEUE_MANY, *enqueue_many_arguments(self._keys, queue, jobs))


def _first(entry: Pending) -> NewJob:
    return entry[0]
