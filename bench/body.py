"""A typical job's body, and its ceiling: one Redis command (INCR of a counter) awaited
through redis-py's asyncio client, one client shared by the whole process.

    python bench/body.py REDIS_URL KEY [--calls 20000] [--concurrency 200] [--loop auto]

``call()`` is the body of ``bench.tasks.redis_call``. Run as a script (by bench/run.py, the
``body`` workload, in a process of its own) it measures that body alone, in a bare event
loop (the one runworker picks by default: uvloop when installed): ``--concurrency``
coroutines each await the command in a loop until ``--calls`` have been made, opening
their connections as they go, as the jobs of a worker just started do. Prints one line of
JSON: calls_per_s, loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import redis.asyncio

# As many connections as jobs may run at once (redis-py's asyncio pool refuses a command
# beyond its max_connections, 100 by default): no call waits for a connection.
MAX_CONNECTIONS = 1000

_client: redis.asyncio.Redis | None = None


def client(url: str) -> redis.asyncio.Redis:
    """The process's client, made at the first call (on the loop that runs the jobs)."""
    global _client
    if _client is None:
        _client = redis.asyncio.Redis.from_url(url, max_connections=MAX_CONNECTIONS)
    return _client


async def call(url: str, key: str) -> None:
    await client(url).incr(key)


async def measure(url: str, key: str, calls: int, concurrency: int) -> dict:
    from worker.runtime.loops import loop_name

    left = calls

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call(url, key)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    await client(url).aclose()
    return {"calls_per_s": calls / elapsed, "loop": loop_name(asyncio.get_running_loop())}


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from worker.runtime.loops import CHOICES, loop_factory

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--loop", choices=CHOICES, default="auto")
    args = parser.parse_args()
    coroutine = measure(args.url, args.key, args.calls, args.concurrency)
    print(json.dumps(asyncio.run(coroutine, loop_factory=loop_factory(args.loop))))


if __name__ == "__main__":
    main()
