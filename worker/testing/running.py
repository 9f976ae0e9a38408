"""``run_jobs()`` / ``await arun_jobs()``: run the jobs waiting, in process, until none is
left: an in-process backend's from its memory, the Redis backend's by burst workers
(``runworker --burst``, in process) whose jobs run in the caller's thread, so that they
see what a test wrote (in a ``TestCase``, its transaction)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from asgiref.sync import sync_to_async
from django.tasks import task_backends

from worker.backend import RedisBackend
from worker.testing import execution
from worker.testing.caller import CallerSlots, run_sync
from worker.testing.commit import send_waiting_jobs
from worker.testing.local import InProcessBackend

# Seconds between looks at how many attempts a burst worker has run (against the limit).
LOOK_EVERY = 0.05


def run_jobs(
    backend: str | None = None,
    *,
    queues: Iterable[str] | None = None,
    limit: int = 10_000,
    concurrency: int = 1,
) -> int:
    """Run every job waiting in the queues of ``backend`` (a TASKS alias; default: every
    backend of ours in TASKS), and those they enqueue, until none is left; the attempts
    run. First sends the jobs that wait for the commit of a TestCase's transaction
    (worker/testing/commit.py).

    In-process backends run each job to its end, retries and deferred jobs included, one
    at a time. The Redis backend is drained by burst workers of ``concurrency`` (1: one
    job at a time, in queue order); there, as with ``runworker --burst``, jobs due later
    (``run_after``, retries after their backoff) stay queued. RuntimeError past ``limit``
    attempts (jobs that keep enqueuing jobs)."""
    return _sent() + run_sync(_run_on_own_loop, backend, queues, limit, concurrency)


async def arun_jobs(
    backend: str | None = None,
    *,
    queues: Iterable[str] | None = None,
    limit: int = 10_000,
    concurrency: int = 1,
) -> int:
    """``run_jobs`` for async code."""
    return _sent() + await _run(backend, queues, limit, concurrency)


def _sent() -> int:
    """Send the jobs waiting for a TestCase's commit; the attempts that ran as they were
    (by an ImmediateBackend)."""
    return _send()[0]


def _send() -> tuple[int, int]:
    """``_sent``, and how many jobs were sent."""
    before = execution.attempts_run()
    sent = send_waiting_jobs()
    return execution.attempts_run() - before, sent


async def _run_on_own_loop(
    alias: str | None, queues: Iterable[str] | None, limit: int, concurrency: int
) -> int:
    """``_run`` on a loop made for it, which ends with it: its Redis connections closed."""
    try:
        return await _run(alias, queues, limit, concurrency)
    finally:
        for backend in task_backends.all(initialized_only=True):
            if isinstance(backend, RedisBackend) and "broker" in vars(backend):
                await backend.broker.close_loop()


async def _run(
    alias: str | None, queues: Iterable[str] | None, limit: int, concurrency: int
) -> int:
    chosen = None if queues is None else list(queues)
    backends = [task_backends[alias]] if alias is not None else task_backends.all()
    ours = [b for b in backends if isinstance(b, InProcessBackend | RedisBackend)]
    if alias is not None and not ours:
        raise TypeError(
            f"run_jobs: TASKS[{alias!r}] is a {type(backends[0]).__name__}; it runs the "
            "jobs of worker.backend.RedisBackend and of the worker.testing backends"
        )
    total = 0
    while True:  # a job of one backend may enqueue jobs to another, or to a commit
        runs = 0
        for backend in ours:
            if isinstance(backend, InProcessBackend):
                runs += await backend.arun_waiting(chosen, limit - total - runs)
            else:
                runs += await _drain(backend, chosen, concurrency, limit - total - runs)
        total += runs
        # what those jobs enqueued inside their own atomic() (sent from the test's thread:
        # its transaction holds them)
        ran, sent = await sync_to_async(_send)() if runs else (0, 0)
        total += ran
        if not runs or (len(ours) == 1 and not sent):
            return total


async def _drain(
    backend: RedisBackend, queues: list[str] | None, concurrency: int, limit: int
) -> int:
    """Burst workers, one after another, until one finds nothing to run (a burst ends as
    soon as no job is ready, before the outcomes of its last jobs, and the jobs those
    enqueued, are stored)."""
    runs = 0
    while True:
        # No outbox relay: the rows the test's transaction holds are sent by _send (a
        # relay in a thread of its own would wait for the test's locks).
        worker = backend.worker(queues, burst=True, scheduler=False, concurrency=concurrency,
                                slots=CallerSlots(), relay=None)  # fmt: skip
        running = asyncio.ensure_future(worker.run())
        while not running.done():  # a burst whose jobs keep enqueuing jobs never ends
            await asyncio.wait({running}, timeout=LOOK_EVERY)
            if runs + worker.processed > limit:
                worker.stop()
                await running
                raise RuntimeError(
                    f"run_jobs: over {limit} attempts and jobs still wait: do jobs keep "
                    "enqueuing jobs? (raise the limit if this many is expected)"
                )
        await running
        if worker.unwritten:
            raise RuntimeError(f"run_jobs: {worker.unwritten} outcomes could not be stored")
        runs += worker.processed
        if not worker.processed:
            return runs
