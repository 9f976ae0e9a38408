import asyncio

from django.tasks import TaskResult


async def finished(result: TaskResult, timeout: float = 10.0) -> TaskResult:
    """Poll the result until the job has finished (SUCCESSFUL or FAILED)."""
    async with asyncio.timeout(timeout):
        while True:
            await result.arefresh()
            if result.is_finished:
                return result
            await asyncio.sleep(0.02)
