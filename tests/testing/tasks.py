"""Tasks the tests of worker/testing run: every option of the engine's @task, async and
sync. (A module of the test suite: a project's would be an app's tasks module.)"""

import asyncio
import time

from django.tasks import task

from jobs.models import Order
from worker import PermanentFailure, RateLimited

calls: list[tuple[str, object]] = []


def ran(name: str) -> list[object]:
    return [arg for called, arg in calls if called == name]


@task()
async def add(a: int, b: int = 0) -> int:
    calls.append(("add", (a, b)))
    return a + b


@task(queue_name="reports", priority=5)
def add_sync(a: int, b: int = 0) -> int:
    calls.append(("add_sync", (a, b)))
    return a + b


@task(max_attempts=3, backoff=2.0, backoff_max=60)
async def flaky(key: str, fail_times: int) -> int:
    """Fails its first ``fail_times`` attempts; returns the attempt it succeeded on."""
    calls.append(("flaky", key))
    attempt = len(ran("flaky")) if key == "-" else sum(1 for k in ran("flaky") if k == key)
    if attempt <= fail_times:
        raise ConnectionError(f"attempt {attempt} failed")
    return attempt


@task(max_attempts=2, backoff=0.5)
def flaky_sync(key: str) -> str:
    calls.append(("flaky_sync", key))
    raise ValueError(f"{key} never works")


@task(max_attempts=5)
async def permanent() -> None:
    calls.append(("permanent", None))
    raise PermanentFailure("the order service said 404")


@task(max_attempts=1, timeout=0.2)
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@task(max_attempts=2, timeout=0.2)
def slow_sync(seconds: float) -> str:
    calls.append(("slow_sync", seconds))
    time.sleep(seconds)
    return "done"


@task(unique_for=60)
async def unique_add(a: int, b: int = 0) -> int:
    calls.append(("unique_add", (a, b)))
    return a + b


@task(unique_for=60, result_ttl=0)
async def unique_unkept(a: int) -> int:
    calls.append(("unique_unkept", a))
    return a


@task(max_attempts=1, takes_context=True)
async def throttled(context, label: str) -> int:
    """RateLimited on its first run (per label), as for an HTTP 429; returns the attempt it
    succeeded on."""
    calls.append(("throttled", label))
    if ran("throttled").count(label) == 1:
        raise RateLimited(retry_after=30)
    return context.attempt


@task()
async def always_throttled() -> None:
    calls.append(("always_throttled", None))
    raise RateLimited(retry_after=5)


@task(result_ttl=0)
async def forgotten() -> str:
    return "gone"


@task(rate_limit="10/s", concurrency_limit=2, limit_key="customer")
async def limited(customer: str) -> str:
    calls.append(("limited", customer))
    return customer


@task()
async def count_orders() -> int:
    return await Order.objects.acount()


@task()
def count_orders_sync() -> int:
    return Order.objects.count()


@task()
async def fan_out(n: int) -> int:
    """Enqueues ``add`` ``n`` times (a job that enqueues jobs)."""
    for i in range(n):
        await add.aenqueue(i, i)
    return n


@task()
def fan_out_sync(n: int) -> int:
    for i in range(n):
        add.enqueue(i, i)
    return n


@task()
async def bad_return() -> object:
    return {1, 2}


def plain(a: int) -> int:
    """A function made a task by a test, under the TASKS of that test."""
    return a


@task()
async def forever(n: int) -> None:
    """Enqueues itself again: a job that never lets the queue empty."""
    calls.append(("forever", n))
    await forever.aenqueue(n + 1)


@task(max_attempts=7, timeout=30, backoff=0.1, backoff_max=5, unique_for=120, result_ttl=60,
      rate_limit="5/s", concurrency_limit=1, limit_key="customer")  # fmt: skip
async def every_option(customer: str) -> str:
    return customer


@task()
def fan_out_in_atomic(n: int) -> int:
    """Enqueues ``add`` ``n`` times inside an atomic() of its own: the jobs wait for its
    commit."""
    from django.db import transaction

    with transaction.atomic():
        for i in range(n):
            add.enqueue(i, i)
    return n
