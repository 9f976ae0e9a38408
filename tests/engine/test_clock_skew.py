"""A worker whose clock is wrong neither starts delayed jobs early nor silences periodic
jobs for the others: what is due follows Redis's clock."""

import logging
import time
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from tests.engine import tasks
from tests.engine.helpers import finished
from tests.engine.test_periodic import job
from worker.periodic import Every
from worker.protocol import queue as queue_module
from worker.runtime import scheduler as scheduler_module
from worker.runtime.scheduler import Scheduler

FAST = 300.0  # seconds a skewed host's clock runs ahead


async def test_a_fast_worker_does_not_start_a_delayed_job_early(backend, monkeypatch):
    due_at = timezone.now() + timedelta(seconds=60)
    await tasks.add.using(run_after=due_at).aenqueue(1, 2)
    monkeypatch.setattr(queue_module, "now_ms", lambda: int((time.time() + FAST) * 1000))
    fetched = await backend.broker.queue("default").fetch(10, "fast:1:a")
    assert fetched.leases == []
    assert fetched.due_in_ms is not None and 55_000 < fetched.due_in_ms <= 60_000


async def test_a_fast_scheduler_follows_redis_and_says_so(backend, monkeypatch, caplog):
    monkeypatch.setattr(scheduler_module.time, "time", lambda: REAL() + FAST)
    scheduler = Scheduler(backend.broker, jobs=[])
    with caplog.at_level(logging.WARNING, logger="worker"):
        now = await scheduler.now()
    assert abs(now.timestamp() - REAL()) < 2
    assert "clock is +300" in caplog.text and "follows Redis" in caplog.text


async def test_a_fire_time_ahead_of_redis_does_not_silence_the_schedule(backend):
    every = job(Every(60))
    real_now = datetime.fromtimestamp(await backend.broker.time(), UTC)
    ahead = Scheduler(backend.broker, jobs=[every])
    assert await ahead.check(every, real_now + timedelta(seconds=FAST)) == 4  # not recorded
    right = Scheduler(backend.broker, jobs=[every])
    assert await right.check(every, real_now) in (2, 3)  # the due fire time still counts


REAL = time.time  # the real clock, kept before any test patches it


async def test_a_fast_idle_worker_waits_for_a_delayed_job_without_spinning(
    run_worker, monkeypatch, fetches
):
    from worker.protocol import records

    monkeypatch.setattr(records.time, "time", lambda: REAL() + FAST)
    due_at = timezone.now() + timedelta(seconds=1.5)
    later = await tasks.add.using(run_after=due_at).aenqueue(1, 2)
    async with run_worker(queues=["default"]):
        await finished(later)
    assert len(fetches) < 10  # it slept until the job was due on Redis's clock
