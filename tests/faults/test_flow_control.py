"""Flow control across worker processes: three `manage.py runworker` processes share one
rate or concurrency limit (per key too), a SIGKILLed worker's slots come back within the
lease, and RateLimited costs no attempt. (tests/engine/test_flow_control.py checks the
same on one in-process worker.)"""

import signal
import time
from bisect import bisect_left

from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.processes import wait_until
from worker.ops.api import Ops

FINISHED = {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED}
LEASE = 2  # TASKS_LEASE of the worker processes (tests/faults/conftest.py)


def start_three(start_worker, *options: str) -> None:
    """Three worker processes, once each heartbeats."""
    for _ in range(3):
        start_worker(*options)
    wait_until(lambda: len(Ops().workers()) == 3, 30, "three workers to start")


def succeeded(count: int, timeout: float) -> None:
    what = f"{count} jobs to succeed"
    wait_until(lambda: Ops().stats("default").counters["succeeded"] >= count, timeout, what)


def status(result) -> TaskResultStatus:
    result.refresh()
    return result.status


def workers_of(results) -> set[str]:
    """The workers that ran ``results``."""
    return {worker for result in results for worker in (result.refresh() or result.worker_ids)}


def ms(times: list[float]) -> list[int]:
    """Start times (epoch seconds, whole ms on Redis's clock) as ms, compared exactly."""
    return [round(t * 1000) for t in times]


def test_a_rate_holds_across_workers(start_worker):
    start_three(start_worker, "--concurrency", "20")
    total = 650  # 13 s of work at 50/s: the queue stays saturated for the 10 s measured
    results = tasks.rated.enqueue_many([((f"j{i}",), {}) for i in range(total)])
    succeeded(total, 40)
    assert len(workers_of(results)) == 3  # all three shared the work
    _, starts = tasks.flow_record()
    times = ms(starts["rated"])
    assert len(times) == total
    # every window of 1 s, from each start on, holds at most 50 starts
    busiest = max(bisect_left(times, t + 1000) - i for i, t in enumerate(times))
    assert busiest <= 50, busiest
    # and the rate is used: 10 s from the first start hold about 500
    first_ten_seconds = bisect_left(times, times[0] + 10_000)
    assert abs(first_ten_seconds - 500) <= 25, first_ten_seconds


def test_a_concurrency_limit_holds_across_workers(start_worker):
    start_three(start_worker, "--concurrency", "20")
    total, seconds = 60, 0.2
    results = tasks.limited.enqueue_many([((f"j{i}", seconds), {}) for i in range(total)])
    succeeded(total, 30)
    assert len(workers_of(results)) == 3
    highest, starts = tasks.flow_record()
    assert highest["limited"] == 3
    times = starts["limited"]
    per_second = total / (times[-1] - times[0] + seconds)
    assert abs(per_second - 3 / seconds) <= 0.1 * 3 / seconds, per_second  # 15/s


def test_each_key_has_its_own_limit_across_workers(start_worker):
    start_three(start_worker, "--concurrency", "20")
    each, seconds = 4, 0.4
    calls = [((customer, seconds), {}) for customer in ["acme", "globex"] * each]
    tasks.per_customer.enqueue_many(calls)
    succeeded(len(calls), 30)
    highest, starts = tasks.flow_record()
    assert highest == {"customer:acme": 1, "customer:globex": 1}
    times = [t for group in starts.values() for t in group]
    taken = max(times) + seconds - min(times)
    one_after_another = len(calls) * seconds
    assert taken < 0.6 * one_after_another, (taken, starts)  # side by side: about half


def test_a_killed_workers_slots_come_back_within_the_lease(start_worker):
    ops, path = Ops(), tasks.hangs_once.module_path

    def state() -> tuple[int, int] | None:
        """(running, held) of the task's group; None before a worker published its limits."""
        found = ops.limits("default", path)
        return (found[0].running, found[0].held) if found else None

    victim = start_worker("--concurrency", "10")
    # first attempts that outlive the test: only the kill ends them
    hung = [tasks.hangs_once.enqueue(f"hung{i}", 60) for i in range(3)]
    wait_until(lambda: state() == (3, 0), 20, "the victim to hold the 3 slots")
    wait_until(lambda: all(status(r) == TaskResultStatus.RUNNING for r in hung), 5, "runs")
    start_worker("--concurrency", "10")  # a live peer, idle: every slot is the victim's
    wait_until(lambda: len(ops.workers()) == 2, 30, "the peer to start")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    tasks.flow_forget("hangs_once")  # the killed attempts never counted themselves out
    assert state() == (3, 0)  # held for a worker that is gone, until its lease runs out
    queued = [tasks.hangs_once.enqueue(f"new{i}", 0.2) for i in range(6)]
    start_worker("--concurrency", "10")

    results = hung + queued
    deadline = killed_at + LEASE + 3
    wait_until(
        lambda: all(status(r) in FINISHED for r in results),
        deadline - time.monotonic(),
        "every job to finish, the dead worker's slots back",
    )
    assert [r.status for r in results] == [TaskResultStatus.SUCCESSFUL] * len(results)
    assert [r.return_value for r in results] == [f"hung{i}" for i in range(3)] + [
        f"new{i}" for i in range(6)
    ]
    assert all(
        r.attempts == 2
        and [e.exception_class_path for e in r.errors] == ["worker.exceptions.WorkerLost"]
        for r in hung
    )
    assert all(r.attempts == 1 and r.errors == [] for r in queued)
    highest, _ = tasks.flow_record()
    assert highest["hangs_once"] <= 3  # the slots came back once, not twice
    assert state() == (0, 0)


def test_rate_limited_costs_no_attempt_in_worker_processes(start_worker):
    start_three(start_worker, "--concurrency", "20")
    result = tasks.throttled.enqueue("a")  # max_attempts=1: a counted retry would fail it
    wait_until(lambda: result.refresh() or result.is_finished, 20, "the job to finish")
    assert result.status == TaskResultStatus.SUCCESSFUL, result.errors
    assert result.return_value == 1  # it ran on its first counted attempt
    assert result.attempts == 1 and result.errors == []
    counters = Ops().stats("default").counters
    assert (counters["deferred"], counters["retried"]) == (1, 0)


def test_weighted_queues_share_three_workers_three_to_one(start_worker):
    for queue in ("default", "reports"):
        tasks.tally.using(queue_name=queue).enqueue_many([((queue, 0.01), {}) for _ in range(600)])
    start_three(start_worker, "--queue", "default:3", "--queue", "reports:1", "-c", "4")
    # Read while both queues still have work (600 each; about 100 of reports' run by then)
    counts = wait_until(lambda: (t := tasks.tallies()) and sum(t.values()) >= 400 and t, 30,
                        "400 jobs to run")  # fmt: skip
    ratio = counts["default"] / counts["reports"]
    assert 3 * 0.9 <= ratio <= 3 * 1.1, counts
