"""runworker --metrics-port: a real worker process runs jobs of every outcome and its scrape
counts them; under --processes one port serves every child, and a child killed and
restarted sends no counter back."""

import os
import signal

import pytest
from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.metrics.conftest import scrape, scrape_when_up, value
from tests.processes import stop, wait_until
from worker.ops import Ops

pytestmark = pytest.mark.e2e
DONE = (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)


def finished(*results) -> bool:
    for result in results:
        result.refresh()
    return all(result.status in DONE for result in results)


def path(task) -> str:
    return task.module_path


def test_a_worker_counts_each_outcome_per_task_and_queue(start_worker, free_port):
    worker = start_worker("--metrics-port", f"127.0.0.1:{free_port}", "--concurrency", "7")
    scrape_when_up(free_port)
    added = [tasks.add.enqueue(1, n) for n in range(3)]
    reported = tasks.add.using(queue_name="reports").enqueue(2, 2)
    flaky = tasks.flaky.enqueue("metrics", 1)  # fails once, then succeeds
    permanent = tasks.permanent.enqueue()  # dead-lettered at once
    throttled = tasks.throttled.enqueue("metrics")  # deferred once, then succeeds
    sleeper = tasks.sleeper.enqueue(60)
    wait_until(lambda: sleeper.refresh() or sleeper.status == TaskResultStatus.RUNNING, 30,
               "the sleeper to start")  # fmt: skip
    running = scrape(free_port)
    assert value(running, "worker_jobs_in_flight", task=path(tasks.sleeper), queue="default") == 1
    assert Ops().cancel(sleeper.id) == "requested"
    wait_until(lambda: finished(*added, reported, flaky, permanent, throttled, sleeper), 30,
               "every job to finish")  # fmt: skip
    assert worker.poll() is None

    got = scrape(free_port)

    def count(kind: str, task, queue: str = "default") -> float:
        return value(got, f"worker_jobs_{kind}_total", task=path(task), queue=queue)

    assert count("started", tasks.add) == 3
    assert count("succeeded", tasks.add) == 3
    assert count("started", tasks.add, "reports") == count("succeeded", tasks.add, "reports") == 1
    assert [count(k, tasks.flaky) for k in ("started", "failed", "retried", "succeeded")] == [
        2, 1, 1, 1,
    ]  # fmt: skip
    assert count("dead_lettered", tasks.flaky) == 0
    assert [count(k, tasks.permanent) for k in ("failed", "dead_lettered", "retried")] == [1, 1, 0]
    assert [count(k, tasks.throttled) for k in ("started", "deferred", "succeeded")] == [2, 1, 1]
    assert count("cancelled", tasks.sleeper) == 1 and count("failed", tasks.sleeper) == 0
    for task in (tasks.add, tasks.flaky, tasks.permanent, tasks.throttled, tasks.sleeper):
        labels = {"task": path(task), "queue": "default"}
        assert value(got, "worker_jobs_in_flight", **labels) == 0
        # Every attempt's run time; every first attempt's wait (a start after RateLimited is
        # one again: the attempt did not count).
        assert value(got, "worker_job_run_seconds_count", **labels) == count("started", task)
        first_starts = count("started", task) - count("retried", task)
        assert value(got, "worker_job_wait_seconds_count", **labels) == first_starts
        assert value(got, "worker_job_run_seconds_bucket", le="+Inf", **labels) == count(
            "started", task
        )
    # The sleeper ran until its cancel: its run time is in the bucket of seconds, not ms.
    sleeper_labels = {"task": path(tasks.sleeper), "queue": "default"}
    assert value(got, "worker_job_run_seconds_bucket", le="0.001", **sleeper_labels) == 0
    assert value(got, "worker_concurrency") == 7
    assert value(got, "worker_redis_roundtrip_seconds_count") > 0
    assert value(got, "worker_redis_outages_total") == 0


def test_one_port_serves_every_process_and_a_killed_child_counts_on(start_worker, free_port):
    supervisor = start_worker("--metrics-port", f"127.0.0.1:{free_port}", "--processes", "2",
                              "--concurrency", "5")  # fmt: skip
    wait_until(lambda: len(Ops().workers()) == 2, 30, "two worker processes")
    first = [tasks.add.enqueue(n, n) for n in range(40)]
    wait_until(lambda: finished(*first), 30, "the first jobs")
    labels = {"task": path(tasks.add), "queue": "default"}

    def succeeded() -> float:
        return value(scrape(free_port), "worker_jobs_succeeded_total", **labels)

    wait_until(lambda: succeeded() == 40, 10, "the children's counts to reach the supervisor")
    both = scrape(free_port)
    assert value(both, "worker_concurrency") == 10  # two children of 5
    assert value(both, "worker_jobs_started_total", **labels) == 40

    victim = Ops().workers()[0]
    os.kill(victim.pid, signal.SIGKILL)

    def replaced() -> bool:
        pids = {w.pid for w in Ops().workers()}
        return victim.pid not in pids and len(pids) == 2

    wait_until(replaced, 60, "the supervisor to replace the child")
    # The killed child's counts stay in the sum (its running gauge went with it).
    after = scrape(free_port)
    assert value(after, "worker_jobs_succeeded_total", **labels) == 40
    assert value(after, "worker_concurrency") == 10

    second = [tasks.add.enqueue(n, n) for n in range(20)]
    wait_until(lambda: finished(*second), 30, "the second jobs")
    wait_until(lambda: succeeded() == 60, 10, "the new child's counts to add up")
    assert stop(supervisor) == 0
    assert f"Metrics served at http://127.0.0.1:{free_port}/metrics" in supervisor.log.read_text()


def test_an_outage_of_redis_is_counted_once(own_redis, start_worker, worker_env, free_port):
    env = {**worker_env, "REDIS_URL": own_redis.url}
    worker = start_worker("--metrics-port", f"127.0.0.1:{free_port}", env=env)
    wait_until(lambda: Ops().workers(), 30, "the worker to start")
    assert value(scrape_when_up(free_port), "worker_redis_outages_total") == 0

    def outages() -> float:
        return value(scrape(free_port), "worker_redis_outages_total")

    own_redis.stop()
    wait_until(lambda: outages() == 1, 15, "the outage to be counted")
    own_redis.start()
    wait_until(lambda: "Redis is back" in worker.log.read_text(), 30, "Redis to be back")
    assert outages() == 1
    assert value(scrape(free_port), "worker_redis_roundtrip_seconds_count") > 0
