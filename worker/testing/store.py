"""What an in-process backend keeps: every job it was given, in order, with where each
stands, and the uniqueness keys of the unique ones.

A job's record holds what the job hash holds in Redis (docs/protocol.md), as Python
values; its result is built by ``worker.results.make_result`` like the Redis backend's.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from django.tasks import TaskResultStatus
from django.tasks.base import TaskError

from worker.context import Progress
from worker.protocol.records import NewJob, now_ms
from worker.results import from_ms, make_result

if TYPE_CHECKING:
    from worker.task import Result, Task

_order = itertools.count()


@dataclass(slots=True, eq=False)
class Job:
    """One job: what its enqueue made (``new``: id, queue, message, priority, ...), and
    where it stands."""

    new: NewJob
    task: Task  # as enqueued (its queue, priority, run_after)
    args: list[Any]
    kwargs: dict[str, Any]
    status: TaskResultStatus = TaskResultStatus.READY
    worker_ids: list[str] = field(default_factory=list)  # one per counted attempt
    errors: list[TaskError] = field(default_factory=list)  # one per failed attempt
    return_value: Any = None
    started_ms: int | None = None  # the first attempt's start
    attempted_ms: int | None = None  # the latest attempt's start
    finished_ms: int | None = None
    # Seconds each retry would have waited in a worker (Task.retry_delay): the in-process
    # backends do not wait.
    retry_delays: list[float] = field(default_factory=list)
    deferrals: int = 0  # RateLimited in a row, in its latest run
    kept_until: float | None = None  # when its finished record goes (time.time()); None: kept
    progress: Progress | None = None  # as the job last reported it (worker/context.py)
    metadata: dict[str, Any] = field(default_factory=dict)
    order: int = field(default_factory=lambda: next(_order))

    @property
    def id(self) -> str:
        return self.new.id

    @property
    def attempts(self) -> int:
        return len(self.worker_ids)

    @property
    def kept(self) -> bool:
        """Whether ``get_result`` still finds it (a finished job's result_ttl)."""
        return self.kept_until is None or time.time() < self.kept_until

    def result(self, backend: str) -> Result:
        return make_result(
            self.task,
            self.id,
            self.status,
            self.args,
            self.kwargs,
            backend,
            enqueued_at=from_ms(self.new.enqueued_ms),
            started_at=from_ms(self.started_ms),
            finished_at=from_ms(self.finished_ms),
            last_attempted_at=from_ms(self.attempted_ms),
            errors=self.errors,
            worker_ids=self.worker_ids,
            return_value=self.return_value,
            progress=self.progress,
            metadata=self.metadata,
        )

    def report(self, job_id: str, progress: bytes | None, metadata: bytes | None) -> None:
        """What the job reported of itself (a Reporter: worker/context.py), at once."""
        if progress is not None:
            self.progress = Progress.from_json(progress)
        if metadata is not None:
            self.metadata = orjson.loads(metadata)

    def due(self, now: int) -> bool:
        """Whether it is ready to run at ``now`` (epoch ms): not deferred beyond it."""
        return self.new.run_after_ms is None or self.new.run_after_ms <= now


class Jobs:
    """Every job an in-process backend was given, in order; those kept, by id; and which
    job each uniqueness key (``unique_for``, an idempotency key) names, until when."""

    def __init__(self) -> None:
        self._all: list[Job] = []
        self._by_id: dict[str, Job] = {}
        self._unique: dict[tuple[str, str], tuple[str, int]] = {}  # -> (job id, until ms)

    def add(self, job: Job) -> None:
        self._all.append(job)
        self._by_id[job.id] = job
        if job.new.unique is not None:
            key, window_ms = job.new.unique
            self._unique[(job.new.queue, key)] = (job.id, job.new.enqueued_ms + window_ms)

    def twin(self, new: NewJob) -> Job | None:
        """The kept job a unique call's key names, within its window (as lua/first.lua)."""
        if new.unique is None:
            return None
        named = self._unique.get((new.queue, new.unique[0]))
        if named is None or named[1] <= now_ms():
            return None
        return self.get(named[0])

    def get(self, job_id: str) -> Job | None:
        job = self._by_id.get(job_id)
        return job if job is not None and job.kept else None

    def all(self) -> list[Job]:
        """Every job, kept or not, in the order they were enqueued."""
        return list(self._all)

    def ready(self, queues: set[str] | None = None) -> list[Job]:
        """The jobs waiting to run, in the order a worker would take them were their times
        come: those due now, then those deferred, by when; each by priority (higher
        first), then first in, first out."""
        now = now_ms()

        def place(job: Job) -> tuple[int, int, int]:
            after = job.new.run_after_ms
            return (0 if after is None or after <= now else after, -job.new.priority, job.order)

        waiting = [
            job
            for job in self._all
            if job.status == TaskResultStatus.READY and (queues is None or job.new.queue in queues)
        ]
        return sorted(waiting, key=place)

    def clear(self) -> None:
        self._all.clear()
        self._by_id.clear()
        self._unique.clear()
