"""The records that cross the wire between the engine and Redis: a new job, a lease, an
outcome. (Tuples: one is made per job on the hot paths, and a tuple is made in a fraction
of a frozen dataclass's time.)"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, NamedTuple

import orjson


def now_ms() -> int:
    return int(time.time() * 1000)


def class_path(error: BaseException | type[BaseException]) -> str:
    """``module.QualName`` of an exception (or its class): how errors are recorded."""
    kind = error if isinstance(error, type) else type(error)
    return f"{kind.__module__}.{kind.__qualname__}"


def error_json(exception_class_path: str, traceback: str) -> bytes:
    """An attempt's error as stored in its job hash (Django's TaskError fields); text JSON
    cannot hold (lone surrogates, as in a file name read from disk) is escaped."""
    return json_of({"exception_class_path": exception_class_path, "traceback": traceback})


def json_of(value: Any) -> bytes:
    """``value`` as JSON, any string of it that UTF-8 cannot encode escaped (``\\udce9``)
    rather than refused. Other values JSON cannot hold still raise TypeError."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return orjson.dumps(_escaped(value))


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list | tuple):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    return value


class NewJob(NamedTuple):
    """What an enqueue writes."""

    id: str
    queue: str
    body: bytes
    priority: int
    max_attempts: int
    run_after_ms: int | None
    enqueued_ms: int
    unique: tuple[str, int] | None = None  # (fingerprint of the call, window in ms)
    limit: str | None = None  # its limit group (worker/limits.py), for a task with limits


class Lease(NamedTuple):
    """A job leased to this worker by a fetch. ``payload`` is None when the job is gone."""

    id: str
    payload: bytes | None
    attempt: int = 0
    max_attempts: int = 1
    worker_ids: tuple[str, ...] = ()
    enqueued_ms: int | None = None
    started_ms: int | None = None  # the job's first start
    attempted_ms: int | None = None  # this attempt's start

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


class OutcomeKind(StrEnum):
    """How an attempt ended, as the ACK script reads it (the values are the wire's)."""

    SUCCEEDED = "ok"  # the value is the JSON return value
    FAILED = "err"  # the JSON error; retried while attempts remain
    FATAL = "fatal"  # the JSON error; never retried (dead-lettered)
    CANCELLED = "cancel"  # stopped at an operator's request: FAILED, not a dead letter
    DEFERRED = "later"  # the task raised RateLimited: again after the delay, uncounted


class Outcome(NamedTuple):
    """The end of one attempt, as the ack script takes it."""

    job_id: str
    attempt: int  # whose outcome this is: a stale one must not overwrite a later attempt's
    kind: OutcomeKind
    value: bytes  # JSON: the return value, or {"exception_class_path", "traceback"}
    retry_delay_ms: int = 0
    keep_ms: int | None = None  # how long a success or cancel is kept; None: the default
