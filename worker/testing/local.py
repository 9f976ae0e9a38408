"""What the in-process backends share: Django's backend API over an in-memory store, with
every option of ``worker.task.Task``.

An enqueue is checked and encoded as the Redis backend does it (``encode``, ``new_job``:
the same errors at the call site, the same job ids, uniqueness keys and limit groups), and
waits for the commit inside the code's own ``atomic()`` (worker/pending.py). A job is run
by worker/testing/execution.py, in the caller's thread (worker/testing/caller.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from django.tasks import TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued

from worker import config, pending
from worker.backend import RedisBackend
from worker.protocol.message import encode, new_job
from worker.protocol.records import NewJob, now_ms
from worker.results import from_ms, make_result
from worker.runtime import signals
from worker.task import Arguments, Task, refused
from worker.testing import execution
from worker.testing.caller import CallerSlots, run_sync
from worker.testing.enqueued import matching
from worker.testing.store import Job, Jobs

if TYPE_CHECKING:
    from worker.task import Result

Prepared = tuple["Result", NewJob]


class InProcessBackend(BaseTaskBackend):
    """A TASKS backend that keeps its jobs in memory and runs them in the caller's thread.
    Its OPTIONS are the Redis backend's (so that a test's settings need change only
    BACKEND): ``max_payload_bytes`` and ``result_ttl`` apply, the others are checked and
    otherwise ignored. Flow control (rate and concurrency limits) is Redis's: here jobs run
    one at a time, and no rate is enforced; a ``limit_key`` that cannot be made still
    raises at the enqueue."""

    task_class = Task
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    # Whether a job due now runs as it is enqueued (or at the commit that sends it).
    runs_at_enqueue: ClassVar[bool] = False
    # RateLimited runs a job again at once, uncounted, at most this many times in a row.
    max_deferrals: ClassVar[int] = 10

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = self.options if isinstance(self.options, dict) else {}
        if options.get("url") in (None, config.EMBEDDED):  # no Redis is reached here
            options = {**options, "url": "redis://in-process"}
        self.options_, self.config_errors = config.read(
            alias, params, options, frozenset(self.queues)
        )
        if not isinstance(self.options, dict):
            self.config_errors.append(
                Error("OPTIONS must be a dict", obj=f"TASKS[{alias!r}]", id="worker.E001")
            )
        self.max_payload_bytes = self.options_.max_payload_bytes
        self.result_ttl = self.options_.result_ttl
        self.worker_id = f"in-process:{alias}"
        self.jobs = Jobs()
        self.slots = CallerSlots()

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        wrong = [Error(why, hint="correct the @task(...) options", obj=task.module_path,
                       id="worker.E008") for task, why in refused(self.alias)]  # fmt: skip
        return [*self.config_errors, *wrong]

    # What was enqueued

    @property
    def results(self) -> list[Result]:
        """Every job enqueued (sent: not one still waiting for a commit), in order, as it
        stands now (like Django's DummyBackend.results)."""
        return [job.result(self.alias) for job in self.jobs.all()]

    def clear(self) -> None:
        """Forget every job."""
        self.jobs.clear()

    def assert_enqueued(
        self,
        task: Task | str,
        *,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        count: int | None = None,
        queue_name: str | None = None,
    ) -> list[Result]:
        """The jobs of ``task`` enqueued here (with these arguments, however they were
        spelled; into this queue): AssertionError unless there are ``count`` of them (by
        default: at least one)."""
        return matching(self.results, task, args=args, kwargs=kwargs, count=count,
                        queue_name=queue_name)  # fmt: skip

    def assert_nothing_enqueued(self, task: Task | str | None = None) -> None:
        """AssertionError if any job (of ``task``, if given) was enqueued here."""
        matching(self.results, task, count=0)

    # Checks at the call site, as the Redis backend makes them

    def validate_task(self, task: Task) -> None:  # type: ignore[override]
        # The Redis backend's message for a queue not in QUEUES (it names those there are).
        if error := config.unknown_queues_error(self.alias, [task.queue_name], self.queues):
            raise InvalidTask(error)
        super().validate_task(task)
        if error := config.queue_name_error(task.queue_name):
            raise InvalidTask(error)

    def _usable(self, task: Task) -> None:
        if self.config_errors:
            raise ImproperlyConfigured(
                "; ".join(f"{e.obj}: {e.msg}" for e in self.config_errors)
                + " (manage.py check lists every problem)"
            )
        self.validate_task(task)
        if task.refusal is not None:
            raise InvalidTask(task.refusal)

    def _prepared(
        self, task: Task, args: list[Any], kwargs: dict[str, Any], body: bytes, limit: str | None
    ) -> Prepared:
        job = new_job(task, args, kwargs, body, limit, now_ms())
        result = make_result(task, job.id, TaskResultStatus.READY, args, kwargs, self.alias,
                             enqueued_at=from_ms(job.enqueued_ms))  # fmt: skip
        return result, job

    def _prepare(self, task: Task, args: Any, kwargs: Any) -> Prepared:
        self._usable(task)
        return self._prepared(task, *encode(task, args, kwargs, self.max_payload_bytes))

    def _prepare_many(self, task: Task, calls: Iterable[Arguments]) -> list[Prepared]:
        """Every call checked and encoded before any is sent: bad input enqueues none."""
        RedisBackend._one_job_per_key(task)
        self._usable(task)
        encoded = [encode(task, args, kwargs, self.max_payload_bytes) for args, kwargs in calls]
        return [self._prepared(task, *call) for call in encoded]

    # Enqueue: now, or at the commit of the code's own transaction

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> Result:  # type: ignore[override]
        prepared = self._prepare(task, args, kwargs)
        if pending.in_transaction():
            return self._wait_for_commit(prepared)
        return self._deliver([prepared])[0]

    async def aenqueue(self, task: Task, args: Any, kwargs: Any) -> Result:  # type: ignore[override]
        prepared = self._prepare(task, args, kwargs)
        if pending.in_transaction():  # sync code opened one around this call
            return self._wait_for_commit(prepared)
        return (await self._adeliver([prepared]))[0]

    def enqueue_many(self, task: Task, calls: Iterable[Arguments]) -> list[Result]:
        if task.unique_for is not None:  # each call must be checked against the others
            return [self.enqueue(task, args, kwargs) for args, kwargs in calls]
        prepared = self._prepare_many(task, calls)
        if not prepared:
            return []
        if pending.on_commit(pending.Send(self, prepared)):
            return [result for result, _ in prepared]
        return self._deliver(prepared)

    async def aenqueue_many(self, task: Task, calls: Iterable[Arguments]) -> list[Result]:
        if task.unique_for is not None:
            return [await self.aenqueue(task, args, kwargs) for args, kwargs in calls]
        prepared = self._prepare_many(task, calls)
        if not prepared:
            return []
        if pending.on_commit(pending.Send(self, prepared)):
            return [result for result, _ in prepared]
        return await self._adeliver(prepared)

    def _wait_for_commit(self, prepared: Prepared) -> Result:
        result, job = prepared
        if job.unique is not None:
            if (first := pending.unique_twin(self, job)) is not None:
                return first
            if (stored := self.jobs.twin(job)) is not None:
                return stored.result(self.alias)
        pending.on_commit(pending.Send(self, [prepared]))
        return result

    def send(self, prepared: list[Prepared]) -> Result | None:
        """Store (and run, if this backend runs jobs at enqueue) jobs prepared earlier: at
        the commit that sends them (worker/pending.py)."""
        self._deliver(prepared)
        return None

    def _store(self, prepared: list[Prepared]) -> tuple[list[Job], list[Result]]:
        """Store the jobs but for unique calls' twins: the stored jobs, and for each call
        its result (the first job's, for a twin)."""
        stored: list[Job] = []
        results: list[Result] = []
        for result, new in prepared:
            if (first := self.jobs.twin(new)) is not None:
                results.append(first.result(self.alias))
                continue
            job = Job(new, cast(Task, result.task), result.args, result.kwargs)
            self.jobs.add(job)
            stored.append(job)
            results.append(result)
        return stored, results

    def _deliver(self, prepared: list[Prepared]) -> list[Result]:
        stored, results = self._store(prepared)
        for job in stored:
            task_enqueued.send(type(self), task_result=job.result(self.alias))
        if not self._to_run(stored):
            return results
        return run_sync(self._run_new, stored, results)

    async def _adeliver(self, prepared: list[Prepared]) -> list[Result]:
        stored, results = self._store(prepared)
        if not signals.unheard(task_enqueued, type(self), logging.DEBUG):
            for job in stored:
                await signals.asend(task_enqueued, type(self), task_result=job.result(self.alias))
        if not self._to_run(stored):
            return results
        return await self._run_new(stored, results)

    def _to_run(self, stored: list[Job]) -> list[Job]:
        if not self.runs_at_enqueue:
            return []
        now = now_ms()
        return [job for job in stored if job.due(now)]

    async def _run_new(self, stored: list[Job], results: list[Result]) -> list[Result]:
        """Run the jobs just stored that are due; each call's result as it stands after."""
        for job in self._to_run(stored):
            await execution.run(self, job)
        ran = {job.id: job for job in stored}
        return [ran[r.id].result(self.alias) if r.id in ran else r for r in results]

    # Running what waits (run_jobs)

    async def arun_waiting(self, queues: Iterable[str] | None = None, limit: int = 10_000) -> int:
        """Run every READY job (of ``queues``, default all), those deferred included, as if
        their time had come, and the jobs they enqueue, until none is left; one at a time,
        in the order a worker would take them. A job rate limited ``max_deferrals`` times
        in a row is left for the next call. Returns the attempts run; RuntimeError past
        ``limit`` of them (jobs that keep enqueuing jobs)."""
        chosen = None if queues is None else set(queues)
        runs = 0
        passed: set[str] = set()  # rate limited past max_deferrals in this call
        while waiting := [job for job in self.jobs.ready(chosen) if job.id not in passed]:
            job = waiting[0]
            runs += await execution.run(self, job)
            if job.status == TaskResultStatus.READY:
                passed.add(job.id)
            if runs > limit:
                raise RuntimeError(
                    f"run_jobs: over {limit} attempts and jobs still wait: do jobs keep "
                    "enqueuing jobs? (raise the limit if this many is expected)"
                )
        return runs

    # Results

    def get_result(self, result_id: str) -> Result:
        if (waiting := pending.result(self, result_id)) is not None:
            return waiting
        job = self.jobs.get(result_id)
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        return job.result(self.alias)

    async def aget_result(self, result_id: str) -> Result:
        return self.get_result(result_id)
