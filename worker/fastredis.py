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
import hashlib
import ssl
from collections import deque
from typing import Any

import hiredis
import redis
from redis.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import NoScriptError

from worker.connection import SOCKET_TIMEOUT


class Lua:
    """A script and its SHA1, for EVALSHA."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: deque[asyncio.Future] = deque()
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future = self.waiting.popleft()
            if future.done():  # its caller gave up (cancelled, timed out)
                continue
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                error = NoScriptError if message.startswith("NOSCRIPT") else redis.ResponseError
                future.set_exception(error(message))
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = redis.ConnectionError(f"connection to Redis lost ({exc or 'closed'})")
        while self.waiting:
            future = self.waiting.popleft()
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
        protocol = await self._connect()
        future = asyncio.get_running_loop().create_future()
        protocol.waiting.append(future)
        protocol.transport.write(hiredis.pack_command(args))
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT):
                return await future
        except TimeoutError:
            # No answer in time: the connection cannot be trusted to stay in step.
            protocol.transport.abort()
            raise redis.TimeoutError(f"no answer from Redis in {SOCKET_TIMEOUT}s") from None

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
        future = asyncio.get_running_loop().create_future()
        protocol.waiting.append(future)
        protocol.transport.write(hiredis.pack_command(args))
        try:
            await future
        except redis.ResponseError as e:
            protocol.transport.abort()
            raise redis.ConnectionError(f"Redis refused {args[0]} ({e})") from e

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
