"""A lean asyncio Redis connection for the engine's hot path: enqueue, fetch and ack.

redis.asyncio spends most of a short command's time in its own machinery (a pool with a
lock, retries, packing in Python, observability hooks): several times what the round trip
itself costs. The hot path needs little of it: one connection per event loop, shared by
every caller, commands pipelined as they come (Redis answers in order, so a queue of
futures pairs replies with callers), packed and parsed by hiredis. Blocking commands never
go on the shared connection, so no caller waits behind another one's block: a worker waits
for work on a connection of its own.

The URL means what it means to redis-py (redis-py parses it): ``rediss://`` with its
``ssl_*`` parameters, ``unix://``, user (an ACL user) and password, database,
``socket_keepalive``; or ``redis+sentinel://`` (sentinel.py): each connection is opened to
the master the sentinels name as it opens; or ``redis+cluster://`` (cluster.py): one
connection per master, each command sent to the master of its key's slot. A connection
whose server answers READONLY (a master turned replica by a failover) takes no more
commands: the next ones go to a new connection, opened to the master of the moment.

Errors are redis-py's: a lost connection raises ``redis.ConnectionError`` (the engine's
outage handling applies unchanged), an error reply ``redis.ResponseError``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, cast

import hiredis
import redis
import redis.asyncio
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from worker.protocol import cluster, sentinel
from worker.protocol.connection import SOCKET_TIMEOUT, redacted
from worker.protocol.durability import Durability
from worker.protocol.scripts import Lua

# The values of a URL's ssl_cert_reqs, as redis-py reads them.
CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
# The URL parameters that name the files a TLS context loads (named in its errors).
TLS_FILES = ("ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile")


class _Protocol(asyncio.Protocol):
    def __init__(self, timed: bool = True) -> None:
        self.reader = hiredis.Reader()
        self.timed = timed  # whether FastRedis.timer hears of its round trips
        # Callers waiting for a reply, in the order their commands went out, each with the
        # time.monotonic() it went out at: the oldest is the one a watchdog times (uvloop's
        # loop time is cached per turn of the loop, in whole ms: too coarse for a round trip).
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        # True while the transport holds more unsent bytes than it wants (Redis or the
        # network is slower than the callers): new commands wait for `resumed`.
        self.paused = False
        self.resumed = asyncio.Event()
        self.scripts: set[str] = set()  # SHA1s of the scripts loaded on this connection
        self.retired = False  # its server turned replica: it ends once its replies are in
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Write one command; the future gets its reply."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append((future, time.monotonic()))
        self.transport.write(hiredis.pack_command(args))  # type: ignore[union-attr]
        if self._watchdog is None:
            self._watchdog = loop.call_later(SOCKET_TIMEOUT, self._check)
        return future

    def pause_writing(self) -> None:
        self.paused = True
        self.resumed.clear()

    def resume_writing(self) -> None:
        self.paused = False
        self.resumed.set()

    async def writable(self) -> None:
        """Wait until the transport takes commands again; raise if the connection is lost
        meanwhile (the command was not sent)."""
        # Every waiter wakes on resume; the first ones may fill the buffer again, and
        # the rest then wait for the next resume, so the buffer stays near its limit.
        while self.paused:
            await self.resumed.wait()
        if self.lost is not None:
            raise self.lost

    def _check(self) -> None:
        # One timer per connection rather than one per command (a timer costs more than
        # the rest of a command's Python): it looks at the oldest unanswered command.
        self._watchdog = None
        if not self.waiting or self.transport is None:
            return
        loop = asyncio.get_running_loop()
        late = time.monotonic() - self.waiting[0][1]
        if late >= SOCKET_TIMEOUT:
            # No answer in time: the connection cannot be trusted to stay in step.
            self.lost = redis.TimeoutError(f"no answer from Redis in {SOCKET_TIMEOUT}s")
            self.transport.abort()
        else:
            self._watchdog = loop.call_later(SOCKET_TIMEOUT - late, self._check)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        timer = FastRedis.timer if self.timed else None
        now = time.monotonic() if timer is not None else 0.0
        while (reply := self.reader.gets()) is not False:
            future, sent = self.waiting.popleft()
            if timer is not None:
                timer(now - sent)
            if future.done():  # its caller gave up (cancelled)
                continue
            if isinstance(reply, hiredis.ReplyError):
                error = _error(str(reply))
                if _turned_replica(error):
                    self._retire(error)
                future.set_exception(error)
            else:
                future.set_result(reply)
        if self.retired and not self.waiting and self.transport is not None:
            self.transport.close()

    def _retire(self, error: redis.RedisError) -> None:
        """Take no more commands (those waiting to be written are refused as this one
        was); the replies of those sent still come."""
        if self.lost is None:
            self.lost = error
            self.retired = True
            self.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.lost is None or (self.retired and self.waiting):
            # (A retired one's replies that never came: their commands' fate is unknown.)
            self.lost = redis.ConnectionError(f"connection to Redis lost ({exc or 'closed'})")
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)
        self.resume_writing()  # callers waiting to write learn of the loss


def _write(
    protocol: _Protocol, commands: tuple[tuple[Any, ...], ...], script: Lua | None
) -> list[asyncio.Future[Any]]:
    futures = []
    if script is not None and script.sha not in protocol.scripts:
        protocol.scripts.add(script.sha)
        futures.append(protocol.send(("SCRIPT", "LOAD", script.source)))
    futures += [protocol.send(command) for command in commands]
    return futures


# The error replies a caller tells apart, by their first word (as redis-py classes them).
_ERRORS: dict[str, type[redis.RedisError]] = {
    "NOSCRIPT": NoScriptError,
    "OOM": redis.OutOfMemoryError,
    "READONLY": redis.ReadOnlyError,
    "LOADING": redis.BusyLoadingError,
}


def _error(message: str) -> redis.RedisError:
    return _ERRORS.get(message.partition(" ")[0], redis.ResponseError)(message)


def _turned_replica(error: redis.RedisError) -> bool:
    """Whether ``error`` is a replica refusing a write: READONLY, or (Redis 6) a script's
    write refused so ("ERR Error running script ... -READONLY ...")."""
    return isinstance(error, redis.ReadOnlyError) or "-READONLY " in str(error)


def _tell(
    group: list[tuple[tuple[Any, ...], Lua, asyncio.Future[Any]]], replies: list[Any],
    confirmed: Any, trouble: BaseException | None,
) -> None:  # fmt: skip
    """Give each write of a group its reply and the group's WAIT's, or its error (its own,
    else ``trouble``: the group's)."""
    for (_, _, done), reply in zip(group, replies, strict=True):
        if done.done():  # its caller gave up (cancelled)
            continue
        error = reply if isinstance(reply, BaseException) else trouble
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result((reply, confirmed))


class FastRedis:
    """One pipelined connection to the Redis at ``url``, opened on first use and again
    after it is lost. ValueError if the URL is not one redis-py reads. ``timer``, when set
    (worker/observe/metrics.py), is given the seconds of each round trip, but on a
    ``blocking`` connection (whose replies wait for work, not for Redis)."""

    timer: ClassVar[Callable[[float], None] | None] = None

    def __init__(
        self, url: str, blocking: bool = False, durability: Durability | None = None
    ) -> None:
        self.url = url
        self.blocking = blocking
        self.durability = durability
        self._cluster: cluster.Router | None = None
        self._first_of: cluster.FirstOf | None = None
        if cluster.names_cluster(url):
            self._cluster = cluster.Router(
                cluster.parse(url), partial(FastRedis, blocking=blocking, durability=durability)
            )
        self._sentinels = sentinel.parse(url) if sentinel.names_sentinels(url) else None
        if self._cluster is not None:  # each node's connection is opened as its own URL says
            self.options: dict[str, Any] = {}
            self.unix, self.tls = False, False
        elif self._sentinels is not None:
            self.options = self._sentinels.master
            self.unix, self.tls = False, self._sentinels.tls
        else:
            pool = redis.asyncio.ConnectionPool.from_url(url)  # opens nothing
            self.options = pool.connection_kwargs
            self.unix = issubclass(pool.connection_class, redis.asyncio.UnixDomainSocketConnection)
            self.tls = issubclass(pool.connection_class, redis.asyncio.SSLConnection)
        if self.tls and self.options.get("ssl_cert_reqs", "required") not in CERT_REQS:
            raise ValueError(
                f"ssl_cert_reqs in the Redis URL must be one of {', '.join(CERT_REQS)}, "
                f"not {self.options['ssl_cert_reqs']!r}"
            )
        self._protocol: _Protocol | None = None
        self._turns = asyncio.Lock()  # held by the caller whose turn it is to send
        self._queued = 0  # callers waiting for their turn
        # The writes that wait for replicas go on a connection of their own: a WAIT holds
        # up every command behind it on its connection, heartbeats included, for as long
        # as the replicas take (its timeout, while none answers).
        self._waiting_for_replicas: FastRedis | None = None
        # Redis runs nothing after a WAIT on its connection until it ends: the writes that
        # come meanwhile go out together once it has, under one WAIT (each caller waits
        # two durability timeouts at most, not one each in turn).
        self._next_group: list[tuple[tuple[Any, ...], Lua, asyncio.Future[Any]]] = []
        self._sending_groups: asyncio.Task[None] | None = None

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply; redis.TimeoutError if none comes within
        SOCKET_TIMEOUT (the connection is then dropped, and opened again on next use).
        While the connection has more unsent commands than it should buffer, wait."""
        if self._cluster is not None:
            return await self._cluster.execute(args)
        [future] = await self._send(args)
        return await future

    async def pipeline(self, *commands: tuple[Any, ...], script: Lua | None = None) -> list[Any]:
        """Send ``commands`` together and return their replies, in order; raise the first
        error reply (or the loss of the connection) once every reply is in. A ``script``
        the commands run (EVALSHA) is loaded first, in the same write, on a connection
        that has not loaded it yet."""
        if self._cluster is not None:
            return await self._cluster.pipeline(commands, script)
        futures = await self._send(*commands, script=script)
        replies = await asyncio.gather(*futures, return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies[len(replies) - len(commands) :]

    async def _send(
        self, *commands: tuple[Any, ...], script: Lua | None = None
    ) -> list[asyncio.Future[Any]]:
        """Write ``commands`` (after loading ``script`` where this connection has not),
        in the order callers asked: while the connection is being opened, or holds more
        unsent bytes than it should, callers wait their turn, and one that comes meanwhile
        queues behind them rather than overtake them (a bulk enqueue's slices must reach
        the ready list in order)."""
        protocol = self._protocol
        if not self._queued and protocol is not None and protocol.lost is None:
            if not protocol.paused:
                return _write(protocol, commands, script)
        waited_on = protocol if protocol is not None and protocol.lost is None else None
        self._queued += 1
        try:
            async with self._turns:
                if waited_on is not None and waited_on.lost is not None:
                    # Lost while this caller waited to write on it: not sent, and the
                    # caller hears of the outage as those who were writing did.
                    raise waited_on.lost
                protocol = await self._connect()
                await protocol.writable()
                return _write(protocol, commands, script)
        finally:
            self._queued -= 1

    async def run(self, script: Lua, keys: list[Any], args: list[Any]) -> Any:
        """EVALSHA, the script loaded first (in the same write) where this connection has
        not loaded it: a NOSCRIPT answered and the call sent again would let calls made
        after it overtake it. With ``durability``, a script whose writes wait for replicas
        is followed by WAIT (durability.py)."""
        if self._cluster is not None:
            return await self._cluster.run(script, keys, args)
        if self.durability is not None and self.durability.waits(script.sha):
            return await self._replicated(script, keys, args, self.durability)
        try:
            [reply] = await self.pipeline(
                ("EVALSHA", script.sha, len(keys), *keys, *args), script=script
            )
            return reply
        except NoScriptError:  # flushed since it was loaded (SCRIPT FLUSH, a failover)
            await self.execute("SCRIPT", "LOAD", script.source)
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def _replicated(
        self, script: Lua, keys: list[Any], args: list[Any], durability: Durability
    ) -> Any:
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            reply, confirmed = await self._in_next_group(command, script, durability)
        except NoScriptError:  # flushed since it was loaded (SCRIPT FLUSH, a failover)
            await self._replicas_connection().execute("SCRIPT", "LOAD", script.source)
            reply, confirmed = await self._in_next_group(command, script, durability)
        durability.settle(script.sha, int(confirmed), f"Redis at {redacted(self.url)}")
        return reply

    def _replicas_connection(self) -> FastRedis:
        if self._waiting_for_replicas is None:
            self._waiting_for_replicas = FastRedis(self.url)
        return self._waiting_for_replicas

    async def _in_next_group(
        self, command: tuple[Any, ...], script: Lua, durability: Durability
    ) -> tuple[Any, Any]:
        """The reply of ``command`` and of the WAIT of the group of writes it went in."""
        done = asyncio.get_running_loop().create_future()
        self._next_group.append((command, script, done))
        if self._sending_groups is None or self._sending_groups.done():
            self._sending_groups = asyncio.create_task(self._send_groups(durability))
        return cast("tuple[Any, Any]", await done)

    async def _send_groups(self, durability: Durability) -> None:
        while self._next_group:
            group, self._next_group = self._next_group, []
            connection = self._replicas_connection()
            try:
                loads: list[asyncio.Future[Any]] = []
                for script in {script.sha: script for _, script, _ in group}.values():
                    loads += await connection._send(script=script)  # where not loaded yet
                sent = await connection._send(*(command for command, _, _ in group),
                                              durability.command)  # fmt: skip
            except Exception as e:  # lost before all went out
                _tell(group, [e] * len(group), None, e)
                continue
            replies = await asyncio.gather(*loads, *sent, return_exceptions=True)
            loaded, wrote, confirmed = replies[: len(loads)], replies[len(loads) : -1], replies[-1]
            trouble = next((r for r in [*loaded, confirmed] if isinstance(r, BaseException)), None)
            _tell(group, wrote, confirmed, trouble)

    async def _connect(self) -> _Protocol:
        if self._protocol is None or self._protocol.lost is not None:
            self._protocol = await self._open()
        return self._protocol

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self.options
        protocol: _Protocol
        if self._sentinels is not None:  # MasterNotFoundError (a ConnectionError) if none can say
            host, port = await sentinel.master_address(self._sentinels)
        else:
            host, port = options.get("host", "localhost"), options.get("port", 6379)
        try:
            async with asyncio.timeout(5):
                made = partial(_Protocol, not self.blocking)
                if self.unix:
                    _, protocol = await loop.create_unix_connection(made, options["path"])
                else:
                    _, protocol = await loop.create_connection(
                        made, host, port, ssl=self._tls_context() if self.tls else None
                    )
        except (OSError, TimeoutError) as e:
            raise redis.ConnectionError(f"cannot connect to Redis ({e})") from e
        if not self.unix and options.get("socket_keepalive", True):
            # A peer that vanished (host down, a NAT or firewall that dropped the flow)
            # is noticed by the kernel rather than by a caller's timeout.
            sock = protocol.transport.get_extra_info("socket")  # type: ignore[union-attr]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        if options.get("password") is not None:
            auth = [options["username"]] if options.get("username") else []
            await self._setup(protocol, "AUTH", *auth, options["password"])
        if options.get("db"):
            await self._setup(protocol, "SELECT", options["db"])
        return protocol

    def _tls_context(self) -> ssl.SSLContext:
        """The TLS settings of the URL, applied as redis-py applies them. Built for each
        connection, so that renewed certificate files are read when it reconnects."""
        options = self.options
        context = ssl.create_default_context()
        verify_mode = CERT_REQS[options.get("ssl_cert_reqs", "required")]
        # Before verify_mode: a context that checks host names refuses CERT_NONE.
        context.check_hostname = verify_mode != ssl.CERT_NONE and bool(
            options.get("ssl_check_hostname", True)
        )
        context.verify_mode = verify_mode
        for flag in options.get("ssl_include_verify_flags") or ():
            context.verify_flags |= flag
        for flag in options.get("ssl_exclude_verify_flags") or ():
            context.verify_flags &= ~flag
        cafile, capath = options.get("ssl_ca_certs"), options.get("ssl_ca_path")
        cadata = options.get("ssl_ca_data")
        try:
            if certfile := options.get("ssl_certfile"):  # the key may be in it too
                context.load_cert_chain(
                    certfile, options.get("ssl_keyfile"), options.get("ssl_password")
                )
            if cafile or capath or cadata:
                context.load_verify_locations(cafile, capath, cadata)
        except OSError as e:  # ssl.SSLError too: a file that is not a certificate or key
            named = ", ".join(f"{name}={options[name]}" for name in TLS_FILES if name in options)
            raise OSError(f"cannot load the TLS files of the Redis URL ({named}): {e}") from e
        if options.get("ssl_min_version") is not None:
            context.minimum_version = ssl.TLSVersion(options["ssl_min_version"])
        if options.get("ssl_ciphers"):
            context.set_ciphers(options["ssl_ciphers"])
        return context

    @staticmethod
    async def _setup(protocol: _Protocol, *args: Any) -> None:
        try:
            await protocol.send(args)
        except redis.ResponseError as e:
            protocol.transport.abort()  # type: ignore[union-attr]
            raise redis.ConnectionError(f"Redis refused {args[0]} ({e})") from e

    async def first_of(self, keys: list[bytes], timeout: float) -> Any:
        """BLPOP on ``keys``: on a cluster, lists of several slots are waited on together
        (cluster.FirstOf)."""
        if self._cluster is None or len({key_slot(key) for key in keys}) < 2:
            return await self.execute("BLPOP", *keys, timeout)
        if self._first_of is None:
            self._first_of = cluster.FirstOf(partial(FastRedis, self.url, blocking=True))
        return await self._first_of(keys, timeout)

    def close(self) -> None:
        """Drop the connection (a command blocked in Redis, a BLPOP, dies with it); the
        next command opens a new one."""
        if self._cluster is not None:
            self._cluster.close()
        if self._first_of is not None:
            self._first_of.close()
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
        if self._waiting_for_replicas is not None:
            self._waiting_for_replicas.close()
