"""What a running job reports of itself (worker/context.py): progress and metadata, stored
with the job a few times a second however often it reports, returned with its result and
heard by those watching it."""

import asyncio
import logging

import pytest
from django.tasks import task_backends

from tests.engine import tasks
from tests.engine.helpers import finished
from worker.context import Progress
from worker.protocol.queue import Queue


@pytest.fixture
def writes(monkeypatch) -> list[int]:
    """How many reports each REPORT script call carried, from now on."""
    counted: list[int] = []
    real = Queue.report

    async def report(self, reports):
        counted.append(len(reports))
        return await real(self, reports)

    monkeypatch.setattr(Queue, "report", report)
    return counted


async def test_progress_and_metadata_are_stored_with_the_result(run_worker, writes):
    result = await tasks.reports_progress.aenqueue(1000)

    async with run_worker():
        await finished(result)

    assert result.progress == Progress(1000, 1000, "page 1000")
    assert result.metadata == {"attempts": 1}
    assert sum(writes) <= 2  # a thousand reports in a tight loop, coalesced


async def test_a_retry_sees_the_metadata_its_earlier_attempt_saved(run_worker):
    result = await tasks.reports_progress.aenqueue(3, fail_first=True)

    async with run_worker():
        await finished(result)

    assert (result.status, result.attempts) == ("SUCCESSFUL", 2)
    assert result.metadata == {"attempts": 2}


async def test_a_sync_job_reports_from_its_thread(run_worker):
    result = await tasks.reports_progress_sync.aenqueue(5)

    async with run_worker():
        await finished(result)

    assert result.progress == Progress(5, 5, "")
    assert result.metadata == {"from": "a thread"}


async def test_watchers_hear_progress_while_the_job_runs(run_worker, backend):
    result = await tasks.reports_then_waits.aenqueue("test-progress-go")
    listener = backend.broker.loop().listener
    try:
        async with run_worker(), listener.watching([result.id]) as events:
            assert await asyncio.wait_for(events.get(), 10) == ("progress", result.id)
            await result.arefresh()
            assert (result.status, result.progress) == ("RUNNING", Progress(1, 2, "halfway"))
            await backend.broker.aclient().set("test-progress-go", 1)
            assert await asyncio.wait_for(events.get(), 10) == ("end", result.id)
    finally:
        await backend.broker.aclient().delete("test-progress-go")


async def test_metadata_over_the_limit_is_not_saved_and_said(run_worker, caplog):
    result = await tasks.reports_too_much.aenqueue()

    with caplog.at_level(logging.WARNING, logger="worker"):
        async with run_worker():
            await finished(result)

    assert (result.status, result.metadata) == ("SUCCESSFUL", {})
    said = f"Job {result.id}: its metadata is not saved: metadata takes 10,011 bytes as JSON"
    assert f"{said}, over the 8,192 allowed" in caplog.text


@pytest.mark.parametrize(
    ("done", "total", "note"), [(-1, None, ""), (1, float("inf"), ""), (1, 2, "x" * 201)]
)
def test_a_bad_report_is_a_clear_value_error(immediate_backend, done, total, note):
    from worker.context import JobContext

    job = tasks.reports_progress.using()
    context = JobContext(task_result=job.enqueue(0), reporter=_NoReports())
    with pytest.raises(ValueError, match="progress"):
        context.report_progress(done, total, note)


class _NoReports:
    def report(self, job_id, progress, metadata) -> None:
        raise AssertionError("a bad report must not be stored")


@pytest.fixture
def immediate_backend(settings):
    from worker.testing import in_process

    settings.TASKS = in_process(settings.TASKS)
    return task_backends["default"]


def test_in_process_backends_keep_progress_and_metadata(immediate_backend):
    result = tasks.reports_progress.enqueue(4)

    assert result.progress == Progress(4, 4, "page 4")
    assert result.metadata == {"attempts": 1}


async def test_a_rerun_of_the_same_attempt_starts_from_the_saved_metadata(run_worker):
    result = await tasks.checkpoints.aenqueue()

    async with run_worker():
        await finished(result)

    assert (result.status, result.attempts, result.return_value) == ("SUCCESSFUL", 1, {"cursor": 5})
