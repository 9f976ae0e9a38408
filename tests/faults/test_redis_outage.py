"""Redis stopped and restarted under a running worker: no crash, no spin, nothing lost."""

import time

import pytest

from tests.engine import tasks
from tests.processes import stop, wait_until
from worker.exceptions import BrokerUnavailable


def test_worker_rides_out_a_redis_restart(own_redis, start_worker, worker_env):
    results = [tasks.tally.enqueue(str(i), seconds=0.05) for i in range(300)]
    worker = start_worker("--concurrency", "10", env={**worker_env, "REDIS_URL": own_redis.url})
    wait_until(lambda: len(tasks.tallies()) >= 50, 30, "some jobs done")

    own_redis.stop()
    with pytest.raises(BrokerUnavailable, match=r"unreachable.*nothing was stored"):
        tasks.tally.enqueue("during the outage")
    wait_until(lambda: "is unreachable (" in worker.log.read_text(), 10, "the worker to notice")
    # Not a wait for an event but the outage itself, which must outlast the lease (2 s):
    # the worker must not take itself for dead, nor lose its jobs to its own reaper.
    time.sleep(3)
    assert worker.poll() is None, "the worker crashed"
    own_redis.start()

    wait_until(lambda: len(tasks.tallies()) == 300, 60, "every job enqueued before")
    assert stop(worker) == 0
    for r in results:
        r.refresh()
    assert {r.status for r in results} == {"SUCCESSFUL"}
    log = worker.log.read_text()
    assert log.count("retrying with backoff") == 1, log
    assert "Redis is back" in log
    assert "during the outage" not in tasks.tallies()
