"""Tasks the telemetry tests run in real worker processes."""

import asyncio
import logging
import time

import httpx
from django.tasks import task
from opentelemetry import trace

logger = logging.getLogger("tests.telemetry")


@task()
async def block(seconds: float) -> str:
    """What the watchdog is for: a sync call inside ``async def``."""
    time.sleep(seconds)  # noqa: ASYNC251 - the line the watchdog names
    return "blocked"


@task()
async def polite(turns: int) -> int:
    """Shares the loop: awaits between short steps."""
    for _ in range(turns):
        await asyncio.sleep(0.005)
    return turns


@task()
async def say_async(words: str) -> str:
    logger.warning("async job says %s", words)
    return words


@task()
def say_sync(words: str) -> str:
    logger.warning("sync job says %s", words)
    return words


_failed: set[str] = set()  # markers whose first attempt failed (in this process)


@task(max_attempts=2, backoff=0.01, backoff_max=0.01)
async def fail_once(marker: str) -> str:
    """Fails its first attempt (each attempt logs first), succeeds at the second."""
    logger.warning("attempt for %s", marker)
    if marker not in _failed:
        _failed.add(marker)
        raise ConnectionError(f"first attempt of {marker} failed")
    return marker


@task()
async def fetch(url: str) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(url)).status_code


@task()
def fetch_sync(url: str) -> int:
    with httpx.Client() as client:
        return client.get(url).status_code


@task()
def span_in_thread() -> str:
    """The ids of the span current in a sync job's thread (trace:span, in hex)."""
    span = trace.get_current_span().get_span_context()
    return f"{span.trace_id:032x}:{span.span_id:016x}"
