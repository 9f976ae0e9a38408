"""Hearing of jobs' ends and progress as they happen, without polling (lua/tell.lua says
them): one pub/sub connection per event loop and Redis, shared by every waiter on the loop,
so thousands of waiters in a site process cost one connection.

A waiter ``watching`` some jobs is subscribed to their queues' events channels (confirmed
by Redis) before the jobs are marked as waited for, and reads their state only after that:
an end stored before the mark is seen by the read, one stored after it is published to a
subscribed connection. When the connection breaks, the listener connects again, subscribes
again, and tells every waiter to read its jobs' state again: what was published meanwhile
is not lost, only heard as a re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from worker.protocol.connection import REDIS_ERRORS
from worker.protocol.keys import queue_of

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from worker.protocol.keys import Keys

logger = logging.getLogger("worker")

# What a waiter hears: ("end" | "progress", job id), or ("again", "") after a reconnection.
Event = tuple[str, str]
AGAIN: Event = ("again", "")
# How long the set of waited jobs outlives its latest waiter: ids of waiters that died are
# not kept for good.
WAITED_TTL_MS = 3600 * 1000
# Seconds between attempts to connect again (doubling up to RECONNECT_MAX).
RECONNECT_FIRST, RECONNECT_MAX = 0.05, 2.0


class Listener:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._watchers: dict[str, set[asyncio.Queue[Event]]] = {}  # job id -> waiters
        self._channels: dict[str, asyncio.Event] = {}  # channel -> subscribed (confirmed)
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._again = False  # waiters read again once the reconnection is subscribed

    @contextlib.asynccontextmanager
    async def watching(self, ids: Iterable[str]) -> AsyncIterator[asyncio.Queue[Event]]:
        """The events of jobs ``ids`` while the block runs; read their state inside it."""
        ids = list(ids)
        events: asyncio.Queue[Event] = asyncio.Queue()
        for job_id in ids:
            self._watchers.setdefault(job_id, set()).add(events)
        by_queue: dict[str, list[str]] = {}
        for job_id in ids:
            by_queue.setdefault(queue_of(job_id), []).append(job_id)
        try:
            for queue in by_queue:
                await self._subscribed(self._keys.events(queue))
            async with self._client.pipeline(transaction=False) as pipe:
                for queue, of_queue in by_queue.items():
                    pipe.sadd(self._keys.waited(queue), *of_queue)
                    pipe.pexpire(self._keys.waited(queue), WAITED_TTL_MS)
                await pipe.execute()
            yield events
        finally:
            for job_id in ids:
                waiters = self._watchers.get(job_id)
                if waiters is not None:
                    waiters.discard(events)
                    if not waiters:
                        del self._watchers[job_id]
            # The ids stay in the waited sets until their jobs end (lua/tell.lua): another
            # waiter may wait for one, and a published end costs nothing when none listens.

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._drop_connection()

    async def _subscribed(self, channel: str) -> None:
        confirmed = self._channels.get(channel)
        if confirmed is None:
            confirmed = self._channels[channel] = asyncio.Event()
            if self._pubsub is not None:
                with contextlib.suppress(*REDIS_ERRORS):  # the reader connects again
                    await self._pubsub.subscribe(channel)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read())
        await confirmed.wait()

    async def _read(self) -> None:
        pause = RECONNECT_FIRST
        first = True
        while True:
            try:
                await self._connect(again=not first)
                first, pause = False, RECONNECT_FIRST
                while True:
                    message = await self._pubsub.get_message(timeout=None)
                    if message is not None:
                        self._hear(message)
            except REDIS_ERRORS as e:
                logger.info("Listening for job events again after: %s", e)
                await self._drop_connection()
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECONNECT_MAX)

    async def _connect(self, again: bool) -> None:
        """A new connection subscribed to every channel; after a broken one (``again``),
        every waiter reads again once all are confirmed."""
        for confirmed in self._channels.values():
            confirmed.clear()
        self._again = again
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=False)
        await self._pubsub.subscribe(*self._channels)

    async def _drop_connection(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()

    def _hear(self, message: dict[str, Any]) -> None:
        if message["type"] == "subscribe":
            confirmed = self._channels.get(message["channel"].decode())
            if confirmed is None:
                return
            if confirmed.is_set():  # redis-py connected again by itself, and resubscribed
                self._read_again()
                return
            confirmed.set()
            if self._again and all(c.is_set() for c in self._channels.values()):
                self._again = False
                self._read_again()
            return
        if message["type"] != "message":
            return
        kind, *ids = message["data"].decode().split(" ")
        for job_id in ids:
            for events in self._watchers.get(job_id, ()):
                events.put_nowait((kind, job_id))

    def _read_again(self) -> None:
        """What was published while no connection was subscribed is in the jobs' state."""
        for waiters in list(self._watchers.values()):
            for events in waiters:
                events.put_nowait(AGAIN)
