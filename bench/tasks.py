"""The workloads of the benchmarks."""

import asyncio

from django.tasks import default_task_backend, task


def tally_key() -> str:
    return f"{default_task_backend.keys.prefix}:bench:tally"


@task(max_attempts=5)
async def tally(label: str, seconds: float = 0.0) -> None:
    """Counts its runs per label in Redis, so a run can count lost and repeated jobs."""
    if seconds:
        await asyncio.sleep(seconds)
    await default_task_backend.aclient().hincrby(tally_key(), label, 1)


def tallies() -> dict[str, int]:
    """Runs so far per label."""
    counts = default_task_backend.client().hgetall(tally_key())
    return {k.decode(): int(v) for k, v in counts.items()}


@task()
async def noop() -> None:
    pass
