"""A worker killed with SIGKILL loses nothing: its jobs run elsewhere within the lease."""

import signal
import time

from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.processes import stop, wait_until


def test_sigkill_mid_run_loses_no_job(backend, start_worker):
    total = 3000
    for i in range(total):
        tasks.tally.enqueue(str(i), seconds=0.01)
    victim = start_worker("--concurrency", "20")
    wait_until(lambda: len(tasks.tallies()) >= total // 3, 60, "a third of the jobs")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    client = backend.broker.sync
    leases = list(client.scan_iter(f"{backend.broker.keys.wip('default', '*')}"))
    in_flight = sum(client.hlen(k) for k in leases)
    assert in_flight > 0, "the kill should catch jobs in flight"
    # The ids the dead worker held, to time their recovery.
    held = {m.decode() for k in leases for m in client.hkeys(k)}

    survivor = start_worker("--concurrency", "20")
    wait_until(lambda: len(tasks.tallies()) == total, 120, "every job to run")
    recovered = [backend.get_result(job_id) for job_id in held]
    wait_until(lambda: all(r.refresh() or r.is_finished for r in recovered), 30, "held jobs")
    recovery = max(r.finished_at.timestamp() for r in recovered) - (
        time.time() - (time.monotonic() - killed_at)
    )
    assert stop(survivor) == 0

    counts = tasks.tallies()
    duplicates = sum(n - 1 for n in counts.values())
    assert sorted(counts, key=int) == [str(i) for i in range(total)]  # none lost
    assert duplicates <= in_flight
    assert recovery < 2 + 3  # lease 2 s, checked every lease/4, plus the run itself
    assert all(r.status == TaskResultStatus.SUCCESSFUL for r in recovered)
    assert all(
        [e.exception_class_path for e in r.errors] == ["worker.exceptions.WorkerLost"]
        for r in recovered
    )


def test_a_job_longer_than_the_lease_keeps_it_while_its_worker_lives(backend, start_worker):
    long = tasks.tally.enqueue("long", seconds=3 * 2)  # three leases of 2 s
    first = start_worker("--concurrency", "2")
    wait_until(lambda: long.refresh() or long.status == TaskResultStatus.RUNNING, 20, "start")
    second = start_worker("--concurrency", "2")  # a live peer that would take a lost job
    wait_until(lambda: long.refresh() or long.is_finished, 30, "the long job")
    assert stop(first) == 0 and stop(second) == 0
    assert long.status == TaskResultStatus.SUCCESSFUL
    assert long.attempts == 1 and long.errors == []
    assert tasks.tallies() == {"long": 1}
