"""Workflows and batches (worker/workflows) as operators see them: where one stands and
each of its steps with its task and state, read in one round trip for the workflow and one
per queue its steps use; and cancelling one. What ``Ops.workflow`` and
``Ops.cancel_workflow`` run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from worker.protocol.keys import by_queue
from worker.results import JobRecord, from_ms
from worker.workflows.handle import Progress, Workflow, WorkflowDoesNotExist, known, progress_of

if TYPE_CHECKING:
    from datetime import datetime

    from worker.ops.api import Ops

KINDS = {"w": "workflow", "b": "batch"}


@dataclass(frozen=True, slots=True)
class WorkflowStep:
    """A step (a batch: a callback) and where it stands: how it ended (SUCCESSFUL, FAILED
    or CANCELLED), else RUNNING, READY (queued, delayed, held or waiting to retry) or
    WAITING (for the steps before it); GONE when its job's record is gone (purged or
    expired)."""

    number: int  # from 1, in the order the steps were written
    job_id: str
    task_path: str | None  # None when its record is gone or its message unreadable
    status: str


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """A workflow or batch: its progress (status, steps ended of total, failed; a batch
    counts its jobs, which it does not list) and the steps asked for."""

    id: str
    kind: str  # "workflow" or "batch"
    progress: Progress
    steps: list[WorkflowStep]  # those from ``offset``, at most ``limit``
    offset: int
    ended_at: datetime | None
    closed: bool  # a batch: closed (it ends once its jobs have); a workflow: False


def read(ops: Ops, workflow_id: str, offset: int = 0, limit: int | None = None) -> WorkflowInfo:
    """The workflow (or batch) of that id, with its steps from ``offset`` (0: the first),
    ``limit`` at most (None: all); WorkflowDoesNotExist if Redis has none (never enqueued,
    or ended and kept no longer)."""
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError(f"offset and limit must be >= 0, not {offset!r} and {limit!r}")
    state = ops.broker.workflows.read(known(workflow_id))
    if state is None:
        raise WorkflowDoesNotExist(workflow_id)
    progress = progress_of(state)
    window = list(enumerate(progress.steps, 1))[offset : None if limit is None else offset + limit]
    records: dict[str, JobRecord] = {}
    for ids in by_queue(job_id for _, (job_id, _) in window).values():
        records.update((r.id, r) for r in ops.records(ids))
    steps = [
        WorkflowStep(n, job_id, _task(records.get(job_id)), ended or _standing(records.get(job_id)))
        for n, (job_id, ended) in window
    ]
    return WorkflowInfo(
        id=workflow_id,
        kind=KINDS.get(state.kind, state.kind),
        progress=progress,
        steps=steps,
        offset=offset,
        ended_at=from_ms(state.ended_ms),
        closed=state.closed,
    )


def cancel(ops: Ops, workflow_id: str) -> str:
    """Cancel it: its steps not started never run, its running ones are asked to stop (a
    batch: its callbacks never run; its jobs run on). "cancelled", or the status it had
    ended with (SUCCEEDED, FAILED, CANCELLED); WorkflowDoesNotExist if there is none."""
    return Workflow(workflow_id, ops.backend.alias, (), ()).cancel()


def _task(record: JobRecord | None) -> str | None:
    return None if record is None else record.task_path


def _standing(record: JobRecord | None) -> str:
    """Where a step that has not ended stands, as its job's record says."""
    if record is None:
        return "GONE"
    if record.waiting:
        return "WAITING"
    return str(record.status)
