"""Tasks the engine's tests run (a module of the test suite, imported by the tests)."""

import asyncio
import time

from django.tasks import task

from worker import PermanentFailure

calls: list[tuple[str, object]] = []


@task()
async def add(a: int, b: int) -> int:
    return a + b


@task()
def add_sync(a: int, b: int) -> int:
    return a + b


@task(priority=0)
async def record(label: str) -> str:
    calls.append(("record", label))
    return label


@task(max_attempts=3, backoff=0.05, backoff_max=0.1)
async def flaky(key: str, fail_times: int) -> int:
    """Fails its first ``fail_times`` attempts."""
    n = sum(1 for name, k in calls if name == "flaky" and k == key) + 1
    calls.append(("flaky", key))
    if n <= fail_times:
        raise ConnectionError(f"attempt {n} failed")
    return n


@task(max_attempts=5, backoff=0.01)
async def permanent() -> None:
    raise PermanentFailure("the order service said 404")


@task(max_attempts=1, timeout=0.2)
async def slow_async(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


@task(max_attempts=1, timeout=0.2)
def slow_sync(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


@task(takes_context=True)
async def with_context(context, tag: str) -> dict:
    return {"tag": tag, "attempt": context.attempt, "id": context.task_result.id}


@task()
async def bad_return() -> object:
    return {1, 2}


@task()
async def db_job() -> bool:
    """Queries the database; returns whether a connection was already open (left over)."""
    from asgiref.sync import sync_to_async
    from django.db import connection

    def work() -> bool:
        was_open = connection.connection is not None
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return was_open

    return await sync_to_async(work)()


@task(max_attempts=2)
def crash_worker() -> None:
    """Kills the process running it, every time: a poison job."""
    import os

    os._exit(3)


@task(unique_for=60)
async def unique_add(a: int, b: int = 0) -> int:
    return a + b


@task(timeout=None)
async def sleeper(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke"


@task()
async def echo(value: object) -> object:
    return value


@task(max_attempts=2, backoff=0.01)
async def cancels_itself() -> None:
    """Raises CancelledError of its own (as a cancelled and awaited sub-task does)."""
    inner = asyncio.create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    inner.cancel()
    await inner
