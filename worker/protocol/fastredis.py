"""A lean asyncio Redis connection for the engine's hot path: enqueue, fetch and ack.

redis.asyncio spends most of a short command's time in its own machinery (a pool with a
lock, retries, packing in Python, observability hooks): several times what the round trip
itself costs. The hot path needs little of it: one connection per event loop, shared by
every caller, commands pipelined as they come (Redis answers in order, so a queue of
futures pairs replies with callers), packed and parsed by hiredis. Blocking commands never
go here, so no caller waits behind another one's block.

Errors are redis-py's: a lost connection raises ``redis.ConnectionError`` (the engine's
outage handling applies unchanged), an error reply ``redis.ResponseError``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any

import hiredis
import redis
from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import NoScriptError

from worker.protocol.connection import SOCKET_TIMEOUT
from worker.protocol.scripts import Lua


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        # Callers waiting for a reply, in the order their commands went out, each with the
        # loop time it went out at: the oldest is the one a watchdog times.
        self.waiting: deque[tuple[asyncio.Future, float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, args: tuple) -> asyncio.Future:
        """Write one command; the future gets its reply."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.waiting.append((future, loop.time()))
        self.transport.write(hiredis.pack_command(args))
        if self._watchdog is None:
            self._watchdog = loop.call_later(SOCKET_TIMEOUT, self._check)
        return future

    def _check(self) -> None:
        # One timer per connection rather than one per command (a timer costs more than
        # the rest of a command's Python): it looks at the oldest unanswered command.
        self._watchdog = None
        if not self.waiting or self.transport is None:
            return
        loop = asyncio.get_running_loop()
        late = loop.time() - self.waiting[0][1]
        if late >= SOCKET_TIMEOUT:
            # No answer in time: the connection cannot be trusted to stay in step.
            self.lost = redis.TimeoutError(f"no answer from Redis in {SOCKET_TIMEOUT}s")
            self.transport.abort()
        else:
            self._watchdog = loop.call_later(SOCKET_TIMEOUT - late, self._check)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future, _ = self.waiting.popleft()
            if future.done():  # its caller gave up (cancelled)
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                error = NoScriptError if message.startswith("NOSCRIPT") else redis.ResponseError
                future.set_exception(error(message))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.lost is None:
            self.lost = redis.ConnectionError(f"connection to Redis lost ({exc or 'closed'})")
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)


class FastRedis:
    """One pipelined connection to the Redis at ``url``, opened on first use and again
    after it is lost."""

    def __init__(self, url: str) -> None:
        self.options = parse_url(url)
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply; redis.TimeoutError if none comes within
        SOCKET_TIMEOUT (the connection is then dropped, and opened again on next use)."""
        protocol = await self._connect()
        return await protocol.send(args)

    async def run(self, script: Lua, keys: list, args: list) -> Any:
        """EVALSHA, loading the script first if this server does not know it yet."""
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self.execute("SCRIPT", "LOAD", script.source)
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def _connect(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        async with self._connecting:
            if self._protocol is not None and self._protocol.lost is None:
                return self._protocol
            self._protocol = await self._open()
            return self._protocol

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self.options
        kind = options.get("connection_class")
        try:
            async with asyncio.timeout(5):
                if kind is UnixDomainSocketConnection:
                    _, protocol = await loop.create_unix_connection(_Protocol, options["path"])
                else:
                    context = ssl.create_default_context() if kind is SSLConnection else None
                    _, protocol = await loop.create_connection(
                        _Protocol, options.get("host", "localhost"), options.get("port", 6379),
                        ssl=context,
                    )  # fmt: skip
        except (OSError, TimeoutError) as e:
            raise redis.ConnectionError(f"cannot connect to Redis ({e})") from e
        if options.get("password") is not None:
            auth = [options["username"]] if options.get("username") else []
            await self._setup(protocol, "AUTH", *auth, options["password"])
        if options.get("db"):
            await self._setup(protocol, "SELECT", options["db"])
        return protocol

    @staticmethod
    async def _setup(protocol: _Protocol, *args: Any) -> None:
        try:
            await protocol.send(args)
        except redis.ResponseError as e:
            protocol.transport.abort()
            raise redis.ConnectionError(f"Redis refused {args[0]} ({e})") from e

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
