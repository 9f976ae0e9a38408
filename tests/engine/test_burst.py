"""``runworker --burst``: run what is queued, then exit 0. Jobs due later stay queued."""

import asyncio
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.tasks import TaskResultStatus
from django.utils import timezone

from tests.engine import tasks
from tests.processes import runworker, worker_env


@pytest.fixture(autouse=True)
def clear_calls():
    tasks.calls.clear()


@pytest.mark.e2e
def test_runworker_burst_runs_every_queued_job_then_exits_0(redis_url, tasks_prefix, tmp_path):
    results = [tasks.add.enqueue(i, i) for i in range(50)]
    other = tasks.add.using(queue_name="other").enqueue(1, 1)
    later = tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(0, 0)
    log = tmp_path / "worker.log"
    process = runworker(worker_env(redis_url, tasks_prefix), log, "--burst", "--queue", "default")
    assert process.wait(timeout=60) == 0, log.read_text()
    for r in results:
        r.refresh()
    assert [r.return_value for r in results] == [2 * i for i in range(50)]
    for r in (other, later):  # another queue's job, and one due in an hour: left queued
        r.refresh()
        assert r.status == TaskResultStatus.READY and r.attempts == 0
    assert "Burst done" in log.read_text()


async def test_a_burst_ends_as_its_last_job_does_not_at_the_next_poll(backend):
    results = [await tasks.counted_sleep.aenqueue(str(i), 0.2) for i in range(3)]
    worker = backend.worker(poll=30, burst=True)
    await asyncio.wait_for(worker.run(), 10)
    for r in results:
        await r.arefresh()
    assert [r.status for r in results] == [TaskResultStatus.SUCCESSFUL] * 3
    assert len(tasks.calls) == 3


def test_burst_runs_one_process():
    with pytest.raises(CommandError, match="--burst runs one process"):
        call_command("runworker", "--burst", "--processes", "2")
