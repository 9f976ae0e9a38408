"""A worker's counters agree with what the engine did to each job, in the cases the ACK or
the recovery decides: a fault of the worker's own on a job's last attempt, a failure that
meets an operator's pending cancel, a job dead-lettered because its worker died."""

import asyncio
import time

import pytest
from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.engine.helpers import finished
from worker.observe.metrics import UNKNOWN, Meter
from worker.ops import Ops
from worker.runtime import attempt
from worker.runtime import worker as runtime

KINDS = ("started", "failed", "retried", "dead_lettered", "cancelled", "deferred", "in_flight")


@pytest.fixture(autouse=True)
def clear_calls():
    tasks.calls.clear()
    tasks.gates.clear()


async def until(condition, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def counts(meter: Meter, task, queue: str = "default") -> dict[str, float]:
    label = task if isinstance(task, str) else task.module_path
    snapshot = meter.snapshot()
    return {kind: snapshot[f"worker_jobs_{kind}"].get((label, queue), 0.0) for kind in KINDS}


async def test_a_fault_around_the_last_attempt_counts_as_dead_lettered(run_worker, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the worker's bookkeeping")

    monkeypatch.setattr(attempt, "outcome_of", broken)
    monkeypatch.setattr(runtime, "FAULT_RETRY", 0.05)
    meter = Meter(10)
    result = await tasks.add.aenqueue(1, 2)  # max_attempts=3
    async with run_worker(meter=meter):
        await finished(result)
    assert (result.status, result.attempts) == (TaskResultStatus.FAILED, 3)
    assert Ops().dead_count("default") == 1
    got = counts(meter, tasks.add)
    assert (got["started"], got["failed"], got["retried"], got["dead_lettered"]) == (3, 3, 2, 1)
    assert got["in_flight"] == 0


async def test_a_failure_that_meets_a_pending_cancel_counts_as_cancelled(run_worker, monkeypatch):
    monkeypatch.setattr(runtime, "CANCEL_POLL", 30.0)  # only the ACK answers the request
    meter = Meter(10)
    tasks.gates["metrics"] = gate = asyncio.Event()
    result = await tasks.fails_once_when_released.aenqueue("metrics")
    async with run_worker(meter=meter) as worker:
        await until(lambda: result.id in worker._attempting, "the attempt to start")
        assert await asyncio.to_thread(Ops().cancel, result.id) == "requested"
        gate.set()
        await finished(result)
        # the outcome is stored (the result says so) a moment before it is counted
        await until(lambda: not worker._settling, "the outcome to be counted")
    assert [e.exception_class_path for e in result.errors][-1] == "worker.exceptions.Cancelled"
    got = counts(meter, tasks.fails_once_when_released)
    assert (got["started"], got["cancelled"], got["failed"], got["retried"]) == (1, 1, 0, 0)
    assert got["in_flight"] == 0


async def test_jobs_of_a_dead_worker_count_in_the_worker_that_recovers_them(backend, run_worker):
    queue = backend.broker.queue("default")
    dead = await tasks.slow_async.aenqueue(0.01)  # max_attempts=1: dead-lettered
    retried = await tasks.add.aenqueue(1, 1)  # max_attempts=3: runs again
    fetched = await queue.fetch(10, "ghost:1:a")  # its worker dies (SIGKILL, OOM) holding them
    assert len(fetched.leases) == 2
    meter = Meter(10)
    async with run_worker(meter=meter):
        await finished(dead)
        await finished(retried)
    assert (dead.status, retried.status) == (TaskResultStatus.FAILED, TaskResultStatus.SUCCESSFUL)
    lost = counts(meter, tasks.slow_async)
    assert (lost["started"], lost["failed"], lost["dead_lettered"], lost["retried"]) == (0, 1, 1, 0)
    assert lost["in_flight"] == 0
    again = counts(meter, tasks.add)
    assert (again["started"], again["failed"], again["retried"]) == (1, 1, 1)
    assert again["in_flight"] == 0


def test_a_lost_job_of_a_task_not_registered_here_counts_under_one_label():
    meter = Meter(10)
    meter.lost("default", ["another.release.task"], ["", "yet.another.task"])
    got = counts(meter, UNKNOWN)
    assert (got["failed"], got["retried"], got["dead_lettered"], got["in_flight"]) == (3, 1, 2, 0)
    assert set(meter.snapshot()["worker_jobs_failed"]) == {(UNKNOWN, "default")}
