"""Fault injection at scale: SIGKILL worker processes mid-run and count what was lost.

    python bench/faults.py [--jobs 20000] [--kills 4] [--workers 2] [--concurrency 50]

Starts ``--workers`` runworker processes against Redis (REDIS_URL, or the embedded server),
enqueues ``--jobs`` jobs that each count their runs, SIGKILLs a worker ``--kills`` times
spread over the run (starting a replacement at once), and prints jobs lost, duplicates,
the jobs in flight at each kill, and how long each kill's jobs took to be finished by
someone else (the recovery time, bounded by the lease).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The test suite's counting task (tests/engine/tasks.py), run by the same settings.
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.e2e_settings"
os.environ.setdefault("TASKS_PREFIX", f"bench-faults-{uuid.uuid4().hex[:8]}")

import django  # noqa: E402

django.setup()

from django.tasks import default_task_backend  # noqa: E402

from tests.engine import tasks as workload  # noqa: E402


def start_worker(concurrency: int, log) -> subprocess.Popen:
    env = {**os.environ, "REDIS_URL": default_task_backend.url}
    command = [
        sys.executable,
        "manage.py",
        "runworker",
        "--no-scheduler",
        "--concurrency",
        str(concurrency),
    ]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


async def enqueue_all(n: int, seconds: float) -> None:
    for start in range(0, n, 500):
        await asyncio.gather(
            *(workload.tally.aenqueue(str(i), seconds) for i in range(start, min(n, start + 500)))
        )


def leased_by(client, keys, pid: int) -> set[str]:
    """The ids leased to the worker process ``pid`` (worker ids are host:pid:random)."""
    held = set()
    for key in client.scan_iter(keys.wip("default", "*")):
        if key.decode().rsplit(":leases:", 1)[1].split(":")[1] == str(pid):
            held |= {m.decode() for m in client.hkeys(key)}
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--job-seconds", type=float, default=0.005)
    args = parser.parse_args()

    backend, client = default_task_backend, default_task_backend.broker.sync
    keys = backend.broker.keys
    log = subprocess.DEVNULL
    began = time.monotonic()
    asyncio.run(enqueue_all(args.jobs, args.job_seconds))
    print(f"enqueued {args.jobs} jobs in {time.monotonic() - began:.1f}s; lease {backend.lease}s")

    workers = [start_worker(args.concurrency, log) for _ in range(args.workers)]
    kills: list[dict] = []
    marks = [args.jobs * (k + 1) // (args.kills + 1) for k in range(args.kills)]
    began = time.monotonic()
    try:
        for mark in marks:
            while len(workload.tallies()) < mark:
                time.sleep(0.05)
            victim = random.choice(workers)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed = time.time()
            held = leased_by(client, keys, victim.pid)  # handed on only after the lease
            kills.append({"at": killed, "held": held})
            workers[workers.index(victim)] = start_worker(args.concurrency, log)
            print(f"killed pid {victim.pid} with {len(held)} jobs in flight")
        deadline = time.monotonic() + 600
        while len(workload.tallies()) < args.jobs and time.monotonic() < deadline:
            time.sleep(0.1)
        elapsed = time.monotonic() - began
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(60)

    counts = workload.tallies()
    lost = args.jobs - len(counts)
    duplicates = sum(n - 1 for n in counts.values())
    recoveries = []
    for kill in kills:
        finished = [
            int(v) / 1000
            for v in (client.hget(keys.job(i), "f") for i in kill["held"])
            if v is not None
        ]
        if finished:
            recoveries.append(max(finished) - kill["at"])
    in_flight = sum(len(k["held"]) for k in kills)
    print()
    print(f"jobs               {args.jobs}")
    print(
        f"kills              {len(kills)} (workers {args.workers} x concurrency {args.concurrency})"
    )
    print(f"lost               {lost}")
    print(f"duplicates         {duplicates} (jobs in flight at the kills: {in_flight})")
    if recoveries:
        print(f"recovery (s)       median {statistics.median(recoveries):.1f}, "
              f"max {max(recoveries):.1f} (lease {backend.lease}s)")  # fmt: skip
    print(f"wall time          {elapsed:.1f}s")
    for key in client.scan_iter(f"{keys.prefix}:*", count=1000):
        client.delete(key)
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
