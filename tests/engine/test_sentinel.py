"""Redis Sentinel (``redis+sentinel://``): the URL and what ``manage.py check`` says of it,
every client kind finding the master through the sentinels and following a failover, and
the hot path's connection leaving a server that turned replica. The failover under a real
worker's load is tests/faults/test_sentinel.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from django.core.checks import Error
from django.tasks import task_backends

from tests.conftest import tasks_setting
from tests.engine import tasks
from tests.engine.helpers import eventually
from tests.engine.test_tls import ping
from tests.sentinel import SERVICE, SentinelRedis, needed_redis_binary
from worker import config
from worker.checks import redis_warnings
from worker.exceptions import BrokerUnavailable
from worker.protocol.connection import async_client, redacted, sync_client, unreachable
from worker.protocol.fastredis import FastRedis
from worker.protocol.sentinel import parse, sentinel_url
from worker.protocol.servers import RedisServer


@pytest.fixture
def topology(tmp_path) -> Iterator[SentinelRedis]:
    started = SentinelRedis(tmp_path / "redis", needed_redis_binary()).start()
    yield started
    started.stop()


def url_errors(url: str) -> list[str]:
    _, errors = config.read("default", {"OPTIONS": {"url": url}}, {"url": url}, frozenset())
    return [f"{e.msg} [{e.id}]" for e in errors if isinstance(e, Error)]


# The URL


def test_the_url_names_the_sentinels_the_master_and_its_credentials():
    found = parse(
        "redis+sentinel://jobs:p%40ss@10.0.0.1:26380,[::1],sentinel-c/my-master/3"
        "?socket_keepalive=false&sentinel_password=s3cret&ssl_ca_certs=/ca.pem"
    )
    assert found.addresses == (("10.0.0.1", 26380), ("::1", 26379), ("sentinel-c", 26379))
    assert found.service == "my-master" and found.db == 3 and not found.tls
    assert found.master == {"username": "jobs", "password": "p@ss", "db": 3,
                            "socket_keepalive": False, "ssl_ca_certs": "/ca.pem"}  # fmt: skip
    # The sentinels' own password, the query's options, never the master's credentials.
    assert found.sentinel == {"password": "s3cret", "socket_keepalive": False,
                              "ssl_ca_certs": "/ca.pem"}  # fmt: skip
    assert parse("rediss+sentinel://h/m").tls


def test_sentinel_url_quotes_what_it_is_given():
    url = sentinel_url(["h1:26379", "h2:26380"], "my master", username="u", password="p@/?")
    assert url == "redis+sentinel://u:p%40%2F%3F@h1:26379,h2:26380/my%20master/0"
    assert parse(url).master["password"] == "p@/?" and parse(url).service == "my master"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://h1:26379", "names no master"),
        ("redis+sentinel://h1:26379/", "names no master"),
        ("redis+sentinel://h1:26379,/m", "names a sentinel without a host"),
        ("redis+sentinel://h1:99999/m", "names sentinel 'h1:99999', whose port is not"),
        ("redis+sentinel://h1:port/m", "names sentinel 'h1:port', whose port is not"),
        ("redis+sentinel://h1/m/zero", "names database 'zero'"),
        ("redis+sentinel://h1/m?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
        ("redis+sentinel://h1/m?unknown_option=1", "unexpected keyword argument"),
    ],
)
def test_a_bad_sentinel_url_is_named_by_the_check(url, problem):
    [message] = url_errors(url)
    assert problem in message and message.endswith("[worker.E003]")


def test_the_check_never_shows_the_passwords_of_a_sentinel_url():
    [message] = url_errors("redis+sentinel://u:hunter2@h1:bad/m?sentinel_password=hunter3")
    assert "hunter" not in message
    assert "redis+sentinel://u:***@h1:bad/m?sentinel_password=***" in message


def test_durability_must_be_async_or_replicated_with_a_timeout_it_can_wait():
    options = {"durability": "sync", "durability_timeout": 30}
    _, errors = config.read("default", {}, options, frozenset())
    messages = {e.msg for e in errors}
    assert "OPTIONS['durability'] must be one of 'async', 'replicated', not 'sync'" in messages
    assert "OPTIONS['durability_timeout'] must be 0.001 to 5 seconds, not 30" in messages


# Every client through the sentinels


async def test_every_client_finds_the_master_and_follows_a_failover(topology):
    url = topology.url()
    blocking, aclient, fast = sync_client(url, 2), async_client(url, 2), FastRedis(url)
    clients = {
        "sync": lambda value: asyncio.to_thread(blocking.set, "sync", value),
        "async": lambda value: aclient.set("async", value),
        "fast": lambda value: fast.execute("SET", "fast", value),
    }
    try:
        for write in clients.values():
            await write("before")
        topology.pair.master.process.kill()
        topology.pair.master.process.wait()
        for name, write in clients.items():

            async def written(write=write) -> bool:
                try:
                    await write("after")
                except redis.ConnectionError:  # the master is down, not yet replaced
                    return False
                return True

            await until(written, 30, f"the {name} client to write to the new master")
        promoted = redis.Redis(port=topology.pair.replica.port)
        assert promoted.mget("sync", "async", "fast") == [b"after"] * 3
        promoted.close()
    finally:
        blocking.close()
        await aclient.aclose()
        fast.close()


async def test_the_masters_and_the_sentinels_passwords_log_in_and_stay_hidden(tmp_path):
    guarded = SentinelRedis(tmp_path, needed_redis_binary(), password="master-secret",
                            sentinel_password="sentinel-secret").start()  # fmt: skip
    url = guarded.url()
    try:
        for kind in ("sync", "async", "fast"):
            await ping(kind, url)  # asserts PONG
            for wrong in (url.replace("master-secret", "nope"), url.replace("sentinel-", "no")):
                with pytest.raises(redis.ConnectionError) as failed:
                    await ping(kind, wrong)
                message = unreachable(wrong, failed.value)
                assert message.startswith(f"Redis at {redacted(wrong)} is unreachable (")
                assert "secret" not in message and "nope" not in message, message
    finally:
        guarded.stop()


async def until(condition, timeout: float, what: str) -> None:
    """Await ``condition()`` until it is true, for up to ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    "write",
    [("SET", "k", "2"), ("EVAL", "return redis.call('SET', KEYS[1], '2')", 1, "k")],
    ids=["command", "script"],  # Redis 6 wraps a script's refusal: ERR ... -READONLY ...
)
async def test_the_hot_path_leaves_a_server_that_turned_replica(tmp_path, write):
    server = RedisServer(tmp_path / "a").start()
    other = RedisServer(tmp_path / "b").start()
    admin = redis.Redis(port=server.port)
    fast = FastRedis(server.url)
    try:
        await fast.execute("SET", "k", "1")
        first = fast._protocol
        admin.replicaof("127.0.0.1", other.port)  # as a failover demotes a master
        with pytest.raises(redis.ResponseError, match="READONLY"):
            await fast.execute(*write)
        await eventually(lambda: first.transport.is_closing(), what="the old connection to close")
        admin.replicaof("no", "one")  # the master again, as a new one would be
        assert await fast.execute("SET", "k", "3") == b"OK"
        assert fast._protocol is not first
    finally:
        fast.close()
        admin.close()
        other.stop()
        server.stop()


# What check --deploy says


def test_check_deploy_names_sentinels_that_do_not_answer_or_know_the_master(
    topology, settings, tasks_prefix
):
    dead = topology.sentinels[0]
    dead.stop()
    hosts = ",".join(f"127.0.0.1:{s.port}" for s in topology.sentinels)
    settings.TASKS = tasks_setting(f"redis+sentinel://{hosts}/{SERVICE}/0", tasks_prefix)
    [found] = [w.msg for w in redis_warnings(task_backends["default"]) if w.id == "worker.W007"]
    assert found.startswith(f"Redis at redis+sentinel://{hosts}/{SERVICE}/0: sentinel "
                            f"127.0.0.1:{dead.port} does not answer (")  # fmt: skip

    settings.TASKS = tasks_setting(f"redis+sentinel://{hosts}/other/0", tasks_prefix)
    unknown = [w.msg for w in redis_warnings(task_backends["default"])]
    assert any("does not watch a master named 'other'" in message for message in unknown)


def test_check_deploy_warns_of_replicated_durability_without_a_replica(settings, tasks_prefix):
    settings.TASKS = tasks_setting(
        settings.TASKS["default"]["OPTIONS"]["url"], tasks_prefix, durability="replicated"
    )
    [found] = [w for w in redis_warnings(task_backends["default"]) if w.id == "worker.W006"]
    assert "has no replica connected, and OPTIONS['durability'] is 'replicated'" in found.msg


async def test_an_enqueue_no_sentinel_finds_a_master_for_stored_nothing(
    topology, settings, tasks_prefix
):
    url = topology.url("nosuchmaster")
    settings.TASKS = tasks_setting(url, tasks_prefix)
    for enqueue in (tasks.add.enqueue, tasks.add.aenqueue):
        with pytest.raises(BrokerUnavailable) as failed:
            if asyncio.iscoroutine(outcome := enqueue(1, 2)):
                await outcome
        assert not failed.value.maybe_stored
        message = str(failed.value)
        assert f"Redis at {url} is unreachable (No master found for 'nosuchmaster': no " in message
        assert "nothing was stored" in message and "<redis" not in message
