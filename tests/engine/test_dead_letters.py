"""Dead letters can be listed, inspected (arguments, every attempt's error) and sent back."""

import pytest
from django.tasks import TaskResultStatus
from django.tasks.exceptions import TaskResultDoesNotExist

from tests.engine import tasks
from tests.engine.helpers import finished
from tests.engine.test_bad_messages import inject, wait_dead
from worker.ops.api import Ops


@pytest.fixture(autouse=True)
def clear_calls():
    tasks.calls.clear()


async def test_list_inspect_and_retry_a_dead_letter(run_worker, backend):
    dead = await tasks.flaky.aenqueue("k", fail_times=4)  # 3 attempts allowed
    fine = await tasks.add.aenqueue(1, 1)
    async with run_worker():
        await finished(dead)
        await finished(fine)
    ops = Ops(backend)
    assert ops.dead_count("default") == 1
    [letter] = ops.dead("default")
    assert letter.id == dead.id
    assert (letter.task_path, letter.args, letter.kwargs) == (
        "tests.engine.tasks.flaky",
        ["k"],
        {"fail_times": 4},
    )
    assert letter.status == TaskResultStatus.FAILED
    assert letter.attempts == 3
    assert [e.exception_class_path for e in letter.errors] == ["builtins.ConnectionError"] * 3
    assert "attempt 3 failed" in letter.errors[2].traceback

    assert ops.retry(dead.id) == 1
    assert ops.retry(dead.id) == 0  # no longer dead
    assert ops.dead_count("default") == 0
    async with run_worker():
        await finished(dead)
    # A fresh set of 3 attempts: attempt 4 fails too, attempt 5 succeeds.
    assert dead.status == TaskResultStatus.SUCCESSFUL
    assert dead.attempts == 5
    assert len(dead.errors) == 4


async def test_retry_all_dead_letters_of_one_task_in_batches(run_worker, backend):
    failing = [await tasks.permanent.aenqueue() for _ in range(7)]
    rejected = inject(backend, b"not json")
    async with run_worker():
        for r in failing:
            await finished(r)
        await wait_dead(backend, rejected)
    ops = Ops(backend)
    assert ops.dead_count("default") == 8
    bad = ops.job(rejected)
    assert bad.task_path is None and bad.message_error == "the message is unreadable"
    assert "not valid JSON" in bad.errors[0].traceback

    seen = []
    sent = ops.retry_dead("default", task="tests.engine.tasks.permanent", batch=3,
                          progress=seen.append)  # fmt: skip
    assert sent == 7
    assert sum(seen) >= 8
    assert [r.id for r in ops.dead("default")] == [rejected]
    assert set(backend.broker.queue("default").ids("ready", 0, -1)) == {r.id for r in failing}


def test_unknown_job_is_a_clear_error(backend):
    with pytest.raises(TaskResultDoesNotExist):
        Ops(backend).job("default:nope")


async def test_cancelling_a_running_job_stops_it_without_a_dead_letter(run_worker, backend):
    import asyncio

    ops = Ops(backend)
    result = await tasks.sleeper.aenqueue(60)
    async with run_worker() as worker:
        async with asyncio.timeout(10):
            while result.status != TaskResultStatus.RUNNING:
                await asyncio.sleep(0.02)
                await result.arefresh()
        assert ops.cancel(result.id) == "requested"
        await finished(result, timeout=5)
        assert worker._running == {}
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[-1].exception_class_path == "worker.exceptions.Cancelled"
    assert "while it ran" in result.errors[-1].traceback
    assert ops.dead_count("default") == 0
    assert backend.broker.sync.zcard(backend.broker.keys.cancel("default")) == 0
    assert int(backend.broker.sync.hget(backend.broker.keys.stats("default"), "cancelled")) == 1
