"""Whatever an attempt ends with is stored and counted: text UTF-8 cannot encode is escaped,
and a fault of the worker's own around an attempt counts that attempt."""

from django.tasks import TaskResultStatus

from tests.engine import tasks
from tests.engine.helpers import finished
from worker.runtime import attempt
from worker.runtime import worker as runtime


async def test_an_error_naming_an_undecodable_file_is_stored_escaped(run_worker):
    result = await tasks.open_missing.aenqueue()
    async with run_worker():
        await finished(result)
    assert (result.status, result.attempts) == (TaskResultStatus.FAILED, 2)
    assert [e.exception_class_path for e in result.errors] == ["builtins.FileNotFoundError"] * 2
    assert "no such file: caf\\udce9.txt" in result.errors[-1].traceback


async def test_a_return_value_with_undecodable_text_is_stored_escaped(run_worker):
    result = await tasks.name_from_disk.aenqueue()
    async with run_worker():
        await finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == "caf\\udce9.txt"


async def test_a_fault_of_the_worker_around_an_attempt_counts_that_attempt(run_worker, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the worker's bookkeeping")

    monkeypatch.setattr(attempt, "outcome_of", broken)
    monkeypatch.setattr(runtime, "FAULT_RETRY", 0.05)
    result = await tasks.add.aenqueue(1, 2)  # max_attempts=3
    async with run_worker():
        await finished(result)  # without the fix: released uncounted, and run for ever
    assert (result.status, result.attempts) == (TaskResultStatus.FAILED, 3)
    assert {e.exception_class_path for e in result.errors} == {"builtins.RuntimeError"}
    assert "bookkeeping" in result.errors[-1].traceback
