"""Errors the engine raises to callers, and the one a task raises to stop retries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.tasks.exceptions import InvalidTask, TaskException

if TYPE_CHECKING:
    from worker.task import Result


class InvalidArguments(InvalidTask, TypeError):
    """The arguments of an enqueue cannot be sent (not JSON, too big). A TypeError too, as
    Django's documentation promises for arguments that are not JSON."""


class BrokerUnavailable(TaskException):
    """Redis could not be reached, or refused to store (out of memory, read-only). A bulk
    enqueue cut off midway lists in ``enqueued`` the results of the jobs Redis confirmed it
    stored. ``maybe_stored`` is True when Redis may have stored a job it did not confirm
    (the request went out, no reply came): enqueue it again with the same idempotency key
    (``task.using(idempotency_key=...)``) and it is stored once. With durability
    "replicated", ``unconfirmed`` are the results in ``enqueued`` that Redis stored but no
    replica confirmed in time: on the master only, lost should it fail before a replica
    has them; sending them again stores them twice."""

    def __init__(
        self, message: str, enqueued: list[Result] | None = None, maybe_stored: bool = False,
        unconfirmed: list[Result] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.enqueued = enqueued or []
        self.maybe_stored = maybe_stored
        self.unconfirmed = unconfirmed or []


class PermanentFailure(Exception):
    """Raise (or subclass) in a task to fail the job at once, without further attempts."""


class RateLimited(Exception):
    """Raise in a task when the service it calls asks to slow down (an HTTP 429 with
    Retry-After): the job runs again after ``retry_after`` seconds, and this attempt does
    not count against ``max_attempts``."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        if isinstance(retry_after, bool) or not isinstance(retry_after, int | float):
            raise TypeError(f"retry_after must be a number of seconds, not {retry_after!r}")
        if not 0 <= retry_after < float("inf"):
            raise ValueError(f"retry_after must be >= 0 seconds and finite, not {retry_after!r}")
        super().__init__(message or f"rate limited: run again in {retry_after:g}s")
        self.retry_after = float(retry_after)


class DatabasePoolExhausted(Exception):
    """No database connection came from the connection pool within its timeout (see
    worker/db/pool.py): the job failed this attempt and is retried as any failure."""


class WorkerLost(Exception):
    """The worker running the job stopped heartbeating (killed, crashed, cut off) mid-run."""


class MessageRejected(Exception):
    """The job's message can never run (not JSON, unknown task, wrong arguments, too big)."""


class Cancelled(Exception):
    """An operator cancelled the job (``jobs cancel``): before it ran, or while it ran."""


class UnknownTask(InvalidTask):
    """No task of this project is registered under the name asked for."""
