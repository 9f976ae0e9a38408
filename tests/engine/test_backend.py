"""Enqueue-side behaviour of the Redis backend: validation at the call site, transactions,
defer, priority, results."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.tasks import TaskResultStatus, task
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.utils import timezone

from tests.conftest import tasks_setting
from tests.engine import tasks
from worker.exceptions import BrokerUnavailable, InvalidArguments


def ready_ids(backend, queue="default") -> list[str]:
    return backend.broker.queue(queue).ids("ready", 0, -1)


def test_enqueue_stores_a_ready_job_readable_by_id(backend):
    result = tasks.add.enqueue(1, b=2)
    assert result.status == TaskResultStatus.READY
    again = backend.get_result(result.id)
    assert again.status == TaskResultStatus.READY
    assert (again.args, again.kwargs) == ([1], {"b": 2})
    assert again.task.func is tasks.add.func
    assert again.enqueued_at is not None
    assert ready_ids(backend) == [result.id]


async def test_aenqueue_is_native_async_and_sends_the_enqueued_signal(backend):
    from django.tasks.signals import task_enqueued

    seen = []

    def on_enqueued(sender, task_result, **kwargs):
        seen.append(task_result.id)

    task_enqueued.connect(on_enqueued)
    try:
        result = await tasks.add.aenqueue(1, 2)
    finally:
        task_enqueued.disconnect(on_enqueued)
    assert seen == [result.id]
    assert (await backend.aget_result(result.id)).status == TaskResultStatus.READY


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((object(),), {}, "JSON-serialisable"),
        ((timezone.now(),), {}, "JSON-serialisable"),
        ((1,), {}, "missing a required argument: 'b'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1, 2), {"c": 3}, "unexpected keyword argument 'c'"),
        ((2**70, 1), {}, "cannot be encoded"),
        ((float("nan"), 1), {}, "NaN or infinity"),
        ((1,), {"b": [float("-inf")]}, "NaN or infinity"),
        # normalize_json would decode bytes: the task would get a str
        ((b"bytes", 1), {}, "bytes is not JSON, and the task would get a str instead"),
        ((1,), {"b": (bytearray(b"x"),)}, "bytearray is not JSON"),
        ((1,), {"b": {"k": memoryview(b"x")}}, "memoryview is not JSON"),
        ((1,), {"b": {b"key": 1}}, "bytes is not JSON"),
    ],
)
def test_bad_arguments_raise_at_the_call_site_and_send_nothing(backend, args, kwargs, message):
    with pytest.raises(InvalidArguments, match=message) as raised:
        tasks.add.enqueue(*args, **kwargs)
    assert "tests.engine.tasks.add" in str(raised.value)
    assert ready_ids(backend) == []


def test_oversize_payload_is_refused_with_its_size(settings, redis_url, tasks_prefix, backend):
    settings.TASKS = tasks_setting(redis_url, tasks_prefix, max_payload_bytes=1000)
    with pytest.raises(InvalidArguments, match=r"message is \d+ bytes, over the limit of 1000"):
        tasks.record.enqueue("x" * 2000)
    tasks.record.enqueue("x" * 100)


def test_unknown_queue_is_refused_naming_the_known_ones():
    known = r"queue 'nope' is not in TASKS\['default'\]\['QUEUES'\] \(default, other, reports\)"
    with pytest.raises(InvalidTask, match=known):
        tasks.add.using(queue_name="nope").enqueue(1, 2)
    with pytest.raises(InvalidTask, match=known):  # as the task is defined

        @task(queue_name="nope")
        def misplaced() -> None: ...


def test_unknown_option_and_bad_queue_names_are_refused_at_first_use(settings, redis_url):
    from django.core.exceptions import ImproperlyConfigured

    settings.TASKS = {
        "default": {
            "BACKEND": "worker.backend.RedisBackend",
            "QUEUES": ["default", "a:b"],
            "OPTIONS": {"urll": redis_url},
        }
    }
    with pytest.raises(ImproperlyConfigured, match=r"unknown OPTIONS key 'urll'.*queue name 'a:b'"):
        tasks.add.enqueue(1, 2)


def test_redis_unreachable_is_a_clear_error(settings, tasks_prefix):
    settings.TASKS = tasks_setting("redis://:secret@127.0.0.1:1/0", tasks_prefix)
    with pytest.raises(BrokerUnavailable, match=r"redis://:\*\*\*@127.0.0.1:1/0") as raised:
        tasks.add.enqueue(1, 2)
    assert "secret" not in str(raised.value)


@pytest.mark.django_db(transaction=True)
def test_enqueue_in_a_transaction_is_sent_on_commit_only(backend):
    with transaction.atomic():
        committed = tasks.add.enqueue(1, 2)
        assert ready_ids(backend) == []
    assert ready_ids(backend) == [committed.id]

    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.add.enqueue(3, 4)
        raise RuntimeError("roll back")
    assert ready_ids(backend) == [committed.id]


def test_run_after_defers_the_job(backend):
    later = timezone.now() + timedelta(hours=1)
    result = tasks.add.using(run_after=later).enqueue(1, 2)
    assert ready_ids(backend) == []
    delayed = backend.broker.sync.zscore(backend.broker.keys.delayed("default"), result.id)
    assert delayed == pytest.approx(later.timestamp() * 1000, abs=1)


def test_higher_priority_is_ready_first_then_fifo(backend):
    low = tasks.add.using(priority=-5).enqueue(1, 1)
    first = tasks.add.enqueue(1, 2)
    second = tasks.add.enqueue(1, 3)
    high = tasks.add.using(priority=10).enqueue(1, 4)
    assert ready_ids(backend) == [high.id, first.id, second.id, low.id]
    assert backend.get_result(high.id).task.priority == 10


def test_unknown_or_malformed_result_ids_do_not_exist(backend):
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("default:0000")
    with pytest.raises(TaskResultDoesNotExist):
        backend.get_result("no-colon")


async def test_unique_task_enqueued_twice_in_its_window_is_one_job(backend):
    first = await tasks.unique_add.aenqueue(1, b=2)
    again = await tasks.unique_add.aenqueue(a=1, b=2)  # same call, spelled differently
    also_sync = tasks.unique_add.enqueue(1, b=2)
    other = await tasks.unique_add.aenqueue(1, b=3)
    assert again.id == first.id == also_sync.id
    assert other.id != first.id
    assert set(ready_ids(backend)) == {first.id, other.id}


async def test_uniqueness_ends_with_its_window_or_its_job(settings, backend):
    first = await tasks.unique_add.using(priority=1).aenqueue(5)
    backend.broker.sync.delete(backend.broker.keys.job(first.id))  # the first job is gone (purged)
    second = await tasks.unique_add.aenqueue(5)
    assert second.id != first.id
    key = backend.broker.keys.unique(
        "default",
        __import__("worker.protocol.message").protocol.message.fingerprint(
            tasks.unique_add, [5], {}
        ),
    )
    assert 59_000 < backend.broker.sync.pttl(key) <= 60_000


async def test_bulk_enqueue_is_one_call_and_the_jobs_run(backend, run_worker):
    from tests.engine.helpers import finished

    later = timezone.now() + timedelta(hours=1)
    results = await tasks.add.aenqueue_many([((i,), {"b": 1}) for i in range(2500)])
    deferred = tasks.add.using(run_after=later).enqueue_many([((1, 1), {})])
    assert len({r.id for r in results}) == 2500
    assert ready_ids(backend) == [r.id for r in results]  # in order
    assert (
        backend.broker.sync.zscore(backend.broker.keys.delayed("default"), deferred[0].id)
        is not None
    )
    stored = backend.get_result(results[7].id)
    assert (stored.args, stored.kwargs, stored.status) == ([7], {"b": 1}, "READY")
    async with run_worker(concurrency=200):
        for r in results[::500]:
            await finished(r)
    assert results[500].return_value == 501


def test_bulk_enqueue_checks_every_call_before_sending_any(backend):
    with pytest.raises(InvalidArguments, match="missing a required argument"):
        tasks.add.enqueue_many([((1, 2), {}), ((1,), {})])
    assert ready_ids(backend) == []


async def test_async_bulk_enqueue_checks_every_call_before_sending_any(backend):
    # The bad call comes after several slices' worth of good ones: none may be sent.
    calls = [((i, 1), {}) for i in range(700)] + [((1, 2), {"c": 3})]
    with pytest.raises(InvalidArguments, match="unexpected keyword argument 'c'"):
        await tasks.add.aenqueue_many(calls)
    assert ready_ids(backend) == []


async def test_a_bulk_enqueue_cut_off_midway_says_which_jobs_were_stored(backend, monkeypatch):
    import redis

    from worker.protocol.enqueue import EnqueueBatcher

    real_store, calls = EnqueueBatcher.store, []

    async def third_fails(self, jobs):
        calls.append(len(jobs))
        if len(calls) == 3:
            raise redis.ConnectionError("cut off")
        await real_store(self, jobs)

    monkeypatch.setattr(EnqueueBatcher, "store", third_fails)
    with pytest.raises(BrokerUnavailable, match="800 of 1000 jobs were stored") as caught:
        await tasks.add.aenqueue_many([((i, 1), {}) for i in range(1000)])
    assert len(calls) == 5
    assert sorted(r.id for r in caught.value.enqueued) == sorted(ready_ids(backend))
    assert [r.args[0] for r in caught.value.enqueued][399:401] == [399, 600]


def test_checked_tasks_are_remembered_once_however_often_copied(backend):
    for _ in range(50):
        tasks.add.using(priority=5).enqueue(1, 2)
    assert len(backend._valid) == 1


async def test_the_result_enqueue_returns_is_the_one_stored(backend):
    sent = await tasks.echo.aenqueue({"when": (2026, 11, 30), "tags": ("a", "b")})
    (bulk,) = await tasks.echo.aenqueue_many([((), {"value": [1.5, None]})])
    for result in (sent, bulk):
        stored = await backend.aget_result(result.id)
        fields = ("id", "status", "args", "kwargs", "enqueued_at", "backend", "errors")
        assert [getattr(result, f) for f in fields] == [getattr(stored, f) for f in fields]
        assert result.task == stored.task
    assert sent.args == [{"when": [2026, 11, 30], "tags": ["a", "b"]}]  # JSON's own types


@pytest.mark.django_db(transaction=True)
def test_bulk_enqueue_in_a_transaction_waits_for_the_commit(backend):
    with transaction.atomic():
        results = tasks.add.enqueue_many([((1, 2), {}), ((3, 4), {})])
        assert ready_ids(backend) == []
    assert ready_ids(backend) == [r.id for r in results]


async def test_concurrent_aenqueues_share_round_trips_and_all_arrive(backend, monkeypatch):
    import asyncio

    from worker.protocol.fastredis import FastRedis

    real_run, scripts = FastRedis.run, []

    async def counted_run(self, script, *args, **kwargs):
        scripts.append(script.name)
        return await real_run(self, script, *args, **kwargs)

    monkeypatch.setattr(FastRedis, "run", counted_run)
    results = await asyncio.gather(*(tasks.add.aenqueue(i, 1) for i in range(300)))
    # The first caller sends its job alone; the 299 that came meanwhile share one call.
    assert scripts == ["enqueue", "enqueue_many"]
    assert sorted(ready_ids(backend)) == sorted(r.id for r in results)
    assert (await backend.aget_result(results[123].id)).args == [123, 1]


async def test_concurrent_aenqueues_all_fail_clearly_when_redis_is_down(settings, tasks_prefix):
    import asyncio

    settings.TASKS = tasks_setting("redis://127.0.0.1:9/0", tasks_prefix)
    outcomes = await asyncio.gather(
        *(tasks.add.aenqueue(i, 1) for i in range(20)), return_exceptions=True
    )
    assert all(isinstance(o, BrokerUnavailable) for o in outcomes)
    assert "nothing was stored" in str(outcomes[-1])


async def test_a_cancelled_enqueue_does_not_strand_the_others_batched_with_it(backend):
    import asyncio

    first = asyncio.create_task(tasks.add.aenqueue(0, 0))  # sends the first round
    await asyncio.sleep(0)
    others = [asyncio.create_task(tasks.add.aenqueue(i, 1)) for i in range(1, 50)]
    await asyncio.sleep(0)
    first.cancel()
    results = await asyncio.wait_for(asyncio.gather(*others), 5)
    stored = set(ready_ids(backend))
    assert {r.id for r in results} <= stored
    assert len(stored) in (49, 50)  # the cancelled call's job may have gone out already


def test_an_id_naming_one_of_the_queues_own_keys_is_no_job(backend):
    tasks.add.enqueue(1, 2)  # the ready list exists: its name must not be read as a job
    for wrong in ("default:queued", "default:later", "default:" + "g" * 27):
        with pytest.raises(TaskResultDoesNotExist):
            backend.get_result(wrong)
