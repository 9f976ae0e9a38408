"""Whom the loop watchdog blames, in process: a job computing on the loop, or blocking it
while sync jobs wait on I/O, is named; a polite job is not when sync jobs' threads starve
the loop thread of the GIL (the loop is late, but no job holds it)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from tests.telemetry import tasks
from worker.observe import context
from worker.observe.watchdog import Watchdog
from worker.protocol.records import Lease

THRESHOLD = 0.05


class Named(logging.Handler):
    """The watchdog's warnings, and an event set by the first."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []
        self.first = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.first.set()


@pytest.fixture
def named():
    handler = Named()
    logger = logging.getLogger("worker.watchdog")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def as_job(job_id: str, task) -> None:
    context.enter(Lease(id=job_id, payload=b"", attempt=1), "default", task)


def step(total: int) -> int:
    return total + sum(range(50))


async def test_a_computation_on_the_loop_is_named(named):
    async def computes() -> None:
        as_job("default:computes", tasks.polite)
        deadline, total = time.monotonic() + 10, 0
        while not named.first.is_set() and time.monotonic() < deadline:
            total = step(total)  # a Python function each turn: the innermost frame changes

    watchdog = Watchdog(THRESHOLD).start()
    try:
        await asyncio.create_task(computes())
    finally:
        watchdog.stop()
    assert named.messages, "the job computing on the loop was not named"
    assert "by job default:computes " in named.messages[0]


async def test_a_job_blocking_the_loop_is_named_while_sync_jobs_wait_on_io(named):
    stop = threading.Event()

    def waits() -> None:  # a sync job waiting for its database's reply, in its thread
        stop.wait(10)

    async def blocks() -> None:
        as_job("default:blocks", tasks.block)
        named.first.wait(10)  # a sync call inside async def, until the watchdog names it

    watchdog = Watchdog(THRESHOLD).start()
    threads = [threading.Thread(target=waits) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        await asyncio.create_task(blocks())
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        watchdog.stop()
    assert [m for m in named.messages if "by job default:blocks " in m], named.messages


async def test_a_polite_job_starved_of_the_gil_by_sync_threads_is_not_named(named):
    """Each step of the job computes for less than the threshold (on its own, the loop
    would turn in time), but four CPU-bound threads hold the GIL most of the time: a step
    spans several looks of the watchdog, its thread stopping (where the GIL is taken from
    it) at the same instruction."""
    stop = threading.Event()

    def computes() -> None:  # a CPU-bound sync job, in its thread
        total = 0
        while not stop.is_set():
            total = step(total)

    stalls = 0  # turns of the loop later than the threshold

    async def polite() -> None:
        nonlocal stalls
        as_job("default:polite", tasks.polite)
        deadline, last = time.monotonic() + 10, time.monotonic()
        while stalls < 10 and time.monotonic() < deadline:
            computed = time.thread_time() + THRESHOLD * 0.3  # of this thread's own CPU time
            while time.thread_time() < computed:
                pass
            await asyncio.sleep(0)
            now = time.monotonic()
            stalls += now - last > THRESHOLD
            last = now

    watchdog = Watchdog(THRESHOLD).start()
    threads = [threading.Thread(target=computes) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        await asyncio.create_task(polite())
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        watchdog.stop()
    assert stalls >= 10, "the threads did not starve the loop: the test proves nothing"
    assert not [m for m in named.messages if "default:polite" in m], named.messages
