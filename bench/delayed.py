"""How late delayed jobs start: enqueue jobs with run_after spread over the next seconds,
run one worker process, and print how long after its run_after each job was started.

    python bench/delayed.py [--jobs 500] [--spread 5] [--background 200] [--far 0] [--json]

``--background`` no-op jobs per second keep the worker at normal load meanwhile.
``--spread 0`` makes every job due at one instant, 2 s ahead, enqueued in bulk before it.
``--far N`` first enqueues N jobs (in bulk) due a day ahead, for lateness beside a big
delayed set. ``--json`` prints one line of JSON (p50_ms, p99_ms, max_ms, jobs) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
os.environ.setdefault("TASKS_PREFIX", f"bench-delayed-{uuid.uuid4().hex[:8]}")

import django  # noqa: E402

django.setup()

from django.tasks import default_task_backend  # noqa: E402

from bench import tasks as workload  # noqa: E402


async def background_load(per_second: int, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.gather(*(workload.noop.aenqueue() for _ in range(per_second // 10)))
        await asyncio.sleep(0.1)


async def run(args) -> list[float]:
    far = workload.noop.using(run_after=datetime.now(UTC) + timedelta(days=1))
    for start in range(0, args.far, 1000):
        await far.aenqueue_many([((), {})] * min(1000, args.far - start))
    now = datetime.now(UTC)
    delayed = []
    if not args.spread:  # all due at one instant: sent in bulk, well before it
        due = now + timedelta(seconds=2)
        results = await workload.noop.using(run_after=due).aenqueue_many([((), {})] * args.jobs)
        delayed = [(result, due) for result in results]
    for _ in range(args.jobs if args.spread else 0):
        due = now + timedelta(seconds=1 + random.random() * args.spread)
        delayed.append((await workload.noop.using(run_after=due).aenqueue(), due))
    await background_load(args.background, args.spread + 1.5)
    lateness = []
    for result, due in delayed:
        for _ in range(200):
            await result.arefresh()
            if result.is_finished:
                break
            await asyncio.sleep(0.05)
        # started_at is stored in whole ms; run_after too (truncated), so compare in ms.
        lateness.append(
            (
                result.started_at - due.replace(microsecond=due.microsecond // 1000 * 1000)
            ).total_seconds()
            * 1000
        )
    return lateness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--spread", type=float, default=5.0)
    parser.add_argument("--background", type=int, default=200, help="no-op jobs per second")
    parser.add_argument("--far", type=int, default=0, help="jobs delayed a day, enqueued first")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    env = {**os.environ, "REDIS_URL": default_task_backend.url}
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--no-scheduler", "--queue", "default",
         "--concurrency", "50"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1.5)
        lateness = sorted(asyncio.run(run(args)))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        client = default_task_backend.broker.sync
        batch = []
        for key in client.scan_iter(f"{default_task_backend.broker.keys.prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.unlink(*batch)
                batch = []
        if batch:
            client.unlink(*batch)
    q = statistics.quantiles(lateness, n=100)
    if args.json:
        print(json.dumps({"p50_ms": q[49], "p99_ms": q[98], "max_ms": lateness[-1],
                          "jobs": len(lateness)}))  # fmt: skip
        return
    print(f"delayed jobs      {len(lateness)} over {args.spread}s, with {args.background} "
          f"no-op jobs/s besides")  # fmt: skip
    print(f"start - run_after  p50 {q[49]:.1f} ms, p99 {q[98]:.1f} ms, max {lateness[-1]:.1f} ms")


if __name__ == "__main__":
    main()
