"""The benchmark's workloads on SAQ (https://github.com/tobymao/saq): see common.py.

    var/bench-peers/venv/bin/python bench/peers/saq_bench.py --url redis://127.0.0.1:6379/0 \
        --workload drain --jobs 20000 --concurrency 200

The worker is SAQ's ``Worker(queue, functions, concurrency=...)`` started with
``await worker.start()`` in its own process (what ``saq module.settings`` does), with SAQ's
defaults otherwise. Queue ``bench-<tag>``; its keys (``saq:*bench-<tag>*``) are deleted
before and after each workload.
"""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import version

import redis.asyncio as aioredis
from common import Adapter, Keys, delete_matching, main, record_start
from saq import Queue, Worker


class SaqAdapter(Adapter):
    name = "saq"

    @property
    def queue_name(self) -> str:
        return f"bench-{self.keys.tag}"

    def versions(self) -> dict[str, str]:
        return {"saq": version("saq"), "redis-py": version("redis")}

    async def connect(self) -> None:
        self.queue = Queue.from_url(self.url, name=self.queue_name)
        await self.queue.connect()

    async def enqueue(self, function: str, calls: list[dict]) -> None:
        await asyncio.gather(*(self.queue.enqueue(function, **kwargs) for kwargs in calls))

    async def remaining(self) -> int:
        # A job stays in the queue's "incomplete" sorted set until it has finished.
        return await self.queue.count("incomplete")

    async def clean(self) -> None:
        await delete_matching(
            self.queue.redis, f"saq:*{self.queue_name}*", f"bench-peer:{self.keys.tag}:*"
        )

    async def close(self) -> None:
        await self.queue.disconnect()

    def run_worker(self, concurrency: int) -> None:
        keys: Keys = self.keys
        client = aioredis.from_url(self.url)

        async def noop(ctx) -> None:
            pass

        async def sleep_io(ctx, *, seconds: float) -> None:
            await asyncio.sleep(seconds)

        async def record(ctx, *, label: str) -> None:
            await record_start(client, keys, label)

        async def startup(ctx) -> None:
            await client.set(keys.ready, repr(time.time()))

        async def serve() -> None:
            queue = Queue.from_url(self.url, name=self.queue_name)
            functions = [("noop", noop), ("sleep_io", sleep_io), ("record_start", record)]
            worker = Worker(queue, functions, concurrency=concurrency, startup=startup)
            await worker.start()

        asyncio.run(serve())


if __name__ == "__main__":
    main(SaqAdapter)
