"""The transactional outbox (OPTIONS "outbox": True): a job enqueued inside atomic() is
saved with the transaction and reaches Redis after the commit, even when Redis is down
at that moment."""

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from asgiref.sync import sync_to_async
from django.db import connections, transaction
from django.tasks import task_backends
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued

from tests.conftest import tasks_setting
from tests.engine import tasks
from tests.engine.helpers import finished
from worker.outbox import relay
from worker.outbox.models import OutboxJob
from worker.protocol.servers import RedisServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def outbox_on(settings, redis_url, tasks_prefix) -> None:
    settings.TASKS = tasks_setting(redis_url, tasks_prefix, outbox=True)


@pytest.fixture
def redis_to_stop(tmp_path, settings, tasks_prefix) -> Iterator[RedisServer]:
    """A Redis of the test's own, which it stops and starts again; TASKS on it, outbox on."""
    server = RedisServer(tmp_path / "redis").start()
    settings.TASKS = tasks_setting(server.url, tasks_prefix, outbox=True)
    yield server
    server.stop()
    connections.close_all()


@pytest.fixture
async def close_thread_connections() -> AsyncIterator[None]:
    # sync_to_async's thread keeps a connection pytest-django never closes: PostgreSQL
    # would refuse to drop the test database.
    yield
    await sync_to_async(connections.close_all)()


def test_a_committed_job_is_in_redis_and_not_left_in_the_outbox(outbox_on):
    with transaction.atomic():
        result = tasks.add.enqueue(2, 3)
        assert OutboxJob.objects.get().job_id == result.id  # written with the transaction

    assert not OutboxJob.objects.exists()
    assert tasks.add.get_result(result.id).status == "READY"


def test_a_rolled_back_job_is_neither_kept_nor_sent(outbox_on):
    with pytest.raises(RuntimeError), transaction.atomic():
        result = tasks.add.enqueue(2, 3)
        raise RuntimeError("rolled back")

    assert not OutboxJob.objects.exists()
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result(result.id)


def test_bulk_and_unique_enqueues_go_through_the_outbox(outbox_on):
    with transaction.atomic():
        many = tasks.add.enqueue_many([((1, 1), {}), ((2, 2), {})])
        first = tasks.unique_add.enqueue(7)
        again = tasks.unique_add.enqueue(7)
        assert OutboxJob.objects.count() == 3

    assert again.id == first.id
    assert not OutboxJob.objects.exists()
    for result in [*many, first]:
        assert task_backends["default"].get_result(result.id).status == "READY"


async def test_a_job_committed_while_redis_is_down_runs_once_redis_is_back(
    redis_to_stop, close_thread_connections, run_worker, caplog
):
    server = redis_to_stop

    @sync_to_async
    def commit_while_redis_goes_down():
        with transaction.atomic():
            result = tasks.add.enqueue(20, 22)
            server.stop()
        return result  # the commit succeeded, and nothing was raised

    with caplog.at_level(logging.WARNING, logger="worker.outbox"):
        result = await commit_while_redis_goes_down()
    assert "kept in the outbox after the commit" in caplog.text
    assert await OutboxJob.objects.filter(job_id=result.id).aexists()

    server.start()  # the same port
    async with run_worker():
        done = await finished(result)

    assert done.status == "SUCCESSFUL"
    assert done.return_value == 42
    assert not await OutboxJob.objects.aexists()


async def test_workers_move_a_backlog_in_batches_each_job_once(
    redis_to_stop, close_thread_connections, run_worker, monkeypatch
):
    server = redis_to_stop
    sent: list[str] = []
    real_store = relay._store

    def store(backend, jobs):
        real_store(backend, jobs)
        sent.extend(job.id for job in jobs)

    monkeypatch.setattr(relay, "_store", store)

    @sync_to_async
    def commit_backlog():
        with transaction.atomic():
            results = tasks.add.enqueue_many([((n, 0), {}) for n in range(1200)])
            server.stop()
        return results

    results = await commit_backlog()
    assert await OutboxJob.objects.acount() == 1200
    server.start()
    # Two workers relay at once: SKIP LOCKED gives each row to one of them.
    async with run_worker(concurrency=50), run_worker(concurrency=50):
        for result in results:
            await finished(result, timeout=30)
    assert sorted(r.return_value for r in results) == list(range(1200))
    assert all(r.attempts == 1 for r in results)
    assert not await OutboxJob.objects.aexists()
    if connections["default"].vendor == "postgresql":  # SQLite has no row locks
        assert sorted(sent) == sorted(r.id for r in results)  # each row sent once


async def test_a_job_waiting_in_the_outbox_reads_as_enqueued(
    redis_to_stop, close_thread_connections
):
    @sync_to_async
    def commit_while_redis_goes_down():
        with transaction.atomic():
            result = tasks.add.using(priority=5).enqueue(1, 2)
            redis_to_stop.stop()
        return result

    result = await commit_while_redis_goes_down()
    redis_to_stop.start()

    waiting = await task_backends["default"].aget_result(result.id)
    assert (waiting.status, waiting.args, waiting.task.priority) == ("READY", [1, 2], 5)
    same = await sync_to_async(task_backends["default"].get_result)(result.id)
    assert (same.status, same.task.priority) == ("READY", 5)


async def test_a_unique_call_waiting_in_the_outbox_is_not_enqueued_twice(
    redis_to_stop, close_thread_connections
):
    @sync_to_async
    def commit_while_redis_goes_down():
        with transaction.atomic():
            result = tasks.unique_add.enqueue(4)
            redis_to_stop.stop()
        return result

    first = await commit_while_redis_goes_down()
    redis_to_stop.start()

    again = await tasks.unique_add.aenqueue(4)  # before any worker moved the first
    assert again.id == first.id
    assert await OutboxJob.objects.acount() == 1


def test_task_enqueued_is_sent_once_for_each_job_the_commit_moved(outbox_on):
    heard: list[str] = []

    def receiver(sender, task_result, **kwargs):
        heard.append(task_result.id)

    task_enqueued.connect(receiver)
    try:
        with transaction.atomic():
            results = tasks.add.enqueue_many([((1, 1), {}), ((2, 2), {})])
    finally:
        task_enqueued.disconnect(receiver)

    assert heard == [r.id for r in results]


def test_a_worker_without_the_outbox_table_says_so_once_and_moves_nothing(
    outbox_on, monkeypatch, caplog
):
    monkeypatch.setattr(OutboxJob._meta, "db_table", "no_such_outbox_table")
    mover = relay.Relay(task_backends["default"])

    with caplog.at_level(logging.WARNING, logger="worker.outbox"):
        assert (mover._turn(), mover._turn()) == (0, 0)

    [line] = caplog.messages
    assert line == (
        "OPTIONS['outbox'] is on but the table no_such_outbox_table does not exist (run "
        "`manage.py migrate`): this worker moves no outbox rows until it restarts"
    )
