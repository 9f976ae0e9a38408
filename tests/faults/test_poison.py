"""A job that kills its worker every time is dead-lettered after max_attempts deliveries;
other jobs keep flowing."""

from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.processes import stop, wait_until


def test_a_job_that_kills_its_worker_is_dead_lettered(start_worker, backend):
    poison = tasks.crash_worker.enqueue()  # max_attempts=2
    others = [tasks.tally.enqueue(f"ok{i}") for i in range(50)]
    supervisor = start_worker("--processes", "2", "--concurrency", "5")

    def dead_lettered():
        poison.refresh()
        return poison.status == TaskResultStatus.FAILED

    wait_until(dead_lettered, 60, "the poison job to be dead-lettered")
    wait_until(lambda: len(tasks.tallies()) == 50, 30, "the other jobs")
    assert stop(supervisor) == 0
    assert poison.attempts == 2
    assert [e.exception_class_path for e in poison.errors] == ["worker.exceptions.WorkerLost"] * 2
    assert "stopped heartbeating" in poison.errors[-1].traceback
    dead = backend.broker.sync.zrange(backend.broker.keys.dead("default"), 0, -1)
    assert dead == [poison.id.encode()]
    assert all(r.refresh() is None and r.status == TaskResultStatus.SUCCESSFUL for r in others)
