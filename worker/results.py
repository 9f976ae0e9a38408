"""Django TaskResults built from what Redis holds about a job."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.exceptions import TaskResultDoesNotExist

from worker.task import Task, lookup


def from_ms(value: bytes | int | None) -> datetime | None:
    return datetime.fromtimestamp(int(value) / 1000, UTC) if value else None


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
) -> TaskResult:
    return TaskResult(
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
    )


def errors_of(fields: dict[bytes, bytes]) -> list[TaskError]:
    """Each attempt's error, in attempt order (stored as fields error:1, error:2, ...)."""
    numbered = sorted(
        (int(name[6:]), value) for name, value in fields.items() if name.startswith(b"error:")
    )
    return [TaskError(**orjson.loads(value)) for _, value in numbered]


def parse(job_id: str, fields: dict[bytes, bytes], backend: str) -> TaskResult:
    """The TaskResult for a job hash; TaskResultDoesNotExist when there is none."""
    if not fields or b"payload" not in fields:
        raise TaskResultDoesNotExist(job_id)
    try:
        payload = orjson.loads(fields[b"payload"])
        path = payload["task"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise TaskResultDoesNotExist(f"{job_id}: its message is unreadable") from None
    task = lookup(path)
    if task is None:
        raise TaskResultDoesNotExist(f"{job_id}: task {path!r} is not registered in this project")
    queue, priority = job_id.partition(":")[0], int(fields.get(b"priority", 0))
    if (task.queue_name, task.priority) != (queue, priority):
        task = task.using(queue_name=queue, priority=priority)
    raw_ids = fields.get(b"worker_ids", b"").decode()
    result = make_result(
        task,
        job_id,
        TaskResultStatus(fields[b"status"].decode()),
        payload.get("args", []),
        payload.get("kwargs", {}),
        backend,
        enqueued_at=from_ms(fields.get(b"enqueued_at")),
        started_at=from_ms(fields.get(b"started_at")),
        finished_at=from_ms(fields.get(b"finished_at")),
        last_attempted_at=from_ms(fields.get(b"last_attempted_at")),
        errors=errors_of(fields),
        worker_ids=raw_ids.split(",") if raw_ids else [],
    )
    if result.status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", orjson.loads(fields[b"result"]))
    return result
