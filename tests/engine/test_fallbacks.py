"""The private APIs of Django and asgiref the engine reads for speed: when a later version
renames or changes one, the engine warns and takes the public path, and what users rely on
still works."""

import gc
import logging
import sys
import threading
import warnings
from dataclasses import dataclass

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.db import connection, transaction
from django.dispatch import Signal
from django.tasks import TaskResult, TaskResultStatus, task
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started

from tests.engine import tasks
from tests.engine.helpers import finished
from worker import pending, results
from worker.runtime import attempt, signals


def seen_by_worker(monkeypatch, owner: type, name: str, seen=None) -> None:
    """Make the worker's code see ``owner.name`` as ``seen(value)``, or find it missing when
    ``seen`` is None: what a later Django or asgiref that renamed or changed a private
    attribute would show it. The library's own code (standing for that version's renamed
    internals) still sees the attribute as it is."""
    original = owner.__dict__.get(name)  # a method; None for an attribute of instances

    def get(self):
        if original is not None:
            value = original.__get__(self, type(self))
        elif name in self.__dict__:
            value = self.__dict__[name]
        else:
            raise AttributeError(name)
        if not sys._getframe(1).f_globals.get("__name__", "").startswith("worker."):
            return value
        if seen is None:
            raise AttributeError(f"{owner.__name__!r} object has no attribute {name!r}")
        return seen(value)

    def set(self, value):
        self.__dict__[name] = value

    monkeypatch.setattr(owner, name, property(get, set), raising=False)


def test_the_shortcuts_are_taken_on_the_installed_django_and_asgiref():
    # A probe that failed on the versions the project ships with would slow every job.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert signals._choose() is True
        assert attempt._choose() is True
        assert results._setters() is not None


# Signal._live_receivers, receivers, _dead_receivers


def in_one_list(live_receivers):
    """Signal._live_receivers answering in another shape than (sync, async)."""
    return lambda sender: [r for receivers in live_receivers(sender) for r in receivers]


@pytest.fixture(params=[None, in_one_list], ids=["missing", "changed"])
def signals_private_api_gone(request, monkeypatch) -> None:
    """The worker's view of a Django whose Signal internals are renamed or changed, with the
    choice the worker makes at import made again."""
    seen_by_worker(monkeypatch, Signal, "_live_receivers", request.param)
    with pytest.warns(RuntimeWarning, match=r"_live_receivers.*falls back to Signal.asend"):
        fast = signals._choose()
    monkeypatch.setattr(signals, "_fast", fast)


@pytest.mark.usefixtures("signals_private_api_gone")
async def test_without_signals_private_api_receivers_and_django_log_lines_still_come(
    run_worker, caplog
):
    seen = []

    def receiver(sender, task_result, signal, **kwargs):
        seen.append((signal, task_result.id, task_result.status))

    for signal in (task_enqueued, task_started, task_finished):
        signal.connect(receiver)
    try:
        with caplog.at_level(logging.DEBUG, logger="django.tasks"):
            ok = await tasks.add.aenqueue(1, 2)
            failed = await tasks.permanent.aenqueue()
            async with run_worker():
                await finished(ok)
                await finished(failed)
    finally:
        for signal in (task_enqueued, task_started, task_finished):
            signal.disconnect(receiver)

    assert ok.return_value == 3 and failed.status == TaskResultStatus.FAILED
    for result, end in ((ok, TaskResultStatus.SUCCESSFUL), (failed, TaskResultStatus.FAILED)):
        assert [s for s in seen if s[1] == result.id] == [
            (task_enqueued, result.id, TaskResultStatus.READY),
            (task_started, result.id, TaskResultStatus.RUNNING),
            (task_finished, result.id, end),
        ]
        lines = [r.getMessage() for r in caplog.records if result.id in r.getMessage()]
        assert [line.split()[-1] for line in lines] == [
            "backend=default",  # enqueued
            "state=RUNNING",
            f"state={end}",
        ]
    # Sent while the error is handled: asgiref's thread gets it, for Django's FAILED line.
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert failed.id in error.getMessage()
    assert error.exc_info is not None and error.exc_info[0].__name__ == "PermanentFailure"


@pytest.mark.usefixtures("signals_private_api_gone")
async def test_without_signals_private_api_django_loggers_alone_still_log(run_worker, caplog):
    # With no receiver of the user's, the shortcut would have Django's loggers called inline
    # or skipped: the public path must still reach them.
    with caplog.at_level(logging.INFO, logger="django.tasks"):
        result = await tasks.add.aenqueue(2, 2)
        async with run_worker():
            await finished(result)
    lines = [r.getMessage() for r in caplog.records if result.id in r.getMessage()]
    assert [line.split()[-1] for line in lines] == ["state=RUNNING", "state=SUCCESSFUL"]


# asgiref's SyncToAsync.thread_sensitive_context and context_to_thread_executor

barrier = threading.Barrier(2, timeout=10)


@task()
async def orm_call_meeting_another() -> dict:
    """Queries the database in sync_to_async, and waits there for a second job doing the
    same: both must be in their own threads at once."""

    def work() -> dict:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        barrier.wait()
        thread = threading.current_thread()
        return {"thread": [thread.name, thread.ident], "connection": id(connection.connection)}

    return await sync_to_async(work)()


@task()
def thread_name() -> str:
    return threading.current_thread().name


class SyncToAsyncOfALaterAsgiref:
    """asgiref's SyncToAsync as the worker would see it once its internals are renamed."""


class ThreadSensitiveContextBefore313(ThreadSensitiveContext):
    """asgiref's ThreadSensitiveContext before it took an executor."""

    def __init__(self) -> None:
        super().__init__()


@pytest.fixture(params=["executor", "no executor"])
def asgiref_internals_gone(request, monkeypatch) -> str:
    """The worker's view of an asgiref without the internals it registers job threads with,
    with the choice the worker makes at import made again. Gives the prefix of the name of
    the thread an async job's sync_to_async calls run in."""
    monkeypatch.setattr(attempt, "SyncToAsync", SyncToAsyncOfALaterAsgiref)
    if request.param == "no executor":
        monkeypatch.setattr(attempt, "ThreadSensitiveContext", ThreadSensitiveContextBefore313)
        monkeypatch.setattr(attempt, "_takes_executor", attempt._context_takes_executor())
        where, thread = "in a thread asgiref starts per job", "ThreadPoolExecutor-"
    else:
        where, thread = "still in the job's own thread", "job_"
    with pytest.warns(RuntimeWarning, match=f"ThreadSensitiveContext of its own.*{where}"):
        registered = attempt._choose()
    monkeypatch.setattr(attempt, "_registered", registered)
    return thread


@pytest.mark.django_db(transaction=True)
async def test_without_asgiref_internals_each_async_jobs_orm_calls_get_a_thread_of_their_own(
    run_worker, asgiref_internals_gone
):
    barrier.reset()
    first = await orm_call_meeting_another.aenqueue()
    second = await orm_call_meeting_another.aenqueue()
    sync = await thread_name.aenqueue()
    async with run_worker(concurrency=3):
        for result in (first, second, sync):
            await finished(result)
    assert [r.status for r in (first, second)] == [TaskResultStatus.SUCCESSFUL] * 2
    one, other = first.return_value, second.return_value
    assert one["thread"] != other["thread"] and one["connection"] != other["connection"]
    assert one["thread"][0].startswith(asgiref_internals_gone)
    assert other["thread"][0].startswith(asgiref_internals_gone)
    assert sync.return_value.startswith("job_")  # a sync job runs in its slot regardless
    # Without an executor to give asgiref, the connections of its threads close when
    # collected: before the test database is dropped.
    gc.collect()


# The TaskResult field guard in worker.results


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskResultWithAnotherField(TaskResult):
    """Django's TaskResult as a later Django might have it."""

    queue_position: int | None = None


async def test_a_task_result_with_other_fields_is_built_by_its_own_constructor(
    run_worker, monkeypatch
):
    monkeypatch.setattr(results, "TaskResult", TaskResultWithAnotherField)
    with pytest.warns(RuntimeWarning, match="TaskResult's own constructor"):
        setters = results._setters()
    monkeypatch.setattr(results, "_SETTERS", setters)

    # Built by the constructor of our subclass (worker.results.JobResult), which a later
    # Django's TaskResult would be the base of.
    result = await tasks.add.aenqueue(2, 3)
    assert type(result) is results.JobResult
    assert (result.status, result.args, result.kwargs) == (TaskResultStatus.READY, [2, 3], {})
    async with run_worker() as worker:
        await finished(result)
    stored = await tasks.add.aget_result(result.id)
    assert type(stored) is results.JobResult
    assert (stored.id, stored.status, stored.return_value) == (result.id, "SUCCESSFUL", 5)
    assert stored.worker_ids == [worker.id] and stored.backend == "default"
    assert stored.enqueued_at <= stored.started_at <= stored.finished_at


# The transaction's list of on-commit callbacks, read by worker.pending


@pytest.mark.django_db(transaction=True)
def test_without_run_on_commit_jobs_are_still_sent_on_commit_only(backend, monkeypatch):
    seen_by_worker(monkeypatch, type(transaction.get_connection()), "run_on_commit")
    monkeypatch.setattr(pending, "_warned", False)
    with transaction.atomic():
        result = tasks.add.enqueue(1, 2)
        # Not found in the transaction that will send it: the feature the fallback gives up.
        with (
            pytest.warns(RuntimeWarning, match="no run_on_commit list"),
            pytest.raises(TaskResultDoesNotExist),
        ):
            backend.get_result(result.id)
    assert backend.get_result(result.id).status == TaskResultStatus.READY

    with pytest.raises(RuntimeError), transaction.atomic():
        rolled_back = tasks.add.enqueue(3, 4)
        raise RuntimeError("roll back")
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result(rolled_back.id)
