"""Redis Sentinel (``redis+sentinel://``): the URL and what ``manage.py check`` says of it,
every client kind finding the master through the sentinels and following a failover, and
the hot path's connection leaving a server that turned replica. The failover under a real
worker's load is tests/faults/test_sentinel.py."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import pytest
import redis
from django.core.checks import Error
from django.tasks import task_backends
from redis.connection import parse_url

from tests.conftest import tasks_setting
from tests.engine import tasks
from tests.engine.helpers import eventually
from tests.engine.test_tls import CLIENTS, ping
from tests.processes import runworker, stop, wait_until, worker_env
from tests.sentinel import SERVICE, SentinelRedis, needed_redis_binary
from worker import config
from worker.checks import redis_warnings
from worker.exceptions import BrokerUnavailable
from worker.protocol.connection import async_client, redacted, sync_client, unreachable
from worker.protocol.fastredis import FastRedis
from worker.protocol.sentinel import parse, sentinel_url
from worker.protocol.servers import RedisServer
from worker.waiting import afinished


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


SECRET = "zq7wk3"
PIECES = [
    f"redis+sentinel://:{SECRET[:3]}?{SECRET[3:]}@h1:26379/{SERVICE}/0",  # a '?' not quoted
    f"redis+sentinel://jobs:{SECRET[:3]}#{SECRET[3:]}@h1/{SERVICE}",  # a '#' not quoted
    f"redis://h1:6379/0?pass%77ord={SECRET}",  # a parameter's name percent-encoded
    f"redis+sentinel://h1/{SERVICE}/0?sentinel%5Fpassword={SECRET}",
]


@pytest.mark.parametrize("url", PIECES)
def test_no_message_shows_a_piece_of_a_password(url):
    said = [redacted(url), *url_errors(url)]
    assert not any(SECRET[:3] in message for message in said), said


def test_a_percent_encoded_secret_parameter_is_one_redis_py_uses():
    """(Why the last two URLs above hold a secret.)"""
    assert parse_url(PIECES[2])["password"] == SECRET
    assert parse(PIECES[3]).sentinel["password"] == SECRET


def test_a_password_with_reserved_characters_not_quoted_is_read_whole():
    assert parse(PIECES[0]).master["password"] == f"{SECRET[:3]}?{SECRET[3:]}"
    assert parse(PIECES[1]).master == {"username": "jobs", "password": f"{SECRET[:3]}#{SECRET[3:]}",
                                       "db": 0}  # fmt: skip


def test_the_objects_a_url_is_read_into_show_no_password_in_their_repr():
    """A repr is what a traceback's locals show (Django's debug page, Sentry's frames)."""
    url = f"redis+sentinel://jobs:{SECRET}@h1/{SERVICE}/0?sentinel_password={SECRET}"
    assert SECRET not in repr(parse(url))
    options = config.Options(url=f"redis://jobs:{SECRET}@h1:6379/0", metrics_token=SECRET)
    assert SECRET not in repr(options) and "redis://jobs:***@h1:6379/0" in repr(options)


def test_the_masters_credentials_in_the_query_are_not_the_sentinels():
    found = parse(f"redis+sentinel://h1/{SERVICE}/0?username=jobs&password={SECRET}")
    assert found.master["username"] == "jobs" and found.master["password"] == SECRET
    assert "username" not in found.sentinel and "password" not in found.sentinel


def test_durability_must_be_async_or_replicated_with_a_timeout_it_can_wait():
    options = {"durability": "sync", "durability_timeout": 30}
    _, errors = config.read("default", {}, options, frozenset())
    messages = {e.msg for e in errors}
    assert "OPTIONS['durability'] must be one of 'async', 'replicated', not 'sync'" in messages
    assert "OPTIONS['durability_timeout'] must be 0.001 to 5 seconds, not 30" in messages


# Every client through the sentinels


class Clients:
    """The engine's three kinds of client of ``url`` (redis-py's blocking and asyncio
    ones, the hot path's), each as a write of a value to a key of its own name."""

    def __init__(self, url: str) -> None:
        self.blocking, self.aclient = sync_client(url, 2), async_client(url, 2)
        self.fast = FastRedis(url)
        self.writes = {
            "sync": lambda value: asyncio.to_thread(self.blocking.set, "sync", value),
            "async": lambda value: self.aclient.set("async", value),
            "fast": lambda value: self.fast.execute("SET", "fast", value),
        }

    async def close(self) -> None:
        self.blocking.close()
        await self.aclient.aclose()
        self.fast.close()


async def test_every_client_finds_the_master_and_follows_a_failover(topology):
    clients = Clients(topology.url())
    try:
        for write in clients.writes.values():
            await write("before")
        topology.pair.master.process.kill()
        topology.pair.master.process.wait()
        for name, write in clients.writes.items():

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
        await clients.close()


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


@pytest.mark.parametrize("client", CLIENTS)
async def test_the_masters_user_in_the_query_logs_in_to_the_master_only(topology, client):
    for server in (topology.pair.master, topology.pair.replica):
        root = redis.Redis(port=server.port)
        root.acl_setuser("jobs", enabled=True, passwords=["+jobs-secret"], keys=["*"],
                         channels=["*"], commands=["+@all"])  # fmt: skip
        root.close()
    hosts = ",".join(f"127.0.0.1:{s.port}" for s in topology.sentinels)
    await ping(client, f"redis+sentinel://jobs:jobs-secret@{hosts}/{SERVICE}/0")
    await ping(client, f"redis+sentinel://{hosts}/{SERVICE}/0?username=jobs&password=jobs-secret")


async def test_a_wrong_sentinel_password_is_said_as_such(tmp_path):
    guarded = SentinelRedis(tmp_path, needed_redis_binary(), password="master-secret",
                            sentinel_password="sentinel-secret").start()  # fmt: skip
    wrong = guarded.url().replace("sentinel-secret", "not-it")
    try:
        for client in CLIENTS:
            with pytest.raises(redis.ConnectionError) as failed:
                await ping(client, wrong)
            message = unreachable(wrong, failed.value)
            assert (
                "the sentinels refused the URL's login to them (invalid username-password "
                "pair" in message
            ), f"{client}: {message}"
            assert "not-it" not in message
    finally:
        guarded.stop()


async def test_every_client_follows_a_failover_from_a_hung_master(topology):
    """A master that hangs (SIGSTOP: a frozen host, a partition) is left for the one the
    sentinels promote within about SOCKET_TIMEOUT: a retry of a command asks the
    sentinels again rather than reconnecting to the hung one."""
    clients = Clients(topology.url())
    master = topology.pair.master.process
    try:
        for write in clients.writes.values():
            await write("before")
        master.send_signal(signal.SIGSTOP)
        await asyncio.to_thread(
            wait_until, lambda: topology.master_port() == topology.pair.replica.port, 30,
            "the sentinels to promote the replica",
        )  # fmt: skip
        promoted = time.monotonic()

        async def written(name: str, write) -> tuple[str, float]:
            while True:  # as the worker's outage handling does: try again until it works
                try:
                    await write("after")
                    return name, time.monotonic() - promoted
                except (redis.ConnectionError, redis.TimeoutError):
                    await asyncio.sleep(0.05)

        took = dict(await asyncio.gather(*(written(n, w) for n, w in clients.writes.items())))
        # SOCKET_TIMEOUT (10 s) for a command sent to the hung master, then the new one.
        assert max(took.values()) < 15, {name: f"{s:.1f} s" for name, s in took.items()}
    finally:
        master.kill()  # (a stopped process takes no SIGTERM)
        master.wait()
        await clients.close()


async def polled(backend, job_id: str, timeout: float):
    """The job's result once it has finished, read again and again (Redis may not answer
    for a while: the hot path's connection to the hung master times out first)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                result = await backend.aget_result(job_id)
            except BrokerUnavailable:
                result = None
            if result is not None and result.is_finished:
                return result
            await asyncio.sleep(0.05)


@pytest.fixture
def on_sentinels(topology, settings, tasks_prefix) -> SentinelRedis:
    """TASKS on the sentinels' master; set before ``backend`` is made."""
    settings.TASKS = tasks_setting(topology.url(), tasks_prefix)
    return topology


async def test_a_waiter_hears_of_a_job_ended_on_the_master_that_replaced_a_hung_one(
    on_sentinels, tasks_prefix, backend, tmp_path
):
    """The waiters' pub/sub connection leaves a master that hangs once the sentinels name
    another, though it says nothing."""
    topology = on_sentinels
    result = await tasks.add.aenqueue(2, 3)
    waiter = asyncio.create_task(afinished(result, timeout=90))
    keys = backend.broker.keys
    old = redis.Redis(port=topology.pair.master.port)

    def watched() -> bool:
        [(_, subscribers)] = old.pubsub_numsub(keys.events("default"))
        return subscribers == 1 and bool(old.sismember(keys.waited("default"), result.id))

    try:
        await asyncio.to_thread(wait_until, watched, 10, "the waiter to subscribe and mark")
        # A write of this connection's own, so that WAIT covers every write before it: the
        # job, and the mark that it is waited for, are on the replica.
        old.set(f"{tasks_prefix}:probe", 1)
        assert old.execute_command("WAIT", 1, 5000) == 1
    finally:
        old.close()
    master = topology.pair.master.process
    master.send_signal(signal.SIGSTOP)
    worker = None
    try:
        await asyncio.to_thread(
            wait_until, lambda: topology.master_port() == topology.pair.replica.port, 30,
            "the sentinels to promote the replica",
        )  # fmt: skip
        # A worker of its own, started now: it finds the new master at once.
        worker = runworker(worker_env(topology.url(), tasks_prefix), tmp_path / "worker.log",
                           "--no-scheduler")  # fmt: skip
        # Read by polling (another result object): the job ran on the new master.
        ended = await polled(backend, result.id, timeout=40)
        assert ended.return_value == 5
        try:
            await asyncio.wait_for(asyncio.shield(waiter), 10)
        except TimeoutError:
            pytest.fail(
                "the job ended on the new master 10 s ago and its waiter has not heard: "
                "its pub/sub connection is still to the hung master"
            )
    finally:
        if worker is not None:
            stop(worker)
        master.kill()  # (a stopped process takes no SIGTERM)
        master.wait()
        waiter.cancel()


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


def replicas_down(topology: SentinelRedis) -> bool:
    """Whether every sentinel takes every replica it knows for down (and knows one)."""
    for sentinel in topology.sentinels:
        client = redis.Redis(port=sentinel.port, socket_timeout=1, decode_responses=True)
        try:
            views = client.sentinel_slaves(SERVICE)
        finally:
            client.close()
        if not views or not all(view["is_sdown"] for view in views):
            return False
    return True


def test_check_deploy_warns_when_the_only_replica_is_down(topology, settings, tasks_prefix):
    settings.TASKS = tasks_setting(topology.url(), tasks_prefix)
    topology.pair.replica.process.kill()
    topology.pair.replica.process.wait()
    wait_until(lambda: replicas_down(topology), 20, "the sentinels to take the replica for down")
    found = [w.msg for w in redis_warnings(task_backends["default"]) if w.id == "worker.W007"]
    assert any("nothing to promote" in message for message in found), found


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
