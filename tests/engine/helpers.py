import asyncio
import time

from django.tasks import TaskResult


async def finished(result: TaskResult, timeout: float = 10.0) -> TaskResult:
    """Poll the result until the job has finished (SUCCESSFUL or FAILED)."""
    async with asyncio.timeout(timeout):
        while True:
            await result.arefresh()
            if result.is_finished:
                return result
            await asyncio.sleep(0.02)


async def waiting_for_work(worker, timeout: float = 5.0) -> None:
    """Wait until an in-process ``worker`` has looked for jobs, found none ready, and waits
    for work."""
    async with asyncio.timeout(timeout):
        while True:
            if worker._waiter is not None:
                return
            await asyncio.sleep(0.005)


async def eventually(condition, timeout: float = 5.0, what: str = "the condition"):
    """Poll ``condition`` until it is true (its value) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if value := condition():
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
