"""The job that code runs for: set by the worker as an attempt starts, read by the JSON log
lines and by the loop watchdog.

A context variable: it follows the job into the asyncio tasks it starts, into its
``sync_to_async`` calls and, copied by runtime/attempt.py, into a sync job's thread. It
holds what the worker has at hand (a plain tuple: this is on every job's path); readers,
far rarer, make a ``Job`` of it.
"""

from __future__ import annotations

from contextvars import Context, ContextVar
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from worker.protocol.records import Lease
    from worker.task import Task


class Job(NamedTuple):
    """The attempt being run."""

    id: str
    task: str  # the task's module path
    queue: str
    attempt: int


_JOB: ContextVar[tuple[Lease, str, Task] | None] = ContextVar("worker_job", default=None)

# The attribute of a log record that names its job, for a line about a job logged outside
# it (by the loop watchdog's thread, where the job's context variable is not set).
RECORD_ATTRIBUTE = "worker_job"


def enter(lease: Lease, queue: str, task: Task) -> None:
    """Mark the current context as running this attempt. The worker runs each attempt in
    an asyncio task of its own, whose context ends with it: nothing needs resetting."""
    _JOB.set((lease, queue, task))


def current() -> Job | None:
    """The job the calling code runs for, if any."""
    return _job(_JOB.get())


def of(context: Context) -> Job | None:
    """The job ``context`` (an asyncio task's, say) runs for, if any."""
    return _job(context.get(_JOB))


def _job(held: tuple[Lease, str, Task] | None) -> Job | None:
    if held is None:
        return None
    lease, queue, task = held
    return Job(lease.id, task.module_path, queue, lease.attempt)
