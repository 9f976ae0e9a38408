"""The workloads of the benchmarks."""

import asyncio
import functools
import time
import uuid

from django.conf import settings
from django.tasks import default_task_backend, task

from bench import body


@task()
async def noop() -> None:
    pass


@task()
async def small_result() -> int:
    """Returns a small value (an int): what a kept result costs in Redis."""
    return 42


@task(result_ttl=0)
async def small_result_unkept() -> int:
    """``small_result`` with ``result_ttl=0``: nothing of it is kept once it succeeded."""
    return 42


@task(result_ttl=60)
async def noop_ttl60() -> None:
    """A no-op whose record is kept a minute (the growth benchmark's long run)."""


@functools.cache
def body_key() -> str:
    """The counter the ``redis_call`` jobs increment."""
    return f"{default_task_backend.broker.keys.prefix}:bench:body"


@task()
async def redis_call() -> None:
    """A typical job's body: awaits one Redis command (INCR) through redis-py's asyncio
    client, one client shared by the process (bench/body.py, which also measures this
    body alone)."""
    await body.call(settings.REDIS_URL, body_key())


@task()
async def spin(ms: float) -> None:
    """Stands for CPU-bound work (rendering, parsing): keeps the CPU busy for ``ms``."""
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


@task()
async def sleep_io(seconds: float) -> None:
    """Stands for a job waiting on I/O: it awaits ``seconds`` without using the CPU."""
    await asyncio.sleep(seconds)


def starts_key() -> str:
    """Hash of job id -> time.time() at the job's start (float seconds), for latency runs."""
    return f"{default_task_backend.broker.keys.prefix}:bench:starts"


@task(takes_context=True)
async def record_start(context) -> None:
    """Records when it started (time.time(), full resolution) under its own id, then pushes
    its id on ``starts_key() + ":done"`` so the benchmark wakes without polling."""
    started = time.time()
    job_id = context.task_result.id
    async with default_task_backend.broker.aclient().pipeline(transaction=False) as pipe:
        pipe.hset(starts_key(), job_id, repr(started))
        pipe.rpush(f"{starts_key()}:done", job_id)
        await pipe.execute()


@task()
async def hold(data: str, seconds: float) -> int:
    """A job with a big argument (``data``) that waits ``seconds``: the worker's memory while
    many run at once."""
    await asyncio.sleep(seconds)
    return len(data)


@task(concurrency_limit=1_000_000, rate_limit="10000000/s")
async def noop_limited() -> None:
    """``noop`` with limits it never reaches (far above a worker's concurrency and any
    drain rate): what checking and counting a limit costs a job. Its rate log keeps every
    start of the drain (up to 10,000,000) until a second without one."""


@functools.cache
def limited_key() -> str:
    """The counter the ``limited`` jobs increment: a drain tells the others' apart."""
    return f"{default_task_backend.broker.keys.prefix}:bench:limited"


@task(concurrency_limit=2)
async def limited(seconds: float) -> None:
    """A task of which 2 jobs at most run at once, each awaiting ``seconds``: beside other
    jobs, most of its own wait held. Counts itself done (``limited_key``) before its
    outcome is stored, so that ``succeeded`` less the count is never above the others'."""
    await asyncio.sleep(seconds)
    await body.call(settings.REDIS_URL, limited_key())


@task()
async def read_write() -> None:
    """A typical database job: one read and one write (an INSERT), through the async ORM
    (bench/database.py)."""
    from jobs.models import WebhookDelivery

    key = f"bench-{uuid.uuid4().hex}"
    if not await WebhookDelivery.objects.filter(idempotency_key=key).aexists():
        await WebhookDelivery.objects.acreate(idempotency_key=key, payload={})


@task()
async def mark(token: str) -> None:
    """The site load test's job, of the token its request answered: a no-op with an
    argument. Whether it ran, and how many times, is read from its result."""


@task(max_attempts=1)
async def fails() -> None:
    """Fails for good: a dead letter (the dashboard's benchmark shows a page of them)."""
    raise RuntimeError("a dead letter for the dashboard's benchmark")
