"""The lean pipelined connection of the hot path, against real redis-servers."""

import asyncio

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
    await asyncio.sleep(0.05)
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
        await asyncio.sleep(0.1)
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
