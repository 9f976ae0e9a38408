import asyncio

import pytest
from django.tasks import TaskResultStatus

from tests.engine import tasks


async def wait_finished(result, timeout=5.0):
    async with asyncio.timeout(timeout):
        while True:
            await result.arefresh()
            if result.is_finished:
                return result
            await asyncio.sleep(0.02)


async def test_async_job_runs_and_result_reads_back(run_worker):
    result = await tasks.add.aenqueue(2, 3)
    assert result.status == TaskResultStatus.READY
    async with run_worker():
        await wait_finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.attempts == 1
