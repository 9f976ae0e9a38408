"""Django TaskResults built from what Redis holds about a job."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import orjson
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.base import TASK_REFRESH_ATTRS, TaskError
from django.tasks.exceptions import TaskResultDoesNotExist
from django.utils import timezone

from worker.context import Progress
from worker.protocol.keys import enqueued_ms_of, queue_of
from worker.task import Task, lookup

if TYPE_CHECKING:
    from collections.abc import Callable

    from worker.task import Result


def from_ms(value: bytes | int | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None


if TYPE_CHECKING:
    _TaskResult = TaskResult[Any, Any]
else:
    _TaskResult = TaskResult


# frozen as Django's own is at run time (its stubs say otherwise)
@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult(_TaskResult):  # type: ignore[misc]
    """Django's TaskResult, and what the job reported of itself while it ran
    (worker/context.py): its progress and its metadata."""

    progress: Progress | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def refresh(self) -> None:
        self._take(self.task.get_backend().get_result(self.id))

    async def arefresh(self) -> None:
        self._take(await self.task.get_backend().aget_result(self.id))

    def _take(self, refreshed: TaskResult[Any, Any]) -> None:
        for name in (*TASK_REFRESH_ATTRS, "progress", "metadata"):
            object.__setattr__(self, name, getattr(refreshed, name, None))


def make_result(
    task: Task,
    job_id: str,
    status: TaskResultStatus,
    args: list[Any],
    kwargs: dict[str, Any],
    backend: str,
    *,
    enqueued_at: datetime | None = None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    last_attempted_at: datetime | None = None,
    errors: Iterable[TaskError] = (),
    worker_ids: Iterable[str] = (),
    return_value: Any = None,
    progress: Progress | None = None,
    metadata: dict[str, Any] | None = None,
) -> Result:
    """The one way this engine makes a TaskResult, for arguments that are JSON-ready already
    (decoded from a message, or checked by encode): Result's own __init__ would walk
    them again, through abstract-class checks that cost more than the rest of an enqueue's
    Python."""
    if _SETTERS is None:  # a Django whose TaskResult has other fields: its own constructor
        built: Result = JobResult(
            task=task,
            id=job_id,
            status=status,
            enqueued_at=enqueued_at,
            started_at=started_at,
            finished_at=finished_at,
            last_attempted_at=last_attempted_at,
            args=args,
            kwargs=kwargs,
            backend=backend,
            errors=list(errors),
            worker_ids=list(worker_ids),
            progress=progress,
            metadata={} if metadata is None else metadata,
        )
        object.__setattr__(built, "_return_value", return_value)
        return built
    result = object.__new__(JobResult)
    # One call per field, written out: a loop over the fields costs twice as much, and a
    # bulk enqueue makes one result per job.
    (
        set_task, set_id, set_status, set_enqueued_at, set_started_at, set_finished_at,
        set_last_attempted_at, set_args, set_kwargs, set_backend, set_errors,
        set_worker_ids, set_return_value, set_progress, set_metadata,
    ) = _SETTERS  # fmt: skip
    set_task(result, task)
    set_id(result, job_id)
    set_status(result, status)
    set_enqueued_at(result, enqueued_at)
    set_started_at(result, started_at)
    set_finished_at(result, finished_at)
    set_last_attempted_at(result, last_attempted_at)
    set_args(result, args)
    set_kwargs(result, kwargs)
    set_backend(result, backend)
    set_errors(result, list(errors))
    set_worker_ids(result, list(worker_ids))
    set_return_value(result, return_value)
    set_progress(result, progress)
    set_metadata(result, {} if metadata is None else metadata)
    return result


def finished(
    result: Result,
    status: TaskResultStatus,
    errors: Iterable[TaskError],
    return_value: Any = None,
) -> Result:
    """A copy of a running job's result as it ended (for ``task_finished``)."""
    return make_result(
        cast(Task, result.task),
        result.id,
        status,
        result.args,
        result.kwargs,
        result.backend,
        enqueued_at=result.enqueued_at,
        started_at=result.started_at,
        finished_at=timezone.now(),
        last_attempted_at=result.last_attempted_at,
        errors=errors,
        worker_ids=result.worker_ids,
        return_value=return_value,
        progress=getattr(result, "progress", None),
        metadata=getattr(result, "metadata", None),
    )


# TaskResult's fields, and the setters of their slots: a Django that adds or renames a
# field falls back to TaskResult's own constructor (slower), with a warning.
_FIELDS = ("task", "id", "status", "enqueued_at", "started_at", "finished_at",
           "last_attempted_at", "args", "kwargs", "backend", "errors", "worker_ids",
           "_return_value")  # fmt: skip


def _setters() -> tuple[Callable[[Result, Any], None], ...] | None:
    if tuple(f.name for f in dataclass_fields(TaskResult)) != _FIELDS:
        warnings.warn(
            "django.tasks.TaskResult's fields differ from those worker.results knows: "
            "results are built with TaskResult's own constructor (slower)",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return (*(vars(TaskResult)[name].__set__ for name in _FIELDS),
            vars(JobResult)["progress"].__set__, vars(JobResult)["metadata"].__set__)  # fmt: skip


_SETTERS = _setters()


def errors_of(fields: dict[bytes, bytes], before: int | None = None) -> list[TaskError]:
    """Each attempt's error (of the attempts before ``before``, if given), in attempt order
    (stored as fields error:1, error:2, ...)."""
    numbered = sorted(
        (int(name[6:]), value) for name, value in fields.items() if name.startswith(b"error:")
    )
    if before is not None:
        numbered = [(n, value) for n, value in numbered if n < before]
    return [TaskError(**orjson.loads(value)) for _, value in numbered]


# A job's status, as the job hash spells it (the previous protocol spelled it out).
_STATUSES = {
    **{status.value.encode(): status for status in TaskResultStatus},
    b"Q": TaskResultStatus.READY,
    b"R": TaskResultStatus.RUNNING,
    b"S": TaskResultStatus.SUCCESSFUL,
    b"F": TaskResultStatus.FAILED,
}
# The previous protocol's field names, and this one's.
_LEGACY_FIELDS = {
    b"payload": b"m", b"max_attempts": b"n", b"priority": b"p", b"run_after": b"r",
    b"attempts": b"a", b"started_at": b"t", b"last_attempted_at": b"l", b"worker_ids": b"w",
    b"finished_at": b"f", b"result": b"v", b"status": b"s",
}  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRecord:
    """Everything Redis holds about one job, readable even when its message is not (a bad
    message, a task this project no longer has): what operators inspect."""

    id: str
    queue: str
    task_path: str | None  # None when the message is unreadable
    args: list[Any]
    kwargs: dict[str, Any]
    status: TaskResultStatus
    priority: int
    attempts: int
    max_attempts: int
    enqueued_at: datetime | None
    run_after: datetime | None
    started_at: datetime | None
    last_attempted_at: datetime | None
    finished_at: datetime | None
    worker_ids: list[str]
    errors: list[TaskError]
    return_value: Any = None
    message_error: str | None = None  # why the message cannot be read, if it cannot
    progress: Progress | None = None  # as the job last reported it
    metadata: dict[str, Any] = field(default_factory=dict)
    # when each failed attempt began and ended, by attempt number (ACK records them)
    spans: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)
    workflow: str | None = None  # the id of its workflow or batch (worker/workflows)
    waiting: bool = False  # a workflow's step waiting for the steps before it to end

    @classmethod
    def from_hash(cls, job_id: str, fields: dict[bytes, bytes]) -> JobRecord:
        """From a job hash (its fields: docs/protocol.md), or one the previous protocol
        (0.1) wrote, whose finished jobs stay readable until they expire."""
        legacy = b"payload" in fields
        if legacy:
            fields = {_LEGACY_FIELDS.get(name, name): value for name, value in fields.items()}
        if b"m" not in fields:
            raise TaskResultDoesNotExist(job_id)
        enqueued = enqueued_ms_of(job_id)
        # The hash keeps times as ms after the enqueue; the previous protocol, the times.
        base = 0 if legacy else enqueued

        def at(name: bytes) -> datetime | None:
            value = fields.get(name)
            return from_ms(base + int(value)) if value is not None else None

        path, args, kwargs, message_error = None, [], {}, None
        try:
            payload = orjson.loads(fields[b"m"])
            path, args, kwargs = payload["task"], payload.get("args", []), payload.get("kwargs", {})
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            message_error = "the message is unreadable"
        raw_ids = fields.get(b"w", b"").decode()
        return cls(
            id=job_id,
            queue=queue_of(job_id),
            task_path=path if isinstance(path, str) else None,
            args=args if isinstance(args, list) else [],
            kwargs=kwargs if isinstance(kwargs, dict) else {},
            status=TaskResultStatus.SUCCESSFUL
            if b"v" in fields
            else _STATUSES[fields.get(b"s", b"Q")],
            priority=int(fields.get(b"p", 0)),
            attempts=int(fields.get(b"a", 1 if b"v" in fields else 0)),
            max_attempts=int(fields.get(b"n", 1)),
            enqueued_at=from_ms(enqueued),
            run_after=from_ms(fields.get(b"r")),
            started_at=at(b"t"),
            last_attempted_at=at(b"l") or at(b"t"),  # none: the first attempt's start
            finished_at=at(b"f"),
            worker_ids=raw_ids.split(",") if raw_ids else [],
            errors=errors_of(fields),
            return_value=orjson.loads(fields[b"v"]) if b"v" in fields else None,
            message_error=message_error,
            progress=_progress(fields.get(b"g")),
            metadata=_metadata(fields.get(b"d")),
            spans=_spans(fields, enqueued),
            workflow=fields[b"W"].decode() if b"W" in fields else None,
            waiting=b"b" in fields,
        )

    def to_result(self, backend: str) -> Result:
        """As Django's TaskResult; TaskResultDoesNotExist if its task cannot be known."""
        task = lookup(self.task_path) if self.task_path else None
        if task is None:
            reason = self.message_error or f"task {self.task_path!r} is not registered here"
            raise TaskResultDoesNotExist(f"{self.id}: {reason}")
        if (task.queue_name, task.priority) != (self.queue, self.priority):
            task = task.using(queue_name=self.queue, priority=self.priority)
        return make_result(
            task,
            self.id,
            self.status,
            self.args,
            self.kwargs,
            backend,
            enqueued_at=self.enqueued_at,
            started_at=self.started_at,
            finished_at=self.finished_at,
            last_attempted_at=self.last_attempted_at,
            errors=self.errors,
            worker_ids=self.worker_ids,
            return_value=self.return_value,
            progress=self.progress,
            metadata=self.metadata,
        )


def _spans(fields: dict[bytes, bytes], enqueued: int) -> dict[int, tuple[datetime, datetime]]:
    """The ``at:<n>`` fields: attempt n's start and end, ms after the enqueue."""
    found = {}
    for name, value in fields.items():
        if name.startswith(b"at:"):
            began, _, ended = value.partition(b" ")
            at = datetime.fromtimestamp((enqueued + int(began)) / 1000, UTC)
            found[int(name[3:])] = (at, datetime.fromtimestamp((enqueued + int(ended)) / 1000, UTC))
    return dict(sorted(found.items()))


def _progress(data: bytes | None) -> Progress | None:
    try:
        return Progress.from_json(data) if data else None
    except (orjson.JSONDecodeError, TypeError, ValueError):  # not what REPORT writes
        return None


def _metadata(data: bytes | None) -> dict[str, Any]:
    try:
        found = orjson.loads(data) if data else {}
    except orjson.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def parse(job_id: str, fields: dict[bytes, bytes], backend: str) -> Result:
    """The TaskResult for a job hash; TaskResultDoesNotExist when there is none."""
    return JobRecord.from_hash(job_id, fields).to_result(backend)
