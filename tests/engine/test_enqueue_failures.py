"""An enqueue that fails says whether Redis may have stored the job, and an idempotency key
makes repeating it safe: "nothing was stored" is said only when that is certain."""

import asyncio
import socket
import threading

import pytest
import redis
from django.tasks import task_backends
from django.tasks.exceptions import InvalidTask

from tests.conftest import tasks_setting
from tests.engine import tasks
from worker.exceptions import BrokerUnavailable
from worker.protocol.scripts import ENQUEUE_MANY, Lua


def ready_ids(backend) -> list[str]:
    return backend.broker.queue("default").ids("ready", 0, -1)


def hanging_up(settings, tasks_prefix, then_refuse: bool):
    """A server that takes a request and closes the connection without a reply: as a Redis
    that dies, or a network cut, after the request went out. With ``then_refuse`` it is
    gone after the first (the client's retries are refused)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(65536)
            conn.close()
            if then_refuse:
                listener.close()
                return

    threading.Thread(target=serve, daemon=True).start()
    settings.TASKS = tasks_setting(f"redis://127.0.0.1:{port}/0", tasks_prefix)
    return listener


@pytest.fixture
def hangs_up(settings, tasks_prefix):
    listener = hanging_up(settings, tasks_prefix, then_refuse=False)
    yield
    listener.close()


def test_out_of_memory_at_enqueue_is_broker_unavailable_nothing_stored(full_redis):
    with pytest.raises(BrokerUnavailable, match=r"Redis refused it.*nothing was stored") as e:
        tasks.add.enqueue(1, 2)
    assert e.value.maybe_stored is False
    assert "OOM" in str(e.value.__cause__)


async def test_out_of_memory_at_aenqueue_is_broker_unavailable_nothing_stored(full_redis):
    with pytest.raises(BrokerUnavailable, match="Redis refused it") as e:
        await tasks.unique_add.aenqueue(1, 2)  # sent alone (not batched)
    assert e.value.maybe_stored is False
    outcomes = await asyncio.gather(
        *(tasks.add.aenqueue(i, 1) for i in range(20)), return_exceptions=True
    )
    assert all(isinstance(o, BrokerUnavailable) and not o.maybe_stored for o in outcomes)


def test_a_redis_that_cannot_be_reached_stored_nothing(settings, tasks_prefix):
    settings.TASKS = tasks_setting("redis://127.0.0.1:9/0", tasks_prefix)  # nothing listens
    with pytest.raises(BrokerUnavailable, match=r"unreachable.*nothing was stored") as e:
        tasks.add.enqueue(1, 2)
    assert e.value.maybe_stored is False


def test_a_request_that_went_out_without_a_reply_may_have_been_stored(hangs_up):
    with pytest.raises(BrokerUnavailable, match="may have stored the job") as e:
        tasks.add.enqueue(1, 2)
    assert e.value.maybe_stored is True
    assert "idempotency_key" in str(e.value)


def test_a_lost_reply_then_refused_retries_may_still_have_stored_it(settings, tasks_prefix):
    # redis-py tries again on a lost connection: the refusals of the retries do not tell
    # what became of the first try.
    listener = hanging_up(settings, tasks_prefix, then_refuse=True)
    try:
        with pytest.raises(BrokerUnavailable, match="may have stored the job") as e:
            tasks.add.enqueue(1, 2)
    finally:
        listener.close()
    assert e.value.maybe_stored is True
    assert isinstance(e.value.__cause__, redis.ConnectionError)


async def test_an_aenqueue_without_a_reply_may_have_been_stored(hangs_up):
    with pytest.raises(BrokerUnavailable, match="may have stored the job") as e:
        await tasks.add.aenqueue(1, 2)
    assert e.value.maybe_stored is True


def test_a_bulk_enqueue_cut_midway_lists_the_jobs_redis_confirmed(backend, monkeypatch):
    calls = []
    real = Lua.run_sync

    def cut_after_the_first_chunk(self, client, keys, args):
        if self is ENQUEUE_MANY:
            calls.append(1)
            if len(calls) == 2:
                raise redis.ConnectionError("Connection closed by server.")
        return real(self, client, keys, args)

    monkeypatch.setattr(Lua, "run_sync", cut_after_the_first_chunk)
    with pytest.raises(BrokerUnavailable, match="1000 of 2500 jobs were stored") as e:
        tasks.add.enqueue_many([((i, 1), {}) for i in range(2500)])
    assert e.value.maybe_stored is True
    assert sorted(r.id for r in e.value.enqueued) == sorted(ready_ids(backend))
    assert len(e.value.enqueued) == 1000


def test_an_enqueue_repeated_with_its_idempotency_key_returns_the_first_job(backend):
    first = tasks.add.using(idempotency_key="invoice-42").enqueue(1, 2)
    again = tasks.add.using(idempotency_key="invoice-42").enqueue(1, 2)
    other = tasks.add.using(idempotency_key="invoice-43").enqueue(1, 2)
    assert again.id == first.id and other.id != first.id
    assert sorted(ready_ids(backend)) == sorted([first.id, other.id])
    elsewhere = tasks.echo.using(idempotency_key="invoice-42").enqueue("x")  # another task
    assert elsewhere.id != first.id


async def test_an_aenqueue_repeated_with_its_idempotency_key_returns_the_first_job(backend):
    first = await tasks.add.using(idempotency_key="k", priority=5).aenqueue(1, 2)
    again = await tasks.add.using(idempotency_key="k").aenqueue(3, 4)  # the key decides
    assert again.id == first.id and again.args == [1, 2]
    assert ready_ids(backend) == [first.id]


def test_an_idempotency_key_is_for_one_job(backend):
    keyed = tasks.add.using(idempotency_key="k")
    with pytest.raises(InvalidTask, match="stands for one job"):
        keyed.enqueue_many([((1, 2), {}), ((3, 4), {})])
    with pytest.raises(InvalidTask, match="non-empty string"):
        tasks.add.using(idempotency_key="")
    assert task_backends["default"].get_result(keyed.enqueue(1, 2).id).status == "READY"
