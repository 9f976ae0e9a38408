"""What code written to Django's Tasks documentation relies on: the exceptions it names, the
log lines of Django's own backends, results inside a transaction, the backend's flags."""

import logging
from unittest import mock

import pytest
from django.db import transaction
from django.tasks import task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist

from tests.conftest import tasks_setting
from tests.engine import tasks
from tests.engine.helpers import finished
from worker.exceptions import InvalidArguments


def ready_ids(backend) -> list[str]:
    return backend.broker.queue("default").ids("ready", 0, -1)


def test_arguments_that_are_not_json_raise_the_type_error_django_documents(backend):
    with pytest.raises(TypeError, match="Unsupported type") as raised:
        tasks.echo.enqueue({1, 2})
    assert isinstance(raised.value, InvalidArguments)  # and still ours, for those who want it
    assert ready_ids(backend) == []


async def test_a_final_failure_is_logged_with_its_exception_and_traceback(run_worker, caplog):
    result = await tasks.permanent.aenqueue()
    with caplog.at_level(logging.INFO, logger="django.tasks"):
        async with run_worker():
            await finished(result)
    [line] = [r for r in caplog.records if r.levelno == logging.ERROR and result.id in r.message]
    assert "state=FAILED" in line.message
    assert line.exc_info is not None and line.exc_info[0].__name__ == "PermanentFailure"
    assert "the order service said 404" in caplog.text  # the traceback's last line


@pytest.mark.django_db(transaction=True)
def test_a_unique_call_enqueued_twice_in_a_transaction_returns_the_first_job(backend):
    with transaction.atomic():
        first = tasks.unique_add.enqueue(1, 2)
        again = tasks.unique_add.enqueue(1, b=2)  # the same call, spelled otherwise
        other = tasks.unique_add.enqueue(1, 3)
    assert again.id == first.id and other.id != first.id
    assert sorted(ready_ids(backend)) == sorted([first.id, other.id])
    assert backend.get_result(again.id).args == [1, 2]


@pytest.mark.django_db(transaction=True)
def test_a_unique_call_stored_before_the_transaction_is_found_inside_it(backend):
    first = tasks.unique_add.enqueue(1, 2)
    with transaction.atomic():
        again = tasks.unique_add.enqueue(1, 2)
        assert again.id == first.id  # not an id that the commit will never store
    assert ready_ids(backend) == [first.id]


@pytest.mark.django_db(transaction=True)
def test_jobs_waiting_for_a_commit_belong_to_their_backend(settings, redis_url, tasks_prefix):
    settings.TASKS = {
        **tasks_setting(redis_url, tasks_prefix),
        "second": {**tasks_setting(redis_url, f"{tasks_prefix}:second")["default"]},
    }
    second = tasks.unique_add.using(backend="second")
    with transaction.atomic():
        mine = tasks.unique_add.enqueue(1, 2)
        theirs = second.enqueue(1, 2)  # the same call, to another backend: a job of its own
        assert theirs.id != mine.id and theirs.backend == "second"
        with pytest.raises(TaskResultDoesNotExist):
            task_backends["second"].get_result(mine.id)
    assert ready_ids(task_backends["default"]) == [mine.id]
    assert task_backends["second"].get_result(theirs.id).status == "READY"


@pytest.mark.django_db(transaction=True)
def test_get_result_inside_the_transaction_finds_the_job_waiting_for_its_commit(backend):
    with transaction.atomic():
        result = tasks.add.enqueue(1, 2)
        [bulk] = tasks.add.enqueue_many([((3, 4), {})])
        for waiting in (result, bulk):
            found = backend.get_result(waiting.id)
            assert (found.id, found.status, found.args) == (waiting.id, "READY", waiting.args)
        result.refresh()  # Django's own way to read it again
        assert result.status == "READY"
    assert sorted(ready_ids(backend)) == sorted([result.id, bulk.id])


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_job_is_not_found_afterwards(backend):
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint
            lost = tasks.add.enqueue(1, 2)
            raise RuntimeError("roll back to the savepoint")
        with pytest.raises(TaskResultDoesNotExist):
            backend.get_result(lost.id)
        kept = tasks.unique_add.enqueue(5)
    assert ready_ids(backend) == [kept.id]


def test_the_checked_tasks_cache_follows_the_backends_flags(backend):
    tasks.add.enqueue(1, 2)  # checked, and remembered as valid
    with mock.patch.object(type(backend), "supports_async_task", False):
        with pytest.raises(InvalidTask, match="does not support async Tasks"):
            tasks.add.enqueue(1, 2)
    with mock.patch.object(backend, "queues", frozenset({"reports"})):
        with pytest.raises(InvalidTask, match=r"queue 'default' is not in .* \(reports\)"):
            tasks.add.enqueue(1, 2)
    assert tasks.add.enqueue(1, 2).status == "READY"  # back as it was
