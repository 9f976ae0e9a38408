"""A workflow (or batch) once enqueued: its id, where it stands, its steps' results, and
ways to cancel it and to wait for its end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from django.tasks import task_backends
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask

from worker.exceptions import BrokerUnavailable
from worker.protocol.keys import queue_of
from worker.protocol.listener import AGAIN
from worker.protocol.workflows import WorkflowState
from worker.waiting import READ_AGAIN_AFTER, on_own_loop

if TYPE_CHECKING:
    from worker.backend import RedisBackend
    from worker.task import Result


class WorkflowStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


_STATUS = {"R": WorkflowStatus.RUNNING, "S": WorkflowStatus.SUCCEEDED,
           "F": WorkflowStatus.FAILED, "C": WorkflowStatus.CANCELLED}  # fmt: skip
STEP_ENDS = {"S": "SUCCESSFUL", "F": "FAILED", "C": "CANCELLED"}


class WorkflowDoesNotExist(LookupError):
    """No workflow or batch of that id (never enqueued, or ended and kept no longer)."""


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a workflow stands: its status, and steps (a batch: jobs) ended of total."""

    status: WorkflowStatus
    ended: int
    total: int
    failed: int  # of those ended, the ones that did not succeed (failed or cancelled)
    steps: tuple[tuple[str, str | None], ...]  # each step's job id, and how it ended

    @property
    def finished(self) -> bool:
        return self.status != WorkflowStatus.RUNNING


def progress_of(state: WorkflowState) -> Progress:
    total = state.jobs if state.jobs is not None else len(state.steps)
    steps = tuple((job_id, STEP_ENDS.get(end or "")) for job_id, end in state.steps)
    return Progress(_STATUS[state.status], state.ended, total, state.failed, steps)


def known(workflow_id: str) -> str:
    """``workflow_id`` if it is shaped like one (as a job id: a workflow's is one of its
    first step's queue); else WorkflowDoesNotExist, as for an id Redis does not have."""
    try:
        queue_of(workflow_id)
    except ValueError:
        raise WorkflowDoesNotExist(workflow_id) from None
    return workflow_id


@dataclass(frozen=True, slots=True)
class Workflow:
    """An enqueued workflow. ``steps``: its steps' job ids, in the order written (each a
    job: ``get_result`` reads it); ``ends``: those of its last steps."""

    id: str
    backend_alias: str
    steps: tuple[str, ...]
    ends: tuple[str, ...]

    def __post_init__(self) -> None:
        known(self.id)

    @classmethod
    def get(cls, workflow_id: str, backend: str = "default") -> Workflow:
        """The workflow of that id; WorkflowDoesNotExist if Redis has none."""
        state = backend_named(backend).broker.workflows.read(known(workflow_id))
        return cls._of(workflow_id, backend, state)

    @classmethod
    async def aget(cls, workflow_id: str, backend: str = "default") -> Workflow:
        workflows = backend_named(backend).broker.workflows
        return cls._of(workflow_id, backend, await workflows.aread(known(workflow_id)))

    @classmethod
    def _of(cls, workflow_id: str, alias: str, state: WorkflowState | None) -> Workflow:
        if state is None:
            raise WorkflowDoesNotExist(workflow_id)
        ids = tuple(job_id for job_id, _ in state.steps)
        return cls(workflow_id, alias, ids, tuple(state.ends))

    @property
    def backend(self) -> RedisBackend:
        return backend_named(self.backend_alias)

    def progress(self) -> Progress:
        with self.backend.reaching_redis(f"read workflow {self.id}", sends=False):
            return self._progress(self.backend.broker.workflows.read(self.id))

    async def aprogress(self) -> Progress:
        with self.backend.reaching_redis(f"read workflow {self.id}", sends=False):
            return self._progress(await self.backend.broker.workflows.aread(self.id))

    def _progress(self, state: WorkflowState | None) -> Progress:
        if state is None:
            raise WorkflowDoesNotExist(self.id)
        return progress_of(state)

    def results(self) -> list[Result]:
        """Each step's result, in the order written."""
        return [self.backend.get_result(job_id) for job_id in self.steps]

    def cancel(self) -> str:
        """Cancel it: its steps not started never run, its running ones are asked to stop.
        Returns "cancelled", or the status it had ended with."""
        with self.backend.reaching_redis(f"cancel workflow {self.id}"):
            return self._cancelled(self.backend.broker.workflows.stop(self.id))

    async def acancel(self) -> str:
        with self.backend.reaching_redis(f"cancel workflow {self.id}"):
            return self._cancelled(await self.backend.broker.workflows.astop(self.id))

    def _cancelled(self, reply: str) -> str:
        if reply == "missing":
            raise WorkflowDoesNotExist(self.id)
        return reply if reply == "cancelled" else _STATUS[reply].value

    async def afinished(self, timeout: float) -> Progress:
        """Wait until the workflow has ended (woken by Redis as its status changes, not
        polling); TimeoutError after ``timeout`` seconds, the workflow going on."""
        listener = self.backend.broker.loop().listener
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                async with listener.watching([self.id]) as events:
                    while True:
                        try:
                            progress = await self.aprogress()
                            if progress.finished:
                                return progress
                        except BrokerUnavailable:  # the listener says when Redis is back
                            loop.call_later(READ_AGAIN_AFTER, events.put_nowait, AGAIN)
                        await events.get()
        except TimeoutError:
            raise TimeoutError(f"workflow {self.id} had not ended after {timeout}s") from None

    def finished(self, timeout: float) -> Progress:
        return on_own_loop(lambda: self.afinished(timeout), self.backend)


def redis_backend(backend: BaseTaskBackend) -> RedisBackend:
    """``backend``, if workflows can use it; else InvalidTask saying why not."""
    from worker.backend import RedisBackend

    if not isinstance(backend, RedisBackend):
        raise InvalidTask(
            f"workflows need worker.backend.RedisBackend, not {type(backend).__name__}"
        )
    return backend


def backend_named(alias: str) -> RedisBackend:
    """The TASKS backend of that alias, if workflows can use it."""
    return redis_backend(task_backends[alias])
