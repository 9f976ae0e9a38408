"""The benchmark's workloads on huey (https://huey.readthedocs.io): see common.py.

    var/bench-peers/venv/bin/python bench/peers/huey_bench.py --url redis://127.0.0.1:6379/0 \
        --workload latency --jobs 500 --concurrency 100

huey is ``RedisHuey("bench_<tag>", url=...)`` with huey's defaults (results stored, blocking
BRPOP with read_timeout 1 s, pickle). Its consumer runs in a process of its own the way
``huey_consumer`` does it, ``huey.create_consumer(workers=concurrency).run()``: thread
workers (huey's default ``-k thread``), one per unit of concurrency (``-w``), each blocked
in its own BRPOP when idle; the rest as huey_consumer's defaults, except that huey's logger
is at WARNING (``huey_consumer -q``), not INFO, which would log two lines per job.

huey's tasks are sync functions: they are called (which enqueues, a blocking LPUSH) from
the workload's loop, and ``record_start`` writes with a blocking redis-py client. huey keeps
no trace of a finished job unless it has a result to store, so ``noop`` and ``sleep_io``
return True: a drain is over when huey's result hash holds every job. Keys:
``huey.*.bench_<tag>*``, deleted before and after each workload.
"""

from __future__ import annotations

import logging
import time
from importlib.metadata import version

import redis
import redis.asyncio as aioredis
from common import Adapter, Keys, delete_matching, main
from huey import RedisHuey


def make_huey(url: str, tag: str, keys: Keys) -> tuple[RedisHuey, dict]:
    """The huey instance and its tasks, the same in the benchmark and in the consumer."""
    huey = RedisHuey(f"bench_{tag}", url=url)
    client = redis.Redis.from_url(url)

    @huey.task(name="noop")
    def noop() -> bool:
        return True

    @huey.task(name="sleep_io")
    def sleep_io(seconds: float) -> bool:
        time.sleep(seconds)
        return True

    @huey.task(name="record_start")
    def record_start(label: str) -> None:
        started = time.time()
        with client.pipeline(transaction=False) as pipe:
            pipe.hset(keys.starts, label, repr(started))
            pipe.rpush(keys.done, label)
            pipe.execute()

    @huey.on_startup()
    def ready() -> None:  # every worker thread runs it: the first one sets the time
        client.set(keys.ready, repr(time.time()), nx=True)

    return huey, {"noop": noop, "sleep_io": sleep_io, "record_start": record_start}


class HueyAdapter(Adapter):
    name = "huey"

    def versions(self) -> dict[str, str]:
        return {"huey": version("huey"), "redis-py": version("redis")}

    async def connect(self) -> None:
        self.huey, self.tasks = make_huey(self.url, self.keys.tag, self.keys)
        self.client = aioredis.from_url(self.url)

    async def enqueue(self, function: str, calls: list[dict]) -> None:
        task = self.tasks[function]
        for kwargs in calls:  # huey's API is sync: one blocking LPUSH each
            task(**kwargs)

    async def remaining(self) -> int:
        return self.options.jobs - self.huey.storage.result_store_size()

    async def clean(self) -> None:
        tag = self.keys.tag
        await delete_matching(self.client, f"huey.*.bench_{tag}*", f"bench-peer:{tag}:*")

    async def close(self) -> None:
        await self.client.aclose()
        self.huey.storage.conn.close()

    def run_worker(self, concurrency: int) -> None:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")
        logging.getLogger("huey").setLevel(logging.WARNING)
        huey, _ = make_huey(self.url, self.keys.tag, self.keys)
        huey.create_consumer(workers=concurrency).run()


if __name__ == "__main__":
    main(HueyAdapter)
