"""The broker: the engine's one way to Redis. It owns the connections (a blocking client for
sync callers; per event loop, redis.asyncio, the fast connection and the enqueue batcher),
hands out one ``Queue`` per queue name, and sends the few commands that span queues:
heartbeats, the wait for work, the list of live workers and of queues.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, cast

import redis
import redis.asyncio as aioredis

from worker.protocol import cluster
from worker.protocol.connection import async_client, sync_client
from worker.protocol.durability import Durability
from worker.protocol.enqueue import EnqueueBatcher
from worker.protocol.fastredis import FastRedis
from worker.protocol.keys import Keys, queue_of
from worker.protocol.listener import Listener
from worker.protocol.queue import Queue
from worker.protocol.scripts import HEARTBEAT
from worker.protocol.workflows import Workflows

# A worker whose heartbeat is older than this (ms) leaves the list of those that heartbeat.
UNLISTED_AFTER_MS = 3600 * 1000


@dataclass(frozen=True, slots=True)
class LoopClients:
    """An event loop's Redis clients: redis.asyncio for most, the lean pipelined
    connection for the hot path, and the batcher of concurrent enqueues that uses it."""

    redis: aioredis.Redis
    fast: FastRedis
    batcher: EnqueueBatcher
    listener: Listener  # connects when a first waiter waits


class Broker:
    """Redis at ``url``, keys under ``prefix``; at most ``max_connections`` per client pool;
    with ``durability``, the writes a caller counts on wait for a replica (durability.py)."""

    def __init__(
        self,
        url: str,
        prefix: str,
        max_connections: int = 50,
        durability: Durability | None = None,
    ) -> None:
        self.url = url
        self.durability = durability
        self.keys = Keys(prefix)
        self.max_connections = max_connections
        self._sync: redis.Redis | None = None
        self._queues: dict[str, Queue] = {}
        self.workflows = Workflows(self)
        self._identity = (url, prefix, id(self))  # of this broker's clients on a loop
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, str, int], LoopClients]
        ] = weakref.WeakKeyDictionary()

    def queue(self, name: str) -> Queue:
        found = self._queues.get(name)
        if found is None:
            found = self._queues[name] = Queue(self, name)
        return found

    def queue_for(self, job_id: str) -> Queue:
        """The queue of a job id; ValueError if it is not shaped like one."""
        return self.queue(queue_of(job_id))

    # Connections

    @property
    def sync(self) -> redis.Redis:
        """The process's blocking client (thread-safe: a pool)."""
        if self._sync is None:
            self._sync = sync_client(self.url, self.max_connections, self.durability)
        return self._sync

    def aclient(self) -> aioredis.Redis:
        return self.loop().redis

    def loop(self) -> LoopClients:
        """This event loop's clients (an asyncio client belongs to the loop that made it).
        They hang on the loop itself where it allows, so a short-lived loop (async_to_sync
        in a sync view) takes its connections with it when it goes; a mapping keyed by the
        loop could not let go, its values holding the loop through their connections."""
        loop = asyncio.get_running_loop()
        per_loop = getattr(loop, "_worker_clients", None)
        if per_loop is None:
            try:
                per_loop = loop._worker_clients = {}  # type: ignore[attr-defined]
            except AttributeError:  # a loop without attributes (uvloop): kept for good
                per_loop = self._loops.setdefault(loop, {})
        found = per_loop.get(self._identity)
        if found is None:
            fast = FastRedis(self.url, durability=self.durability)
            client = async_client(self.url, self.max_connections)
            found = per_loop[self._identity] = LoopClients(
                redis=client,
                fast=fast,
                batcher=EnqueueBatcher(fast, self.keys),
                listener=Listener(client, self.keys),
            )
        return found

    async def close_loop(self) -> None:
        """Close this event loop's clients: for a loop about to end (worker/testing's
        run_jobs makes one), rather than leave their sockets to the garbage collector."""
        loop = asyncio.get_running_loop()
        per_loop = getattr(loop, "_worker_clients", None)
        if per_loop is None:
            per_loop = self._loops.get(loop, {})
        clients = per_loop.pop(self._identity, None)
        if clients is not None:
            await clients.listener.close()
            clients.fast.close()
            await clients.redis.aclose(close_connection_pool=True)

    # Commands that span queues

    async def heartbeat(self, worker_id: str, info: bytes, ttl_ms: int) -> bool:
        """Write a worker's heartbeat. Out of memory, Redis refuses the SET (it might grow
        memory) while the fetch and ack scripts still run: the worker lives, so its lease
        is renewed with PEXPIRE, which Redis still takes. Returns False when only that was
        possible (the heartbeat's content is stale). A heartbeat that is gone cannot be
        renewed so: the refusal is raised, and the worker must not fetch meanwhile."""
        key = self.keys.heartbeat(worker_id)
        argv = [worker_id, info, ttl_ms, UNLISTED_AFTER_MS]
        try:
            if cluster.names_cluster(self.url):
                await self._heartbeat_apart(worker_id, info, ttl_ms)
            else:
                await self.loop().fast.run(HEARTBEAT, [key, self.keys.heartbeats()], argv)
        except redis.OutOfMemoryError:
            if not await self.aclient().pexpire(key, ttl_ms):
                raise
            return False
        return True

    async def _heartbeat_apart(self, worker_id: str, info: bytes, ttl_ms: int) -> None:
        """What lua/heartbeat.lua does, as single-key commands: on a cluster the heartbeat
        and the list of those that heartbeat are in different slots, which one script
        cannot span. The list is still scored by Redis's clock (TIME of the master of slot
        0, the same one for every worker)."""
        fast = self.loop().fast
        await fast.execute("SET", self.keys.heartbeat(worker_id), info, "PX", ttl_ms)
        seconds, micros = await fast.execute("TIME")
        now = int(seconds) * 1000 + int(micros) // 1000
        listed = self.keys.heartbeats()
        unlisted = now - UNLISTED_AFTER_MS
        await fast.pipeline(
            ("ZADD", listed, now, worker_id), ("ZREMRANGEBYSCORE", listed, "-inf", unlisted)
        )

    async def time(self) -> float:
        """Redis's clock, in seconds since the epoch: the one every worker agrees on."""
        seconds, micros = await self.aclient().time()
        return seconds + micros / 1e6

    async def forget(self, worker_id: str) -> None:
        async with self.aclient().pipeline(transaction=False) as pipe:
            pipe.delete(self.keys.heartbeat(worker_id))
            pipe.zrem(self.keys.heartbeats(), worker_id)
            await pipe.execute()

    async def live_heartbeats(self) -> list[bytes]:
        """The heartbeat of every live worker (as ``heartbeats``), in two commands however
        many keys Redis holds: the workers listed as they heartbeat, then their heartbeats."""
        client = self.aclient()
        ids = cast("list[bytes]", await client.zrange(self.keys.heartbeats(), 0, -1))
        if not ids:
            return []
        beats = await client.mget([self.keys.heartbeat(i.decode()) for i in ids])
        return [beat for beat in cast("list[bytes | None]", beats) if beat is not None]

    def waiting_connection(self) -> FastRedis:
        """A connection of its own for a worker's blocking waits for work (a blocked
        command holds up every command behind it on its connection)."""
        return FastRedis(self.url, blocking=True)

    async def wait_for_work(
        self,
        connection: FastRedis,
        queues: list[str],
        timeout: float,
        paused: Collection[str] = (),
    ) -> str | None:
        """Block until a job may be ready in one of ``queues`` or ``timeout`` seconds pass:
        the queue whose wake-up token came, or None. Of a queue known to be ``paused``, only
        its resume wakes the worker (``Queue.wait_then_fetch`` says why)."""
        lists = {
            (self.keys.resumed(q) if q in paused else self.keys.notify(q)).encode(): q
            for q in queues
        }
        reply = await connection.first_of(list(lists), timeout)
        return lists.get(reply[0]) if reply else None

    def heartbeats(self) -> list[bytes]:
        """The heartbeat of every live worker (JSON, as the worker wrote it), in two
        commands however many keys Redis holds (as ``live_heartbeats``)."""
        client = self.sync
        ids = cast("list[bytes]", client.zrange(self.keys.heartbeats(), 0, -1))
        if not ids:
            return []
        beats = cast(
            "list[bytes | None]", client.mget([self.keys.heartbeat(i.decode()) for i in ids])
        )
        return [beat for beat in beats if beat is not None]

    # Operators' orders to one worker, wherever it runs: it takes them once a second.

    def give_order(self, worker_id: str, order: str, ttl: float) -> None:
        """Leave ``order`` ("quiet" or "stop") for a worker; it lapses after ``ttl``
        seconds untaken (the worker is gone)."""
        self.sync.set(self.keys.order(worker_id), order, px=int(ttl * 1000))

    async def take_order(self, worker_id: str) -> str | None:
        """The order left for this worker, if any (taken: it is not seen twice)."""
        found = await self.aclient().getdel(self.keys.order(worker_id))
        return found.decode() if isinstance(found, bytes) else None

    def queue_names(self) -> list[str]:
        """Every queue that has keys in Redis under this prefix."""
        found = set()
        for key in self.sync.scan_iter(match=self.keys.glob("{*}:*"), count=1000):
            if (queue := self.keys.queue_of_key(key.decode())) is not None:
                found.add(queue)
        return sorted(found)

    def drop_keys(self) -> int:
        """Delete every key under this prefix (a test's own, once it is over): how many."""
        client = self.sync
        dropped = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=self.keys.glob("*"), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                dropped += int(client.delete(*batch))
                batch.clear()
        if batch:
            dropped += int(client.delete(*batch))
        return dropped

    def info(self) -> dict[str, Any]:
        """The server's INFO (version, memory policy, persistence), for checks and probes."""
        return dict(self.sync.info())

    def save_points(self) -> str | None:
        """The server's RDB save points ("" when it saves none), or None where the CONFIG
        command is refused (managed services rename or disable it)."""
        try:
            return str(self.sync.config_get("save").get("save", ""))
        except redis.ResponseError:
            return None

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None
