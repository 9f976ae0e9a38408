"""SIGTERM/SIGINT: stop fetching, let in-flight jobs finish within the grace period, put the
rest back on the queue at once, exit 0."""

import signal
import time

import pytest
from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.processes import stop, wait_until
from worker.ops.api import Ops


def running(results) -> bool:
    for r in results:
        r.refresh()
    return all(r.status == TaskResultStatus.RUNNING for r in results)


def ready_ids(backend) -> set[str]:
    return set(backend.broker.queue("default").ids("ready", 0, -1))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_jobs_that_finish_within_the_grace_complete(start_worker, sig):
    results = [tasks.tally.enqueue(f"job{i}", seconds=1.0) for i in range(10)]
    waiting = tasks.tally.enqueue("not started", seconds=0)
    worker = start_worker("--concurrency", "10", "--grace", "10")
    wait_until(lambda: running(results), 20, "10 jobs running")
    assert stop(worker, sig) == 0
    for r in results:
        r.refresh()
    assert all(r.status == TaskResultStatus.SUCCESSFUL for r in results)
    waiting.refresh()
    assert waiting.status == TaskResultStatus.READY  # no new job was fetched


def test_jobs_that_outlast_the_grace_are_released_at_once(start_worker, backend):
    results = [tasks.tally.enqueue(f"long{i}", seconds=60) for i in range(5)]
    worker = start_worker("--concurrency", "5", "--grace", "1")
    wait_until(lambda: running(results), 20, "5 jobs running")
    began = time.monotonic()
    assert stop(worker) == 0
    assert time.monotonic() - began < 5
    assert ready_ids(backend) == {r.id for r in results}  # back now, not after a lease
    for r in results:
        r.refresh()
        assert r.status == TaskResultStatus.READY
        assert r.attempts == 0  # a shutdown is not the job's failed attempt
    assert b"Releasing 5 unfinished jobs" in worker.log.read_bytes()


def test_a_second_signal_cuts_the_grace_short(start_worker, backend):
    results = [tasks.tally.enqueue(f"long{i}", seconds=60) for i in range(3)]
    worker = start_worker("--concurrency", "3", "--grace", "60")
    wait_until(lambda: running(results), 20, "3 jobs running")
    began = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: b"Stopping: no new jobs" in worker.log.read_bytes(), 10, "the signal")
    stopping = time.time()

    def draining() -> bool:  # a heartbeat sent since, its jobs still in hand
        beats = [w for w in Ops(backend).workers() if w.pid == worker.pid]
        return any(w.seen_at > stopping and w.in_flight == 3 for w in beats)

    wait_until(draining, 10, "a heartbeat of the draining worker")
    # a second signal within a second of the first is the same stop (Worker.stop)
    wait_until(lambda: time.monotonic() - began > 1.2, 5, "a second signal to be one")
    assert worker.poll() is None  # still inside its grace period
    assert stop(worker) == 0
    assert time.monotonic() - began < 5
    assert ready_ids(backend) == {r.id for r in results}


def test_a_signal_sent_twice_at_once_is_one_stop(start_worker, backend):
    # systemd signals the whole group: a --processes child gets SIGTERM from it and from
    # its supervisor at once
    results = [tasks.tally.enqueue(f"short{i}", seconds=1) for i in range(3)]
    worker = start_worker("--concurrency", "3", "--grace", "60")
    wait_until(lambda: running(results), 20, "3 jobs running")
    worker.send_signal(signal.SIGTERM)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert tasks.tallies() == {f"short{i}": 1 for i in range(3)}  # they finished, not released


def test_a_sync_job_thread_that_never_ends_does_not_hold_the_exit(start_worker, backend):
    stuck = tasks.slow_sync.enqueue(3600)  # timeout 0.2 s, but its thread sleeps on
    worker = start_worker("--concurrency", "2", "--grace", "1")
    wait_until(lambda: stuck.refresh() or stuck.is_finished, 20, "the timeout")
    began = time.monotonic()
    assert stop(worker) == 0
    assert time.monotonic() - began < 5
    assert b"Leaving 1 job threads still running" in worker.log.read_bytes()


def test_a_stop_while_the_supervisor_waits_to_respawn_stops_it(start_worker, worker_env, tmp_path):
    # The first child to start exits at once; SIGTERM comes while the parent waits to start
    # another. That one would never hear the signal, and the parent would wait for ever.
    (tmp_path / "first_child_dies.py").write_text(
        "import os, pathlib\n"
        "from tests.e2e_settings import *\n"
        f"marker = pathlib.Path({str(tmp_path / 'died')!r})\n"
        "if os.environ.get('WORKER_PARENT_PID') and not marker.exists():\n"
        "    marker.touch()\n"
        "    raise SystemExit(3)\n"
    )
    env = {**worker_env, "DJANGO_SETTINGS_MODULE": "first_child_dies",
           "PYTHONPATH": str(tmp_path)}  # fmt: skip
    supervisor = start_worker("--processes", "2", env=env)
    wait_until(lambda: "right after start" in supervisor.log.read_text(), 30, "a child to die")
    assert stop(supervisor, timeout=15) == 0
