"""Running a job in process: attempt after attempt, each by the engine's own code (the
message decoded and checked, ``attempt.run`` with the task's timeout, ``attempt.outcome_of``
deciding between success, retry and failure), recorded as the worker's ACK records it
(lua/ack.lua), but without the waits between attempts.

- A failed attempt with attempts left is tried again at once; the delay a worker would
  have waited (``Task.retry_delay``) is kept in the job's ``retry_delays``.
- ``RateLimited`` runs the job again at once, uncounted, at most ``max_deferrals`` times in
  a row; then the job stays READY, due ``retry_after`` later.
- ``PermanentFailure``, the last attempt's error, a message that cannot run: FAILED.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from logging import ERROR, INFO
from typing import TYPE_CHECKING, cast

import orjson
from django.tasks import TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.signals import task_finished, task_started

from worker.context import JobContext, metadata_json
from worker.exceptions import MessageRejected
from worker.protocol.message import decode
from worker.protocol.records import Lease, Outcome, OutcomeKind, now_ms
from worker.runtime import attempt, signals

if TYPE_CHECKING:
    from worker.task import Result
    from worker.testing.local import InProcessBackend
    from worker.testing.store import Job


_attempts = 0  # run in this process so far, for run_jobs to count those a commit ran


def attempts_run() -> int:
    """Attempts the in-process backends have run in this process so far."""
    return _attempts


async def run(backend: InProcessBackend, job: Job) -> int:
    """Run the READY ``job`` until it ends, or is rate limited ``backend.max_deferrals``
    times in a row; the attempts run (rate-limited ones included)."""
    global _attempts
    sender = type(backend)
    runs = 0
    job.deferrals = 0
    while job.status == TaskResultStatus.READY:
        now = now_ms()
        lease = Lease(job.id, job.new.body, job.attempts + 1, job.new.max_attempts,
                      (*job.worker_ids, backend.worker_id), job.new.enqueued_ms,
                      job.started_ms or now, now)  # fmt: skip
        try:
            call = decode(job.new.body, backend.max_payload_bytes)
        except MessageRejected as e:  # the task is no longer registered, say
            _record(backend, job, lease, attempt.failure(e, lease))
            await _finished(backend, job, e)
            return runs
        job.status, job.attempted_ms = TaskResultStatus.RUNNING, now
        job.started_ms = job.started_ms or now
        result = None
        if call.task.takes_context or not signals.unheard(task_started, sender, INFO):
            result = attempt.running_result(call, lease, backend.alias)
            await signals.asend(task_started, sender, task_result=result)
        try:
            context = None
            if call.task.takes_context:
                context = JobContext(task_result=cast("Result", result),
                                     metadata=dict(job.metadata), reporter=job)  # fmt: skip
            value, error = await attempt.run(call, result, backend.slots, context)
            if context is not None:  # stored as the attempt ends, as a worker does
                with contextlib.suppress(ValueError):  # (a worker logs it, and stores none)
                    job.report(job.id, None, metadata_json(context.metadata))
            outcome, error = attempt.outcome_of(call, lease, value, error)
        except asyncio.CancelledError as e:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                job.status = TaskResultStatus.READY  # the caller is cancelled, not the job
                raise
            outcome, error = attempt.outcome_of(call, lease, None, e)  # raised by the task
        runs += 1
        _attempts += 1
        _record(backend, job, lease, outcome)
        if job.status != TaskResultStatus.READY:
            await _finished(backend, job, error)
        elif outcome.kind == OutcomeKind.DEFERRED and job.deferrals >= backend.max_deferrals:
            later = now_ms() + outcome.retry_delay_ms
            job.new = job.new._replace(run_after_ms=later)
            break
    return runs


def _record(backend: InProcessBackend, job: Job, lease: Lease, outcome: Outcome) -> None:
    """Where the job stands after an attempt's ``outcome``."""
    if outcome.kind == OutcomeKind.DEFERRED:  # not an attempt: nothing of it is recorded
        job.status = TaskResultStatus.READY
        job.deferrals += 1
        return
    job.deferrals = 0
    job.worker_ids.append(backend.worker_id)
    now = now_ms()
    if outcome.kind == OutcomeKind.SUCCEEDED:
        job.status, job.finished_ms = TaskResultStatus.SUCCESSFUL, now
        job.return_value = orjson.loads(outcome.value)
        ttl = job.task.result_ttl if job.task.result_ttl is not None else backend.result_ttl
        job.kept_until = time.time() + ttl
        return
    job.errors.append(TaskError(**orjson.loads(outcome.value)))
    if outcome.kind == OutcomeKind.FAILED and not lease.last_attempt:
        job.status = TaskResultStatus.READY
        job.retry_delays.append(outcome.retry_delay_ms / 1000)
        return
    job.status, job.finished_ms = TaskResultStatus.FAILED, now  # kept, as a dead letter is


async def _finished(backend: InProcessBackend, job: Job, error: BaseException | None) -> None:
    """``task_finished``, as the worker sends it: a failure's while its error is handled
    (Django's logging receiver records the traceback)."""
    sender = type(backend)
    succeeded = job.status == TaskResultStatus.SUCCESSFUL
    if signals.unheard(task_finished, sender, INFO if succeeded else ERROR):
        return
    result = job.result(backend.alias)
    if error is None:
        await signals.asend(task_finished, sender, task_result=result)
        return
    try:
        raise error
    except BaseException:
        await signals.asend(task_finished, sender, task_result=result)
