"""ImmediateBackend: every option of the engine's @task, each job run as it is enqueued,
retried, timed out and deduplicated as the real worker does it."""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.tasks import TaskResultStatus, task
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone

from tests.processes import ROOT, project_env
from tests.testing import tasks
from tests.testing.conftest import in_process_setting
from worker import task as task_module
from worker.exceptions import InvalidArguments
from worker.testing import ImmediateBackend, run_jobs

SUCCESSFUL, FAILED, READY = (
    TaskResultStatus.SUCCESSFUL,
    TaskResultStatus.FAILED,
    TaskResultStatus.READY,
)


@pytest.fixture
def own_registry(monkeypatch) -> None:
    """Tasks a test makes are forgotten after it."""
    monkeypatch.setattr(task_module, "_registry", dict(task_module._registry))
    monkeypatch.setattr(task_module, "_refused", dict(task_module._refused))


@pytest.fixture
def signals_sent():
    """(signal, status) for every task signal sent during the test."""
    sent: list[tuple[str, str]] = []
    receivers = {}
    for name, signal in [("enqueued", task_enqueued), ("started", task_started),
                         ("finished", task_finished)]:  # fmt: skip

        def receiver(sender, task_result, name=name, **kwargs):
            sent.append((name, task_result.status))

        receivers[name] = receiver
        signal.connect(receiver, dispatch_uid=f"tests.testing.{name}")
    yield sent
    for name, signal in [("enqueued", task_enqueued), ("started", task_started),
                         ("finished", task_finished)]:  # fmt: skip
        signal.disconnect(dispatch_uid=f"tests.testing.{name}")


def test_a_task_with_every_option_is_made_and_runs(immediate, own_registry):
    # Django's own ImmediateBackend fails here: Task.__init__() got an unexpected keyword
    # argument 'max_attempts'.
    made = task(max_attempts=7, timeout=30, backoff=0.1, backoff_max=5, unique_for=120,
                result_ttl=60, rate_limit="5/s", concurrency_limit=1, limit_key="a",
                queue_name="reports", priority=3)(tasks.plain)  # fmt: skip

    result = made.enqueue(4)

    assert (result.status, result.return_value) == (SUCCESSFUL, 4)
    assert (made.max_attempts, made.unique_for, made.limit_key) == (7, 120, "a")
    assert immediate.check() == []


def test_the_reference_app_imports_and_checks_under_it():
    """Every task of jobs/tasks.py, with its options, made under the in-process backend."""
    env = project_env(DJANGO_SETTINGS_MODULE="tests.testing.immediate_settings")
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout


def test_async_and_sync_tasks_run_as_they_are_enqueued(immediate):
    first = tasks.add.enqueue(1, 2)
    second = tasks.add_sync.enqueue(2, b=3)

    assert (first.status, first.return_value, first.attempts) == (SUCCESSFUL, 3, 1)
    assert (second.status, second.return_value) == (SUCCESSFUL, 5)
    assert second.task.queue_name == "reports" and second.task.priority == 5
    assert tasks.calls == [("add", (1, 2)), ("add_sync", (2, 3))]
    assert first.enqueued_at <= first.started_at <= first.finished_at


async def test_aenqueue_runs_the_job_on_the_callers_loop(immediate):
    first = await tasks.add.aenqueue(1, 2)
    second = await tasks.add_sync.aenqueue(4, 4)

    assert (first.return_value, second.return_value) == (3, 8)


async def test_a_sync_enqueue_straight_from_async_code_still_runs_the_job(immediate):
    result = tasks.add.enqueue(5, 5)  # no sync_to_async: this thread runs the loop

    assert (result.status, result.return_value) == (SUCCESSFUL, 10)


async def test_results_are_read_back_with_get_result_and_aget_result(immediate):
    result = await tasks.add.aenqueue(1, 1)

    again = immediate.get_result(result.id)
    read = await tasks.add.aget_result(result.id)
    await result.arefresh()

    assert again.return_value == read.return_value == result.return_value == 2
    assert read.id == result.id and read.task.module_path == tasks.add.module_path
    with pytest.raises(TaskResultDoesNotExist):
        immediate.get_result("default:00000000000deadbeefdeadbeef")


def test_a_failing_job_is_retried_at_once_up_to_its_attempts(immediate):
    result = tasks.flaky.enqueue("a", 2)  # fails twice, then succeeds

    assert (result.status, result.return_value, result.attempts) == (SUCCESSFUL, 3, 3)
    assert [e.exception_class_path for e in result.errors] == ["builtins.ConnectionError"] * 2
    assert "attempt 1 failed" in result.errors[0].traceback
    # Not waited for, but kept: backoff=2.0 doubles, each delay jittered to half-to-all.
    first, second = immediate.jobs.get(result.id).retry_delays
    assert 1.0 <= first <= 2.0 and 2.0 <= second <= 4.0


def test_a_job_out_of_attempts_fails_with_every_attempts_error(immediate):
    result = tasks.flaky.enqueue("b", 5)
    sync = tasks.flaky_sync.enqueue("c")

    assert (result.status, result.attempts, len(result.errors)) == (FAILED, 3, 3)
    assert (sync.status, sync.attempts) == (FAILED, 2)
    assert [e.exception_class_path for e in sync.errors] == ["builtins.ValueError"] * 2
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018


def test_permanent_failure_fails_at_once(immediate):
    result = tasks.permanent.enqueue()

    assert (result.status, result.attempts) == (FAILED, 1)
    assert result.errors[0].exception_class_path == "worker.exceptions.PermanentFailure"
    assert tasks.ran("permanent") == [None]
    # The task's own traceback, not chained to the engine's machinery.
    assert "During handling" not in result.errors[0].traceback
    assert "no running event loop" not in result.errors[0].traceback


def test_an_async_job_over_its_timeout_fails_with_a_timeout_error(immediate):
    result = tasks.slow.enqueue(5)  # timeout=0.2: cancelled then, not after 5 s

    assert (result.status, result.attempts) == (FAILED, 1)
    assert result.errors[0].exception_class_path == "builtins.TimeoutError"
    assert "ran over its timeout of 0.2s" in result.errors[0].traceback


def test_a_sync_job_over_its_timeout_fails_each_attempt(immediate):
    result = tasks.slow_sync.enqueue(0.4)  # max_attempts=2, timeout=0.2

    assert (result.status, result.attempts) == (FAILED, 2)
    assert [e.exception_class_path for e in result.errors] == ["builtins.TimeoutError"] * 2


def test_rate_limited_runs_again_without_using_an_attempt(immediate):
    result = tasks.throttled.enqueue("x")  # max_attempts=1: a counted retry would fail it

    assert (result.status, result.return_value) == (SUCCESSFUL, 1)  # its first attempt
    assert (result.attempts, result.errors) == (1, [])
    assert tasks.ran("throttled") == ["x", "x"]


def test_a_job_rate_limited_every_time_is_left_ready_for_later(immediate):
    result = tasks.always_throttled.enqueue()

    assert (result.status, result.attempts, result.errors) == (READY, 0, [])
    assert len(tasks.ran("always_throttled")) == immediate.max_deferrals
    job = immediate.jobs.get(result.id)
    assert job.new.run_after_ms is not None  # due retry_after later, as in Redis
    assert run_jobs() == immediate.max_deferrals  # each run_jobs gives it as many again


def test_a_unique_call_enqueued_again_returns_the_first_job(immediate):
    first = tasks.unique_add.enqueue(1, 2)
    again = tasks.unique_add.enqueue(a=1, b=2)  # the same call, spelled otherwise
    other = tasks.unique_add.enqueue(1, 3)

    assert again.id == first.id and again.status == SUCCESSFUL
    assert other.id != first.id
    assert tasks.ran("unique_add") == [(1, 2), (1, 3)]
    assert [r.id for r in immediate.results] == [first.id, other.id]


def test_an_idempotency_key_makes_a_repeated_enqueue_return_the_first_job(immediate):
    first = tasks.add.using(idempotency_key="invoice-1").enqueue(1, 1)
    again = tasks.add.using(idempotency_key="invoice-1").enqueue(1, 1)

    assert again.id == first.id and len(tasks.ran("add")) == 1
    with pytest.raises(InvalidTask, match="idempotency_key stands for one job"):
        tasks.add.using(idempotency_key="k").enqueue_many([((1, 1), {}), ((2, 2), {})])


def test_a_result_not_kept_is_gone_and_frees_its_unique_call(immediate):
    result = tasks.unique_unkept.enqueue(7)  # unique_for=60, result_ttl=0

    assert (result.status, result.return_value) == (SUCCESSFUL, 7)
    with pytest.raises(TaskResultDoesNotExist):
        immediate.get_result(result.id)
    assert tasks.unique_unkept.enqueue(7).id != result.id  # enqueued (and run) again
    assert tasks.ran("unique_unkept") == [7, 7]


def test_a_deferred_job_waits_for_run_jobs(immediate):
    result = tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 1)

    assert result.status == READY and tasks.calls == []
    assert run_jobs() == 1
    result.refresh()
    assert result.return_value == 2


def test_a_value_json_cannot_hold_fails_the_job(immediate):
    result = tasks.bad_return.enqueue()

    assert result.status == FAILED
    assert "returned a value JSON cannot hold" in result.errors[0].traceback


@pytest.mark.parametrize(
    ("call", "error", "says"),
    [
        (lambda: tasks.add.enqueue(object()), InvalidArguments, "JSON-serialisable"),
        (lambda: tasks.add.enqueue(1, 2, 3), InvalidArguments, "too many positional"),
        (lambda: tasks.add.using(queue_name="nope").enqueue(1), InvalidTask, "nope"),
        (lambda: tasks.limited.enqueue([1]), InvalidArguments, "limit"),
        (lambda: tasks.add.enqueue("x" * 200), InvalidArguments, "over the limit of 100"),
    ],
)
def test_the_call_site_checks_are_the_redis_backends(settings, call, error, says):
    settings.TASKS = in_process_setting("ImmediateBackend", max_payload_bytes=100)

    with pytest.raises(error, match=says):
        call()
    assert tasks.calls == []


def test_a_task_refused_for_its_options_is_reported_and_not_enqueued(immediate, own_registry):
    refused = task(max_attempts=0)(tasks.plain)

    with pytest.raises(InvalidTask, match="max_attempts must be a whole number"):
        refused.enqueue(1)
    [error] = immediate.check()
    assert error.id == "worker.E008" and error.obj == "tests.testing.tasks.plain"


def test_wrong_options_are_reported_by_check_and_raised_at_enqueue(settings):
    settings.TASKS = in_process_setting("ImmediateBackend", prefx="x")
    backend = tasks.add.get_backend()

    [error] = backend.check()
    assert error.id == "worker.E001" and "prefix" in error.hint
    with pytest.raises(Exception, match="unknown OPTIONS key 'prefx'"):
        tasks.add.enqueue(1)


def test_django_signals_are_sent_as_the_worker_sends_them(immediate, signals_sent):
    tasks.flaky.enqueue("s", 1)  # one failed attempt, then success

    assert signals_sent == [
        ("enqueued", READY),
        ("started", TaskResultStatus.RUNNING),
        ("started", TaskResultStatus.RUNNING),
        ("finished", SUCCESSFUL),  # once, at the end of the job
    ]


def test_enqueue_many_runs_every_call(immediate):
    results = tasks.add.enqueue_many([((i,), {"b": i}) for i in range(5)])

    assert [r.return_value for r in results] == [0, 2, 4, 6, 8]
    with pytest.raises(InvalidArguments):  # checked first: nothing runs
        tasks.add.enqueue_many([((1,), {}), ((object(),), {})])
    assert len(tasks.ran("add")) == 5


async def test_aenqueue_many_runs_every_call(immediate):
    results = await tasks.add_sync.aenqueue_many([((i, i), {}) for i in range(3)])

    assert [r.return_value for r in results] == [0, 2, 4]


def test_jobs_enqueued_by_a_job_run_too(immediate):
    assert tasks.fan_out.enqueue(3).return_value == 3
    assert tasks.fan_out_sync.enqueue(2).return_value == 2

    assert sorted(tasks.ran("add")) == [(0, 0), (0, 0), (1, 1), (1, 1), (2, 2)]
    assert len(immediate.results) == 2 + 5


def test_its_class_runs_jobs_at_enqueue():
    assert ImmediateBackend.runs_at_enqueue is True
