"""The benchmark's workloads on arq (https://arq-docs.helpmanual.io): see common.py.

    var/bench-peers/venv/bin/python bench/peers/arq_bench.py --url redis://127.0.0.1:6379/0 \
        --workload drain --jobs 20000 --concurrency 200 [--poll-delay 0.01]

The worker is arq's ``Worker(functions=..., max_jobs=concurrency)`` run with ``.run()`` in
its own process, as arq's docs show. arq finds work by polling (``poll_delay``, default
0.5 s); the benchmark uses 0.01 s (``--poll-delay``) so that arq's latency is not just its
poll interval, without spinning Redis at 100% when idle. Keys: arq's own (``arq:*``),
deleted before and after each workload: do not point this at a Redis where arq runs.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from importlib.metadata import version

from arq import Worker, create_pool
from arq.connections import RedisSettings
from arq.worker import func
from common import Adapter, Keys, delete_matching, main, record_start

QUEUE = "arq:queue:bench"


def options(extra: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--poll-delay", type=float, default=0.01)
    return parser.parse_args(extra)


class ArqAdapter(Adapter):
    name = "arq"

    def versions(self) -> dict[str, str]:
        return {"arq": version("arq"), "redis-py": version("redis")}

    async def connect(self) -> None:
        self.pool = await create_pool(RedisSettings.from_dsn(self.url), default_queue_name=QUEUE)

    async def enqueue(self, function: str, calls: list[dict]) -> None:
        await asyncio.gather(*(self.pool.enqueue_job(function, **kwargs) for kwargs in calls))

    async def remaining(self) -> int:
        # arq keeps a job in the queue's sorted set until it has finished.
        return await self.pool.zcard(QUEUE)

    async def clean(self) -> None:
        await delete_matching(self.pool, "arq:*", f"bench-peer:{self.keys.tag}:*")

    async def close(self) -> None:
        await self.pool.aclose()

    def run_worker(self, concurrency: int) -> None:
        keys: Keys = self.keys

        async def noop(ctx) -> None:
            pass

        async def sleep_io(ctx, seconds: float) -> None:
            await asyncio.sleep(seconds)

        async def record(ctx, label: str) -> None:
            await record_start(ctx["redis"], keys, label)

        async def startup(ctx) -> None:
            await ctx["redis"].set(keys.ready, repr(time.time()))

        worker = Worker(
            functions=[
                func(noop, name="noop"),
                func(sleep_io, name="sleep_io"),
                func(record, name="record_start"),
            ],
            queue_name=QUEUE,
            redis_settings=RedisSettings.from_dsn(self.url),
            max_jobs=concurrency,
            poll_delay=options(self.options.extra).poll_delay,
            on_startup=startup,
        )
        worker.run()


if __name__ == "__main__":
    main(ArqAdapter)
