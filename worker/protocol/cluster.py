"""Redis Cluster: the ``redis+cluster://`` URL, redis-py's cluster clients (sync and
asyncio), and the routing of the hot path's connections (fastredis.py) to the master of
each key's slot.

    redis+cluster://[user:password@]host:port[,host:port...][?query]

Each host is a seed: any node of the cluster (port 6379 unless given), asked for the map
of slots to masters; list several, so that one down does not stop a client from starting.
``rediss+cluster://`` speaks TLS to every node. The user and password, and the query (TLS
files, ``socket_keepalive``...), are every node's, as a ``redis://`` URL's are its server's.
A cluster has database 0 only: a URL naming another is refused.

Every key of queue Q carries the hash tag {Q} (keys.py), so each script of a queue runs on
the one master of that queue's slot. The hot path keeps one connection per master, sends
each command to the master of its first key's slot as the map says, and follows the
cluster's redirections: MOVED (the slot has another master: the map is read again), ASK
(the slot is being moved and this key already was: ASKING, then the command, on the
importing master) and TRYAGAIN (a script's keys are split between the two masters while
the slot moves: sent again until the move is over). None of those ran the command, so
sending it again is safe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlencode

import redis
import redis.asyncio.cluster as aiocluster
import redis.cluster
from redis.crc import key_slot

from worker.protocol import sentinel
from worker.protocol.scripts import Lua

SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_PORT = 6379
USAGE = "redis+cluster://[user:password@]host:port[,host:port...]"
SLOTS = 16384
# MOVED and ASK answers one command may meet before it is an error: a slot moves once at
# a time, and each answer names where it went.
MAX_REDIRECTIONS = 16
# While a slot moves, the scripts of its queue are refused (TRYAGAIN) until the last of its
# keys has: how long a command keeps trying, and how often.
TRYAGAIN_FOR = 10.0
TRYAGAIN_EVERY = 0.02


def names_cluster(url: str) -> bool:
    return url.partition("://")[0] in SCHEMES


@dataclass(frozen=True, slots=True)
class Seeds:
    """What a ``redis+cluster://`` URL says: the seed nodes, and redis-py's options for a
    connection to any node (its address aside)."""

    addresses: tuple[tuple[str, int], ...]
    tls: bool
    options: dict[str, Any]
    userinfo: str  # as the URL gives it (quoted), for the URLs of single nodes
    query: str

    def node_url(self, host: str, port: int) -> str:
        """The ``redis://`` (``rediss://``) URL of one node, with the cluster's credentials
        and options: what the hot path's connection to that node is made from."""
        at = "@" if self.userinfo else ""
        host = f"[{host}]" if ":" in host else host
        scheme = "rediss" if self.tls else "redis"
        return (
            f"{scheme}://{self.userinfo}{at}{host}:{port}/0{'?' if self.query else ''}{self.query}"
        )


def parse(url: str) -> Seeds:
    """ValueError naming what is wrong (never the password)."""
    scheme, userinfo, hosts, path, query = sentinel.url_parts(url, SCHEMES, "cluster")
    if unquote(path) not in ("", "0"):
        raise ValueError(f"names database {unquote(path)!r}: a Redis Cluster has database 0 only")
    addresses = tuple(
        sentinel.address(host, DEFAULT_PORT, "node", USAGE) for host in hosts.split(",")
    )
    plain = "rediss" if scheme.startswith("rediss") else "redis"
    at = "@" if userinfo else ""
    # redis-py reads the rest as it reads a redis:// URL's (the host is a stand-in).
    options = sentinel.redis_options(f"{plain}://{userinfo}{at}node/0?{query}")
    for name in ("connection_class", "host", "port", "db"):
        options.pop(name, None)
    query = urlencode(parse_qsl(query, keep_blank_values=True))
    return Seeds(addresses, plain == "rediss", options, userinfo, query)


class _SyncCluster(redis.cluster.RedisCluster):
    """redis-py's cluster client, whose MGET takes keys of several slots (the engine reads
    every worker's heartbeat at once: those keys carry no common hash tag)."""

    mget = redis.cluster.RedisCluster.mget_nonatomic  # type: ignore[assignment]


class _AsyncCluster(aiocluster.RedisCluster):
    mget = aiocluster.RedisCluster.mget_nonatomic  # type: ignore[assignment]


def _cluster_options(seeds: Seeds, options: dict[str, Any]) -> dict[str, Any]:
    # A pool's wait for a free connection (BlockingConnectionPool's) has no cluster twin.
    options = {k: v for k, v in options.items() if k != "timeout"}
    return {**options, **seeds.options, "ssl": seeds.tls}


def sync_client(seeds: Seeds, **options: Any) -> redis.cluster.RedisCluster:
    """redis-py's blocking cluster client; ``options`` are redis-py's connection options."""
    nodes = [
        redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]
        for host, port in seeds.addresses
    ]
    return _SyncCluster(startup_nodes=nodes, **_cluster_options(seeds, options))


def async_client(seeds: Seeds, **options: Any) -> aiocluster.RedisCluster:
    nodes = [aiocluster.ClusterNode(host, port) for host, port in seeds.addresses]
    return _AsyncCluster(startup_nodes=nodes, **_cluster_options(seeds, options))


class Node(Protocol):
    """A connection to one node (fastredis.FastRedis)."""

    async def execute(self, *args: Any) -> Any: ...

    async def pipeline(
        self, *commands: tuple[Any, ...], script: Lua | None = None
    ) -> list[Any]: ...

    async def run(self, script: Lua, keys: list[Any], args: list[Any]) -> Any: ...

    def close(self) -> None: ...


# Commands that name no key (or whose first argument is not one): any master takes them.
_KEYLESS = {"PING", "TIME", "INFO", "SCRIPT", "ASKING", "CLUSTER", "WAIT"}


def slot_of_command(args: Sequence[Any]) -> int | None:
    """The slot of a command's first key, None for a command without keys."""
    name = _text(args[0]).upper()
    if name in ("EVALSHA", "EVAL"):
        return key_slot(_bytes(args[3])) if int(args[2]) else None
    if name in _KEYLESS or len(args) < 2:
        return None
    return key_slot(_bytes(args[1]))


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


Address = tuple[str, int]


class Router:
    """Sends each command to the master of its slot, a connection per master (made by
    ``connect`` from a node's URL), following the cluster's redirections."""

    def __init__(self, seeds: Seeds, connect: Callable[[str], Node]) -> None:
        self.seeds = seeds
        self._connect = connect
        self._nodes: dict[Address, Node] = {}
        self._masters: list[Address] | None = None  # slot -> its master, as last read
        self._reading = asyncio.Lock()
        self._generation = 0  # of the map: a caller that saw it stale reads it once

    async def execute(self, args: tuple[Any, ...]) -> Any:
        if _text(args[0]).upper() == "SCRIPT" and _text(args[1]).upper() == "LOAD":
            # Loaded where it is lacking, whichever master that is: on every one.
            replies = [await self._node(a).execute(*args) for a in await self._all_masters()]
            return replies[0]

        async def send(node: Node, asking: bool) -> Any:
            if asking:
                return (await node.pipeline(("ASKING",), args))[1]
            return await node.execute(*args)

        return await self._call(slot_of_command(args), send)

    async def pipeline(
        self, commands: tuple[tuple[Any, ...], ...], script: Lua | None
    ) -> list[Any]:
        """``commands`` go together to the master of the first one's slot: they must all
        be of one slot (one queue's), as every pipeline of the hot path is."""
        slot = next((s for c in commands if (s := slot_of_command(c)) is not None), None)

        async def send(node: Node, asking: bool) -> list[Any]:
            if not asking:
                return await node.pipeline(*commands, script=script)
            each = [part for command in commands for part in (("ASKING",), command)]
            replies = await node.pipeline(*each, script=script)
            return replies[1::2]

        replies: list[Any] = await self._call(slot, send)
        return replies

    async def run(self, script: Lua, keys: list[Any], args: list[Any]) -> Any:
        async def send(node: Node, asking: bool) -> Any:
            if not asking:
                return await node.run(script, keys, args)
            command = ("EVALSHA", script.sha, len(keys), *keys, *args)
            return (await node.pipeline(("ASKING",), command, script=script))[1]

        return await self._call(key_slot(_bytes(keys[0])) if keys else None, send)

    async def _call(self, slot: int | None, send: Callable[[Node, bool], Awaitable[Any]]) -> Any:
        asked: Address | None = None
        redirections = 0
        busy_until: float | None = None
        while True:
            address = asked or await self._master_of(slot)
            generation = self._generation
            try:
                return await send(self._node(address), asked is not None)
            except redis.ConnectionError:
                self._stale(generation)  # a master down: a failover may name another
                raise
            except redis.ResponseError as e:
                kind, _, where = str(e).partition(" ")
                if kind == "TRYAGAIN":
                    busy_until = busy_until or time.monotonic() + TRYAGAIN_FOR
                    if time.monotonic() > busy_until:
                        raise
                    await asyncio.sleep(TRYAGAIN_EVERY)
                    continue
                if kind not in ("MOVED", "ASK"):
                    raise
                redirections += 1
                if redirections > MAX_REDIRECTIONS:
                    raise redis.ResponseError(
                        f"redirected {redirections} times (last: {e}): the cluster's slots "
                        "keep moving"
                    ) from e
                target = _address(where.partition(" ")[2], address)
                if kind == "MOVED":
                    self._stale(generation)
                    asked = None
                else:
                    asked = target

    async def _master_of(self, slot: int | None) -> Address:
        masters = self._masters
        if masters is None:
            masters = await self._read_map()
        return masters[slot if slot is not None else 0]

    async def _all_masters(self) -> list[Address]:
        masters = self._masters or await self._read_map()
        return sorted(set(masters))

    def _stale(self, generation: int) -> None:
        if generation == self._generation:
            self._masters = None

    async def _read_map(self) -> list[Address]:
        """The map of slots to masters, asked of the masters it knows, then of the seeds,
        until one answers (``redis.ConnectionError`` naming the last failure if none)."""
        async with self._reading:
            if self._masters is not None:  # read by another caller meanwhile
                return self._masters
            error: Exception | None = None
            for address in dict.fromkeys([*self._nodes, *self.seeds.addresses]):
                try:
                    reply = await self._node(address).execute("CLUSTER", "SLOTS")
                except (redis.RedisError, OSError) as e:
                    error = e
                    continue
                masters = _slot_map(reply, address)
                if masters is not None:
                    self._masters = masters
                    self._generation += 1
                    return masters
                error = redis.ConnectionError("the cluster does not serve every slot")
            raise redis.ConnectionError(
                f"no node of the Redis Cluster gave its map of slots ({error})"
            ) from error

    def _node(self, address: Address) -> Node:
        found = self._nodes.get(address)
        if found is None:
            found = self._nodes[address] = self._connect(self.seeds.node_url(*address))
        return found

    def close(self) -> None:
        for node in self._nodes.values():
            node.close()
        self._nodes.clear()
        self._masters = None


def _slot_map(reply: list[Any], asked: Address) -> list[Address] | None:
    """Slot -> master, from CLUSTER SLOTS; None if some slot has no master."""
    masters: list[Address | None] = [None] * SLOTS
    for start, end, master, *_ in reply:
        host = _text(master[0]) or asked[0]  # "" (Redis 7): the node asked
        for slot in range(int(start), int(end) + 1):
            masters[slot] = (asked[0] if host == "?" else host, int(master[1]))
    if any(m is None for m in masters):
        return None
    return masters  # type: ignore[return-value]


def _address(text: str, asked: Address) -> Address:
    """``host:port`` of a MOVED or ASK answer (an empty host: the node that answered)."""
    host, _, port = _text(text).rpartition(":")
    return host or asked[0], int(port)


class FirstOf:
    """Blocking waits on lists of several slots (one BLPOP cannot span slots): a BLPOP per
    slot, each on a connection of its own (made by ``connect``), and the first token to
    come. A wait that outlives the caller's stays pending for the next call, so no token
    it takes is lost and a queue's wake-up is heard as soon as Redis sends it."""

    def __init__(self, connect: Callable[[], Node]) -> None:
        self._connect = connect
        self._waits: dict[tuple[bytes, ...], tuple[Node, asyncio.Future[Any] | None]] = {}

    async def __call__(self, keys: Sequence[bytes], timeout: float) -> Any:
        groups: dict[int, list[bytes]] = {}
        for key in keys:
            groups.setdefault(key_slot(key), []).append(key)
        wanted = {tuple(group) for group in groups.values()}
        for gone in set(self._waits) - wanted:
            self._drop(gone)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        while True:
            left = None if deadline is None else deadline - loop.time()
            for group in wanted:
                connection, waiting = self._waits.get(group) or (self._connect(), None)
                if waiting is not None and waiting.done():
                    if waiting.exception() is not None:
                        self._drop(group)
                        raise waiting.exception()  # type: ignore[misc]
                    if (token := waiting.result()) is not None:
                        self._waits[group] = (connection, None)
                        return token
                    waiting = None  # its BLPOP timed out
                if waiting is None and (left is None or left > 0):
                    seconds = 0 if left is None else max(left, 0.01)
                    waiting = asyncio.ensure_future(connection.execute("BLPOP", *group, seconds))
                self._waits[group] = (connection, waiting)
            pending = [w for _, w in self._waits.values() if w is not None]
            if (left is not None and left <= 0) or not pending:
                return None
            await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)

    def _drop(self, group: tuple[bytes, ...]) -> None:
        connection, waiting = self._waits.pop(group)
        if waiting is not None:
            waiting.cancel()
        connection.close()

    def close(self) -> None:
        for group in list(self._waits):
            self._drop(group)
