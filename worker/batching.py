"""Concurrent ``aenqueue`` calls on one event loop share their round trips to Redis.

A busy async site enqueues from many requests at once. A call made while no other is
being sent goes out at once; calls made meanwhile gather, and go out together in one
ENQUEUE_MANY call per queue. So an idle caller pays one round trip, as before, and a busy
one a fraction of one.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from worker import scripts
from worker.broker import Keys, NewJob, enqueue_arguments, enqueue_many_arguments
from worker.fastredis import FastRedis, Lua

CHUNK = 1000  # jobs per script call: Redis runs nothing else while a script runs


ENQUEUE, ENQUEUE_MANY = Lua(scripts.ENQUEUE), Lua(scripts.ENQUEUE_MANY)


class EnqueueBatcher:
    def __init__(self, redis: FastRedis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._pending: list[tuple[NewJob, asyncio.Future]] = []
        self._busy = False  # a round is being sent; new jobs wait for the next
        self._rest: asyncio.Task | None = None

    async def send(self, jobs: list[NewJob]) -> None:
        """Return once every job is stored; raise what Redis raised if they were not."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in jobs]
        self._pending += zip(jobs, futures, strict=True)
        if not self._busy:
            # Nobody is sending: this caller sends at once (no extra loop iteration when
            # idle), then leaves what gathered meanwhile to a task of its own.
            self._busy = True
            try:
                await self._send_round()
            finally:
                if self._pending:
                    self._rest = loop.create_task(self._send_rest())
                else:
                    self._busy = False
        try:
            for future in futures:
                await future  # no loop iteration when done already (a caller's own round)
        finally:
            for future in futures:  # one error fails the lot: count it as seen for all
                if future.done() and not future.cancelled():
                    future.exception()

    async def _send_rest(self) -> None:
        try:
            while self._pending:
                await self._send_round()
        finally:
            self._busy = False

    async def _send_round(self) -> None:
        batch, self._pending = self._pending, []
        by_queue: dict[str, list[tuple[NewJob, asyncio.Future]]] = defaultdict(list)
        for job, future in batch:
            by_queue[job.queue].append((job, future))
        try:
            for queue, entries in by_queue.items():
                for start in range(0, len(entries), CHUNK):
                    await self._store(queue, entries[start : start + CHUNK])
        except BaseException:
            # The sender was cancelled (its caller gave up, or the loop is closing): what
            # it had not stored goes to the next round rather than leave a caller waiting
            # for ever (a job is stored once, however often its script runs).
            self._pending[:0] = [(job, future) for job, future in batch if not future.done()]
            raise

    async def _store(self, queue: str, entries: list[tuple[NewJob, asyncio.Future]]) -> None:
        jobs = [job for job, _ in entries]
        try:
            if len(jobs) == 1:  # the plain script: cheaper to pack than a batch of one
                await self._redis.run(ENQUEUE, *enqueue_arguments(self._keys, jobs[0]))
            else:
                await self._redis.run(
                    ENQUEUE_MANY, *enqueue_many_arguments(self._keys, queue, jobs)
                )
        except Exception as e:  # handed to every caller of the chunk
            for _, future in entries:
                if not future.done():
                    future.set_exception(e)
            return
        for _, future in entries:
            if not future.done():
                future.set_result(None)
