"""Hearing of jobs' ends and progress as they happen, without polling (lua/tell.lua says
them): one pub/sub connection per event loop and Redis, shared by every waiter on the loop,
so thousands of waiters in a site process cost one connection.

A waiter ``watching`` some jobs is subscribed to their queues' events channels (confirmed
by Redis) before the jobs are marked as waited for, and reads their state only after that:
an end stored before the mark is seen by the read, one stored after it is published to a
subscribed connection. When the connection breaks (an error, or a ping unanswered for
HEALTH_EVERY: a half-open connection; through Sentinel, the sentinels naming another
master), the listener connects again, subscribes again, and
tells every waiter to read its jobs' state again: what was published meanwhile is not
lost, only heard as a re-read. While jobs are watched, their marks are renewed before they
expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from redis.asyncio.sentinel import SentinelConnectionPool

from worker.exceptions import BrokerUnavailable
from worker.protocol.connection import REDIS_ERRORS
from worker.protocol.keys import by_queue

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from worker.protocol.keys import Keys

logger = logging.getLogger("worker")

# What a waiter hears: ("end" | "progress", job id), or ("again", "") after a reconnection.
Event = tuple[str, str]
AGAIN: Event = ("again", "")
# How long a mark of a waited job lasts: renewed at half that while it is watched, so the
# ids of waiters that died are not kept for good.
WAITED_TTL_MS = 3600 * 1000
# Seconds of silence after which the connection is pinged; a ping unanswered for as long
# means the connection is gone without having said so.
HEALTH_EVERY = 30.0
# On a master found through Sentinel, seconds between asking the sentinels whether it is
# still the master: one that hangs says nothing, and the events of the master that replaced
# it would go unheard until a ping gives up (twice HEALTH_EVERY).
MASTER_CHECK_EVERY = 2.0
# Seconds between attempts to connect again (doubling up to RECONNECT_MAX).
RECONNECT_FIRST, RECONNECT_MAX = 0.05, 2.0


class Listener:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._watchers: dict[str, set[asyncio.Queue[Event]]] = {}  # job id -> waiters
        self._channels: dict[str, asyncio.Event] = {}  # channel -> subscribed (confirmed)
        # Subscriptions are made under this lock, on a connection already connected: two
        # made at once on a new one would each open a connection of their own.
        self._lock = asyncio.Lock()
        self._pubsub: Any = None  # set once connected and subscribed
        self._tasks: list[asyncio.Task[None]] = []  # the reader, the renewer of marks
        self._again = False  # waiters read again once the reconnection is subscribed
        self._marking: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def watching(self, ids: Iterable[str]) -> AsyncIterator[asyncio.Queue[Event]]:
        """The events of jobs ``ids`` while the block runs; read their state inside it.
        BrokerUnavailable if Redis cannot be reached to start watching."""
        ids = list(ids)
        events: asyncio.Queue[Event] = asyncio.Queue()
        for job_id in ids:
            self._watchers.setdefault(job_id, set()).add(events)
        try:
            try:
                for queue in by_queue(ids):
                    await self._subscribed(self._keys.events(queue))
                await self._mark(ids)
            except REDIS_ERRORS as e:
                raise BrokerUnavailable(f"cannot watch jobs: {e}") from e
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
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._drop_connection()

    async def _mark(self, ids: list[str]) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            for queue, of_queue in by_queue(ids).items():
                pipe.sadd(self._keys.waited(queue), *of_queue)
                pipe.pexpire(self._keys.waited(queue), WAITED_TTL_MS)
            await pipe.execute()

    async def _subscribed(self, channel: str) -> None:
        if not self._tasks or any(task.done() for task in self._tasks):
            for task in self._tasks:
                task.cancel()
            self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._renew())]
        confirmed = self._channels.get(channel)
        if confirmed is None:
            async with self._lock:
                confirmed = self._channels.get(channel)  # another waiter's, while this waited
                if confirmed is None:
                    confirmed = self._channels[channel] = asyncio.Event()
                    if self._pubsub is not None:  # else the reader subscribes as it connects
                        try:
                            await self._pubsub.subscribe(channel)
                        except REDIS_ERRORS:
                            await self._drop_connection()  # the reader connects again
        await confirmed.wait()

    async def _read(self) -> None:
        pause = RECONNECT_FIRST
        again = False
        while True:
            try:
                await self._connect(again)
                pause, again = RECONNECT_FIRST, True
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a Redis error; anything else is logged, not fatal
                if isinstance(e, REDIS_ERRORS):
                    logger.info("Listening for job events again after: %s", e)
                else:
                    logger.exception("The listener for job events failed; it starts again")
                await self._drop_connection()
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECONNECT_MAX)

    async def _listen(self) -> None:
        pool = getattr(self._client, "connection_pool", None)  # (a cluster client has none)
        sentinels = pool if isinstance(pool, SentinelConnectionPool) else None
        every = HEALTH_EVERY if sentinels is None else MASTER_CHECK_EVERY
        unanswered = False
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while True:
            pubsub = self._pubsub
            if pubsub is None:
                raise ConnectionError("the listener's connection was dropped")
            message = await pubsub.get_message(timeout=every)
            if message is not None:
                unanswered, quiet_since = False, loop.time()
                self._hear(message)
                continue
            if sentinels is not None:
                await _still_master(sentinels, pubsub.connection)
            if loop.time() - quiet_since < HEALTH_EVERY:
                continue
            if unanswered:
                raise ConnectionError(f"no answer to a ping in {HEALTH_EVERY:.0f}s")
            await pubsub.ping()
            unanswered, quiet_since = True, loop.time()

    async def _connect(self, again: bool) -> None:
        """A new connection subscribed to every channel; after a broken one (``again``),
        every waiter reads again once all are confirmed."""
        async with self._lock:
            for confirmed in self._channels.values():
                confirmed.clear()
            self._again = again
            pubsub: Any = self._client.pubsub(ignore_subscribe_messages=False)
            try:
                await pubsub.subscribe(*self._channels)
            except BaseException:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()
                raise
            self._pubsub = pubsub

    async def _drop_connection(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(WAITED_TTL_MS / 2000)
            if self._watchers:
                with contextlib.suppress(*REDIS_ERRORS):  # the next turn, or a reconnection
                    await self._mark(list(self._watchers))

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
        """What was published while no connection was subscribed is in the jobs' state.
        The marks go again first: the Redis that came back may not have them (restarted
        from an older snapshot, a replica promoted before they reached it), and an end is
        published only for a job marked."""
        task = asyncio.create_task(self._marked_then_read_again())
        self._marking.add(task)  # (a task nobody holds may be collected before it ends)
        task.add_done_callback(self._marking.discard)

    async def _marked_then_read_again(self) -> None:
        if self._watchers:
            with contextlib.suppress(*REDIS_ERRORS):  # then the next reconnection marks
                await self._mark(list(self._watchers))
        for waiters in list(self._watchers.values()):
            for events in waiters:
                events.put_nowait(AGAIN)


async def _still_master(pool: SentinelConnectionPool, connection: Any) -> None:
    """ConnectionError if the sentinels name a master other than the server ``connection``
    is to (a failover away from a master that hangs, or that a partition hides); no answer
    from them changes nothing (the ping finds a connection that is gone)."""
    try:
        address = tuple(await pool.get_master_address())  # type: ignore[no-untyped-call]
    except REDIS_ERRORS:
        return
    if connection is not None and (connection.host, connection.port) != address:
        raise ConnectionError(f"the sentinels name another master ({address[0]}:{address[1]})")
