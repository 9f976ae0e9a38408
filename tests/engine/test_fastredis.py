"""The lean pipelined connection of the hot path, against real redis-servers."""

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable

import pytest
import redis

from worker.protocol.fastredis import FastRedis
from worker.protocol.scripts import Lua
from worker.protocol.servers import RedisServer

ECHO = Lua("echo", "return {KEYS[1], ARGV[1], tonumber(ARGV[2]) + 1}")


async def test_pipelined_callers_each_get_their_own_reply(redis_url):
    fast = FastRedis(redis_url)
    replies = await asyncio.gather(*(fast.run(ECHO, [f"k{i}"], [f"v{i}", i]) for i in range(500)))
    assert replies[7] == [b"k7", b"v7", 8]
    assert [r[2] for r in replies] == list(range(1, 501))
    fast.close()


async def test_error_replies_raise_and_the_connection_stays_in_step(redis_url):
    fast = FastRedis(redis_url)
    with pytest.raises(redis.ResponseError, match="unknown command"):
        await fast.execute("NO-SUCH-COMMAND")
    assert await fast.execute("PING") == b"PONG"
    fast.close()


async def test_a_script_unknown_to_the_server_is_loaded_and_run(redis_url):
    fast = FastRedis(redis_url)
    once = Lua("fresh", "return 'fresh ' .. ARGV[1]")  # never loaded before
    assert await fast.run(once, [], ["run"]) == b"fresh run"
    fast.close()


async def test_password_and_database_from_the_url(tmp_path):
    server = RedisServer(tmp_path, password="s3cret").start()
    try:
        fast = FastRedis(server.url_of(3))
        await fast.execute("SET", "where", "db3")
        assert redis.Redis.from_url(server.url_of(3)).get("where") == b"db3"
        assert redis.Redis.from_url(server.url_of(0)).get("where") is None
        fast.close()
        wrong = FastRedis(f"redis://:wrong@127.0.0.1:{server.port}/0")
        with pytest.raises(redis.ConnectionError, match="refused AUTH"):
            await wrong.execute("PING")
    finally:
        server.stop()


async def test_a_lost_connection_fails_its_callers_then_reconnects(tmp_path):
    server = RedisServer(tmp_path).start()
    fast = FastRedis(server.url)
    try:
        assert await fast.execute("PING") == b"PONG"
        server.stop()
        with pytest.raises(redis.ConnectionError):
            await fast.execute("PING")
        with pytest.raises(redis.ConnectionError, match="cannot connect"):
            await fast.execute("PING")
        server.start()
        assert await fast.execute("PING") == b"PONG"
    finally:
        fast.close()
        server.stop()


async def test_a_cancelled_caller_does_not_shift_the_replies(redis_url):
    fast = FastRedis(redis_url)
    slow = asyncio.create_task(fast.execute("BLPOP", "fastredis-test-nothing", 0.2))
    await until(lambda: fast._protocol is not None and fast._protocol.waiting)  # it went out
    slow.cancel()  # its reply still comes, and must go nowhere
    assert await fast.execute("ECHO", "mine") == b"mine"
    fast.close()


async def test_no_answer_in_time_fails_every_waiting_caller_and_drops_the_connection(
    monkeypatch,
):
    import worker.protocol.fastredis

    monkeypatch.setattr(worker.protocol.fastredis, "SOCKET_TIMEOUT", 0.3)
    accepted = []

    async def silent(reader, writer):  # takes commands, never answers
        accepted.append(writer)
        await reader.read(-1)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fast = FastRedis(f"redis://127.0.0.1:{port}/0")
    try:
        began = asyncio.get_running_loop().time()
        first = asyncio.create_task(fast.execute("PING"))
        await asyncio.sleep(0.1)  # the scenario itself: the second command goes out later
        second = asyncio.create_task(fast.execute("PING"))
        for caller in (first, second):
            with pytest.raises(redis.TimeoutError, match=r"no answer from Redis in 0\.3s"):
                await caller
        assert 0.3 <= asyncio.get_running_loop().time() - began < 1.0
        with pytest.raises(redis.TimeoutError):
            await fast.execute("PING")  # on a new connection
        assert len(accepted) == 2
    finally:
        fast.close()
        server.close()


async def test_slow_answers_within_the_timeout_do_not_trip_it(monkeypatch, redis_url):
    import worker.protocol.fastredis

    monkeypatch.setattr(worker.protocol.fastredis, "SOCKET_TIMEOUT", 0.5)
    fast = FastRedis(redis_url)
    try:
        # Each answer takes 0.1-0.2 s (Redis times blocked commands out at its 10 Hz);
        # together they outlast the timeout, each one does not.
        began = asyncio.get_running_loop().time()
        for _ in range(6):
            assert await fast.execute("BLPOP", "fastredis-test-nothing", 0.1) is None
        assert asyncio.get_running_loop().time() - began > 0.5
    finally:
        fast.close()


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds, the event loop running meanwhile."""
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def answering_pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(4096):  # one PING at a time, in these tests
        writer.write(b"+PONG\r\n")
    writer.close()


@pytest.mark.parametrize(("query", "kept_alive"), [("", True), ("?socket_keepalive=false", False)])
async def test_tcp_connections_are_kept_alive_unless_the_url_says_not(query, kept_alive):
    # Without keepalive a peer that vanished (host down, a NAT that forgot the flow) leaves
    # an idle connection open for ever.
    server = await asyncio.start_server(answering_pong, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fast = FastRedis(f"redis://127.0.0.1:{port}/0{query}")
    try:
        assert await fast.execute("PING") == b"PONG"
        sock = fast._protocol.transport.get_extra_info("socket")
        assert bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)) is kept_alive
    finally:
        fast.close()
        server.close()


async def test_unix_socket_connections_take_no_keepalive(tmp_path):
    server = await asyncio.start_unix_server(answering_pong, tmp_path / "redis.sock")
    fast = FastRedis(f"unix://{tmp_path / 'redis.sock'}")
    try:
        assert await fast.execute("PING") == b"PONG"
        sock = fast._protocol.transport.get_extra_info("socket")
        assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
    finally:
        fast.close()
        server.close()


@pytest.fixture
async def stoppable(tmp_path) -> AsyncIterator[tuple[RedisServer, FastRedis]]:
    """A redis-server of the test's own (to stop with SIGSTOP) and a connection to it."""
    server = RedisServer(tmp_path).start()
    fast = FastRedis(server.url)
    try:
        assert await fast.execute("PING") == b"PONG"
        yield server, fast
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        fast.close()
        server.stop()


PAYLOAD = b"x" * 65536


async def test_senders_wait_while_redis_reads_nothing_then_all_get_their_replies(stoppable):
    server, fast = stoppable
    count = 400  # more than the kernel's socket buffers take while Redis reads nothing
    protocol = fast._protocol
    _, high_water = protocol.transport.get_write_buffer_limits()
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        senders = [
            asyncio.create_task(fast.execute("ECHO", b"%d:" % i + PAYLOAD)) for i in range(count)
        ]
        # Until the socket's buffers are full and the transport's holds more than it wants.
        await until(lambda: protocol.transport.get_write_buffer_size() > high_water)
        # Every sender has had its turn: the buffer holds at most one command over its
        # limit, and the senders beyond it wait, their commands not sent.
        assert protocol.transport.get_write_buffer_size() <= high_water + len(PAYLOAD) + 64
        assert len(protocol.waiting) < count
        senders[-1].cancel()  # a waiting sender may give up, unsent, without harm
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    async with asyncio.timeout(10):
        replies = await asyncio.gather(*senders[:-1])
    assert replies == [b"%d:" % i + PAYLOAD for i in range(count - 1)]
    assert senders[-1].cancelled()
    assert await fast.execute("PING") == b"PONG"


async def test_senders_waiting_to_write_fail_when_the_connection_is_lost(stoppable):
    server, fast = stoppable
    protocol = fast._protocol
    os.kill(server.process.pid, signal.SIGSTOP)
    senders = [asyncio.create_task(fast.execute("ECHO", PAYLOAD)) for _ in range(400)]
    await until(lambda: protocol.paused)
    protocol.transport.abort()
    async with asyncio.timeout(5):
        outcomes = await asyncio.gather(*senders, return_exceptions=True)
    assert all(isinstance(outcome, redis.ConnectionError) for outcome in outcomes)
