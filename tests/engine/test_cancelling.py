"""An operator's cancel request for a running job ends the job, whatever its attempt does
after the request: a cancelled job is never retried."""

import asyncio
import gc

import pytest
from django.tasks import TaskResultStatus
from django.tasks.signals import task_finished

from tests.engine import tasks
from tests.engine.helpers import finished
from worker.ops.api import Ops


@pytest.fixture(autouse=True)
def clear_calls():
    tasks.calls.clear()
    tasks.gates.clear()


async def running(result, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            await result.arefresh()
            if result.status == TaskResultStatus.RUNNING:
                return
            await asyncio.sleep(0.01)


async def test_a_job_whose_attempt_fails_after_a_cancel_request_is_not_retried(run_worker, backend):
    ops = Ops(backend)
    tasks.gates["doomed"] = gate = asyncio.Event()
    heard = asyncio.Event()
    ended = []

    def on_finished(sender, task_result, **kwargs):
        ended.append(task_result)
        heard.set()

    result = await tasks.fails_once_when_released.aenqueue("doomed")  # a retry would succeed
    task_finished.connect(on_finished)
    try:
        async with run_worker() as worker:
            await running(result)
            assert ops.cancel(result.id) == "requested"
            gate.set()  # the attempt fails before its worker looks for cancel requests
            await finished(result)
            async with asyncio.timeout(5):
                await heard.wait()
            assert worker._running == {} and worker._cancelled == set()
    finally:
        task_finished.disconnect(on_finished)
    assert [(r.id, r.status) for r in ended] == [(result.id, TaskResultStatus.FAILED)]
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1
    assert [e.exception_class_path for e in result.errors] == [
        "builtins.ConnectionError",  # the attempt's own error, kept
        "worker.exceptions.Cancelled",
    ]
    assert "not retried" in result.errors[-1].traceback
    assert tasks.calls == [("fails_once_when_released", "doomed")]
    assert ops.place(ops.job(result.id)).state == "cancelled"
    assert ops.dead_count("default") == 0
    stats = ops.stats("default")
    assert (stats.counters["cancelled"], stats.counters["retried"]) == (1, 0)
    assert backend.broker.sync.zcard(backend.broker.keys.cancel("default")) == 0


async def test_cancelling_a_running_job_sends_task_finished_failed_and_leaves_no_stray_error(
    run_worker, backend, caplog
):
    ops = Ops(backend)
    loop = asyncio.get_running_loop()
    unhandled: list[dict] = []  # what asyncio would log: "Task exception was never retrieved"
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda loop, context: unhandled.append(context))
    heard = asyncio.Event()
    ended = []

    def on_finished(sender, task_result, **kwargs):
        ended.append(task_result)
        heard.set()

    result = await tasks.sleeper.aenqueue(60)
    task_finished.connect(on_finished)
    try:
        async with run_worker() as worker:
            await running(result)
            assert ops.cancel(result.id) == "requested"
            async with asyncio.timeout(5):
                await heard.wait()
            await finished(result)
            assert worker._running == {}
        gc.collect()  # a task whose exception nobody retrieved reports it when collected
    finally:
        task_finished.disconnect(on_finished)
        loop.set_exception_handler(previous)
    [sent] = ended
    assert (sent.id, sent.status) == (result.id, TaskResultStatus.FAILED)
    assert sent.errors[-1].exception_class_path == "worker.exceptions.Cancelled"
    assert "Cancelled by an operator while it ran." in sent.errors[-1].traceback
    assert result.status == TaskResultStatus.FAILED
    assert unhandled == []
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    assert not [r for r in caplog.records if "failed around its attempt" in r.getMessage()]
