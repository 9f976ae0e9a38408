"""Batches (as Sidekiq Pro's): jobs enqueued into an open batch, any number and at any
time until it ends (its own jobs may add more), then closed; ``on_success`` runs once when
every job succeeded, ``on_complete`` once when every job has ended either way."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.tasks import Task as DjangoTask
from django.tasks.exceptions import InvalidTask
from redis.exceptions import ResponseError

from worker.protocol.keys import new_job_id
from worker.protocol.records import NewJob
from worker.protocol.workflows import NewStep, NewWorkflow
from worker.task import Task
from worker.workflows.canvas import Step
from worker.workflows.handle import (
    Progress,
    Workflow,
    WorkflowDoesNotExist,
    backend_named,
    known,
    redis_backend,
)
from worker.workflows.start import STOPPED, awhen_committed, keep_ms, when_committed

if TYPE_CHECKING:
    from worker.backend import RedisBackend
    from worker.task import Result


class BatchEnded(Exception):
    """The batch has ended (every job ended after it was closed, or it was cancelled):
    it takes no more jobs."""


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch, by id (``Batch.get(id)`` from inside one of its jobs, to add more)."""

    id: str
    backend_alias: str = "default"

    def __post_init__(self) -> None:
        known(self.id)

    @classmethod
    def open(
        cls, *, on_success: Step | None = None, on_complete: Step | None = None,
        backend: str = "default",
    ) -> Batch:  # fmt: skip
        """Open a batch; its callbacks run as its jobs end (``.taking_result()``: they get
        ``{"batch": id, "jobs": n, "failed": [job ids]}`` as their first argument). Inside
        a transaction, this and what follows are sent when it commits."""
        flow, store, prepared = _opening(on_success, on_complete, backend)
        workflows = store.broker.workflows
        when_committed(store, f"open batch {flow.id}", lambda: workflows.start(flow), prepared)
        return cls(flow.id, backend)

    @classmethod
    async def aopen(
        cls, *, on_success: Step | None = None, on_complete: Step | None = None,
        backend: str = "default",
    ) -> Batch:  # fmt: skip
        flow, store, prepared = _opening(on_success, on_complete, backend)
        workflows = store.broker.workflows
        await awhen_committed(store, f"open batch {flow.id}", lambda: workflows.start(flow),
                              lambda: workflows.astart(flow), prepared)  # fmt: skip
        return cls(flow.id, backend)

    @classmethod
    def get(cls, batch_id: str, backend: str = "default") -> Batch:
        return cls(batch_id, backend)

    @property
    def _backend(self) -> RedisBackend:
        return backend_named(self.backend_alias)

    @property
    def _workflow(self) -> Workflow:
        return Workflow(self.id, self.backend_alias, (), ())

    def enqueue(self, task: DjangoTask[Any, Any], *args: Any, **kwargs: Any) -> Result:
        """Enqueue a call of ``task`` into the batch: BatchEnded if it has ended."""
        result, job = self._prepared(task, args, kwargs)
        what = f"enqueue into batch {self.id}"
        when_committed(self._backend, what, self._add(job), [(result, job)])
        return result

    async def aenqueue(self, task: DjangoTask[Any, Any], *args: Any, **kwargs: Any) -> Result:
        result, job = self._prepared(task, args, kwargs)
        what = f"enqueue into batch {self.id}"
        await awhen_committed(self._backend, what, self._add(job), self._aadd(job), [(result, job)])
        return result

    def _add(self, job: NewJob) -> Callable[[], None]:
        def add() -> None:
            with _batch_errors(self.id):
                self._backend.broker.workflows.add(self.id, [job])

        return add

    def _aadd(self, job: NewJob) -> Callable[[], Awaitable[None]]:
        async def add() -> None:
            with _batch_errors(self.id):
                await self._backend.broker.workflows.aadd(self.id, [job])

        return add

    def _prepared(
        self, task: DjangoTask[Any, Any], args: Any, kwargs: Any
    ) -> tuple[Result, NewJob]:
        backend = self._backend
        if redis_backend(task.get_backend()) is not backend:
            raise InvalidTask(f"{task.module_path}: uses another TASKS backend than the batch")
        mine = cast(Task, task)
        if mine.idempotency_key is not None or mine.unique_for is not None:
            raise InvalidTask(f"{mine.module_path}: a unique task cannot join a batch")
        return backend.prepare(mine, args, kwargs)

    def close(self) -> None:
        """No more jobs will be added but by its own jobs: the batch ends when they have."""
        when_committed(self._backend, f"close batch {self.id}", self._close)

    async def aclose(self) -> None:
        await awhen_committed(self._backend, f"close batch {self.id}", self._close, self._aclose)

    def _close(self) -> None:
        with _batch_errors(self.id):
            self._backend.broker.workflows.close(self.id)

    async def _aclose(self) -> None:
        with _batch_errors(self.id):
            await self._backend.broker.workflows.aclose(self.id)

    def progress(self) -> Progress:
        return self._workflow.progress()

    async def aprogress(self) -> Progress:
        return await self._workflow.aprogress()

    async def afinished(self, timeout: float) -> Progress:
        """Wait until the batch has ended (closed, and every job ended); TimeoutError after
        ``timeout`` seconds."""
        return await self._workflow.afinished(timeout)

    def finished(self, timeout: float) -> Progress:
        return self._workflow.finished(timeout)

    def cancel(self) -> str:
        """Its callbacks never run; the jobs already in it run on (cancel them one by one)."""
        return self._workflow.cancel()

    async def acancel(self) -> str:
        return await self._workflow.acancel()


@contextlib.contextmanager
def _batch_errors(batch_id: str) -> Iterator[None]:
    """What Redis says about the batch, as this module's exceptions."""
    try:
        yield
    except ResponseError as e:
        if "no such batch" in str(e):
            raise WorkflowDoesNotExist(batch_id) from None
        if "has ended" in str(e):
            raise BatchEnded(f"batch {batch_id} has ended: it takes no more jobs") from None
        raise


def _opening(
    on_success: Step | None, on_complete: Step | None, alias: str
) -> tuple[NewWorkflow, RedisBackend, list[tuple[Result, NewJob]]]:
    """The batch to open, its backend, and its callbacks' results and jobs."""
    callbacks = [c for c in (on_success, on_complete) if c is not None]
    for callback in callbacks:
        if not isinstance(callback, Step):
            raise TypeError(f"a batch's callback is a step(task, ...), not {callback!r}")
    backend = backend_named(alias)
    steps, prepared = [], []
    for callback in callbacks:
        if redis_backend(callback.task.get_backend()) is not backend:
            raise InvalidTask("a batch's callbacks must use the batch's TASKS backend")
        task = cast(Task, callback.task)
        incoming = (callback.takes_result, False)
        result, job = backend.prepare(task, callback.args, callback.kwargs, incoming)
        prepared.append((result, job))
        steps.append(NewStep(job, 1, (), "b" if callback.takes_result else "", False, False))
    first = cast(Task, callbacks[0].task).queue_name if callbacks else "default"
    return NewWorkflow(
        new_job_id(first), "b", keep_ms(backend), STOPPED, steps,
        on_success=1 if on_success is not None else None,
        on_complete=len(steps) if on_complete is not None else None,
    ), backend, prepared  # fmt: skip
