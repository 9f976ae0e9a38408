"""Enqueue speed, from a process of its own: ``aenqueue`` one call at a time (each awaited
before the next, as a view or a script does), then the bulk API, on the chosen event loop.

    python bench/enqueue.py --loop auto|uvloop|asyncio --one 5000 --bulk 20000

Run by bench/run.py with its settings in the environment; prints one line of JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def measure(one: int, bulk: int) -> dict:
    from django.tasks import default_task_backend

    from bench.tasks import noop
    from worker.runtime.loops import loop_name

    await noop.aenqueue()  # connect
    began = time.perf_counter()
    for _ in range(one):
        await noop.aenqueue()
    one_per_s = one / (time.perf_counter() - began)
    calls = [((), {})] * 1000
    began = time.perf_counter()
    for start in range(0, bulk, 1000):
        await default_task_backend.aenqueue_many(noop, calls[: bulk - start])
    bulk_per_s = bulk / (time.perf_counter() - began)
    loop = loop_name(asyncio.get_running_loop())
    return {"loop": loop, "one_per_s": one_per_s, "bulk_per_s": bulk_per_s}


def main() -> None:
    from worker.runtime.loops import CHOICES, loop_factory

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loop", choices=CHOICES, default="auto")
    parser.add_argument("--one", type=int, default=5000, help="jobs enqueued one at a time")
    parser.add_argument("--bulk", type=int, default=20000, help="jobs enqueued in bulk")
    args = parser.parse_args()
    import django

    django.setup()
    result = asyncio.run(measure(args.one, args.bulk), loop_factory=loop_factory(args.loop))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
