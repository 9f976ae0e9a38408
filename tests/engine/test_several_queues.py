"""A worker serving several queues with fewer free slots than queues: every queue is
looked at (a burst ends only when all are empty), delayed jobs start on time in any of
them, one queue's stream of due jobs does not starve another, and a failed fetch of the
queue whose token woke the worker does not leave its job waiting for a poll."""

import asyncio
import time
from datetime import timedelta

from django.tasks import TaskResultStatus, task_backends
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from tests.engine import tasks
from tests.engine.helpers import finished, waiting_for_work

QUEUES = ["default", "reports", "other"]


async def test_burst_serving_several_queues_runs_a_job_of_the_last_queue(backend):
    # concurrency 1: room 1 per fetch, so the sweep asks only the first queue of the order.
    result = await tasks.add.using(queue_name="other").aenqueue(1, 1)
    worker = backend.worker(QUEUES, poll=30, burst=True, concurrency=1, scheduler=False)
    await asyncio.wait_for(worker.run(), 20)
    await result.arefresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, result.status


async def test_a_delayed_job_starts_on_time_on_a_worker_of_several_queues(run_worker):
    lates = []
    for queue in QUEUES:
        async with run_worker(queues=QUEUES, concurrency=1, poll=2) as worker:
            await waiting_for_work(worker)
            due = timezone.now() + timedelta(seconds=2.5)
            r = await tasks.add.using(queue_name=queue, run_after=due).aenqueue(1, 1)
            await finished(r, timeout=15)
            lates.append((queue, round((r.started_at - due).total_seconds(), 2)))
    assert all(late < 0.3 for _, late in lates), lates


async def test_a_queue_with_delayed_jobs_due_does_not_starve_another(run_worker):
    # 'reports' gets a stream of delayed jobs falling due every 20 ms (more than a
    # concurrency-1 worker can run at 50 ms a job); 'default' has one ready job.
    now = timezone.now()
    for i in range(100):
        delayed = tasks.counted_sleep.using(
            queue_name="reports", run_after=now + timedelta(milliseconds=20 * i)
        )
        await delayed.aenqueue(f"r{i}", 0.05)
    async with run_worker(queues=["default", "reports"], concurrency=1, poll=0.2):
        async with asyncio.timeout(10):  # the stream is running
            while True:
                if any(c[0] == "counted_sleep" for c in tasks.calls):
                    break
                await asyncio.sleep(0.01)
        lone = await tasks.counted_sleep.aenqueue("lone", 0.05)
        await finished(lone, timeout=30)
    labels = [c[1] for c in tasks.calls if c[0] == "counted_sleep"]
    before = labels.index("lone")
    assert before < 10, before


async def test_a_failed_fetch_of_the_woken_queue_does_not_leave_its_job_for_a_poll(
    run_worker, monkeypatch
):
    from worker.protocol.queue import Queue

    real = Queue.fetch
    failed = []

    async def flaky(self, count, *a, **k):
        if self.name == "other" and not failed:
            failed.append(1)
            raise ConnectionError("blip")  # after Redis ran nothing: a plain lost connection
        return await real(self, count, *a, **k)

    monkeypatch.setattr(Queue, "fetch", flaky)
    async with run_worker(queues=QUEUES, concurrency=1, poll=5) as worker:
        await waiting_for_work(worker)
        t = time.monotonic()
        r = await tasks.add.using(queue_name="other").aenqueue(1, 1)
        await finished(r, timeout=20)
        took = time.monotonic() - t
    assert took < 1, took


async def _loaded(queues: list[str], jobs: int) -> None:
    tasks.calls.clear()
    for queue in queues:
        await tasks.counted_sleep.using(queue_name=queue).aenqueue_many(
            [((f"{queue}-{i}", 0.01), {}) for i in range(jobs)]
        )


async def _started(count: int) -> list[str]:
    """The queues of the first ``count`` jobs that started (labels are queue-n)."""
    async with asyncio.timeout(30):
        while True:
            labels = [c[1] for c in tasks.calls if c[0] == "counted_sleep"]
            if len(labels) >= count:
                return [label.partition("-")[0] for label in labels[:count]]
            await asyncio.sleep(0.01)


async def test_weighted_queues_share_the_slots_in_proportion(run_worker):
    await _loaded(["default", "reports"], 300)
    weights = {"default": 3, "reports": 1}
    async with run_worker(queues=["default", "reports"], concurrency=4, weights=weights):
        started = await _started(200)  # both queues have work all along
    ratio = started.count("default") / started.count("reports")
    assert 3 * 0.9 <= ratio <= 3 * 1.1, ratio


async def test_a_queue_of_weight_1_is_served_every_round(run_worker):
    await _loaded(["default", "reports", "other"], 100)
    weights = {"default": 5, "reports": 1, "other": 1}
    async with run_worker(queues=["default", "reports", "other"], concurrency=2, weights=weights):
        started = await _started(70)
    for round_start in range(0, 70, 7):  # a round: as many slots as the weights add up to
        served = set(started[round_start : round_start + 7 + 2])  # + the slots in flight
        assert served == {"default", "reports", "other"}, (round_start, started)


async def test_strict_order_serves_an_earlier_queue_first(run_worker):
    await _loaded(["reports", "default"], 40)
    async with run_worker(queues=["default", "reports"], concurrency=4, strict=True):
        started = await _started(60)
    assert started[:40] == ["default"] * 40, started


@given(
    weights=st.lists(st.integers(1, 5), min_size=2, max_size=6),
    rooms=st.lists(st.integers(0, 60), min_size=1, max_size=30),
)
def test_shares_give_each_queue_its_part_of_the_room(weights, rooms):
    queues = [f"q{i}" for i in range(len(weights))]
    shares = dict(zip(queues, weights, strict=True))
    worker = task_backends["default"].worker(queues, weights=shares)
    given_to = [0] * len(queues)
    for room in rooms:
        counts = worker._shares(queues, room)
        assert len(counts) == len(queues) and min(counts) >= 0
        assert sum(counts) == room if len(set(weights)) > 1 else sum(counts) <= room
        given_to = [a + b for a, b in zip(given_to, counts, strict=True)]
    if len(set(weights)) > 1:  # over the fetches, each got its weight's part, to within one
        total = sum(rooms)
        for got, weight in zip(given_to, weights, strict=True):
            assert abs(got - total * weight / sum(weights)) < 1 + 1e-9, (given_to, weights)
