"""The soak's job kinds. Each execution appends a ``start`` line and, unless its worker dies
first, an ``end`` line (with ``ok`` and, on success, a token unique to this execution, which
is also the return value: the stored result must be the token of an execution that ended)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from typing import Any

from django.tasks import task

from bench import chaos_ledger
from worker.periodic import periodic

# Generous attempts: a job hit by several kills must not run out of them (WorkerLost counts),
# so a dead letter of these kinds means something went wrong, not bad luck.
RETRYING: dict[str, Any] = {"max_attempts": 25, "backoff": 0.2, "backoff_max": 2.0, "timeout": 60}


def _start(context: Any, kind: str, **extra: Any) -> None:
    result = context.task_result
    run_after = result.task.run_after.timestamp() if result.task.run_after else None
    chaos_ledger.record("start", j=result.id, k=kind, a=context.attempt, ra=run_after, **extra)


def _end(context: Any, kind: str, ok: bool = True) -> str:
    token = uuid.uuid4().hex
    chaos_ledger.record(
        "end", j=context.task_result.id, k=kind, a=context.attempt, ok=ok, tok=token if ok else None
    )
    return token


@task(takes_context=True, **RETRYING)
async def io_job(context: Any, key: str, seconds: float) -> str:
    """Stands for a job waiting on I/O (an HTTP call): awaits without using the CPU."""
    _start(context, "io")
    await asyncio.sleep(seconds)
    return _end(context, "io")


@task(takes_context=True, **RETRYING)
def cpu_job(context: Any, key: str, ms: float) -> str:
    """A sync job keeping a thread busy (rendering, parsing)."""
    _start(context, "cpu")
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass
    return _end(context, "cpu")


@task(takes_context=True, **RETRYING)
async def flaky_job(context: Any, key: str, failures: int) -> str:
    """Fails its first ``failures`` attempts, then succeeds."""
    _start(context, "flaky")
    await asyncio.sleep(0.01)
    if context.attempt <= failures:
        _end(context, "flaky", ok=False)
        raise RuntimeError(f"attempt {context.attempt} fails on purpose")
    return _end(context, "flaky")


@task(takes_context=True, unique_for=60, **RETRYING)
async def unique_job(context: Any, n: int) -> str:
    _start(context, "unique", n=n)
    await asyncio.sleep(0.05)
    return _end(context, "unique")


@task(takes_context=True, priority=50, **RETRYING)
async def probe(context: Any, key: str) -> str:
    """Sent after each fault is lifted: its end says the system works again."""
    _start(context, "probe")
    return _end(context, "probe")


@periodic(every=5)
@task(takes_context=True, **RETRYING)
async def tick(context: Any) -> str:
    """Fires every 5 s: exactly one job per fire time (its run_after) is the guarantee."""
    _start(context, "tick")
    return _end(context, "tick")


@task(takes_context=True, max_attempts=2, backoff=0.1)
async def poison_job(context: Any, key: str) -> str:
    """Kills its worker on every attempt: it must be dead-lettered after two deliveries
    (WorkerLost), while other jobs keep flowing."""
    _start(context, "poison")
    os.kill(os.getpid(), signal.SIGKILL)
    await asyncio.sleep(10)
    return _end(context, "poison")
