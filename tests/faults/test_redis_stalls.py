"""Redis away for most of a lease (restarted, paused, out of memory) under two live workers:
neither takes the other for dead, so no job is handed on and none runs twice."""

import signal
import time

import pytest
import redis

from tests.engine import tasks
from tests.processes import stop, wait_until

LEASE = 4.0  # long enough that a quarter of it is more than a reconnection takes
JOBS = 40


def two_workers(start_worker, worker_env, server):
    """Two workers, each running half of JOBS jobs that outlast the outage."""
    for i in range(JOBS):
        tasks.tally.enqueue(str(i), seconds=1.5 * LEASE)
    env = {**worker_env, "REDIS_URL": server.url, "TASKS_LEASE": str(LEASE)}
    workers = [start_worker("--concurrency", str(JOBS // 2), env=env) for _ in range(2)]
    client = redis.Redis.from_url(server.url)
    wait_until(lambda: running(client) == JOBS, 30, "every job to start")
    return workers, client


def running(client) -> int:
    return sum(client.hlen(k) for k in client.scan_iter("*:leases:*"))


def assert_nobody_was_taken_for_dead(workers, client):
    wait_until(lambda: len(tasks.tallies()) == JOBS, 60, "every job to finish")
    for worker in workers:
        assert stop(worker) == 0
    logs = "".join(w.log.read_text() for w in workers)
    assert "is gone" not in logs, logs
    assert tasks.tallies() == {str(i): 1 for i in range(JOBS)}
    [stats] = [k for k in client.scan_iter("*:stats")]
    assert client.hget(stats, "lost") is None
    return logs


def test_a_redis_restart_of_most_of_a_lease_hands_no_job_on(own_redis, start_worker, worker_env):
    workers, client = two_workers(start_worker, worker_env, own_redis)
    own_redis.process.send_signal(signal.SIGKILL)  # as a crash: no shutdown, AOF kept
    own_redis.process.wait()
    time.sleep(0.75 * LEASE)  # the outage itself, not a wait for an event
    own_redis.start()
    assert_nobody_was_taken_for_dead(workers, client)


def test_writes_paused_for_most_of_a_lease_hand_no_job_on(own_redis, start_worker, worker_env):
    workers, client = two_workers(start_worker, worker_env, own_redis)
    client.execute_command("CLIENT", "PAUSE", int(0.85 * LEASE * 1000), "WRITE")
    assert_nobody_was_taken_for_dead(workers, client)


def test_out_of_memory_is_reported_and_ridden_out(own_redis, start_worker, worker_env):
    workers, client = two_workers(start_worker, worker_env, own_redis)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", used // 2)  # every write that may grow memory refused
    deadline = time.monotonic() + 2 * LEASE
    while time.monotonic() < deadline:  # long enough for any heartbeat to run out
        with pytest.raises(redis.OutOfMemoryError):
            client.set("probe", "x")
        time.sleep(0.1)
    client.config_set("maxmemory", 0)
    logs = assert_nobody_was_taken_for_dead(workers, client)
    assert "out of memory" in logs
