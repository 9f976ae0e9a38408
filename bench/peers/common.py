"""What the peer benchmarks share: the workloads and how they are timed, the same way
bench/run.py times ours. Runs in the peers' own virtualenv (var/bench-peers/venv), which
has redis-py as a dependency of arq and SAQ (and huey's Redis storage); nothing here imports
Django.

A peer script (arq_bench.py, saq_bench.py, huey_bench.py) gives an ``Adapter``; ``main``
then either runs that library's worker in the foreground (``--worker``, started by the
parent as a subprocess) or runs one workload and prints one JSON line:

- drain:   enqueue ``--jobs`` no-op jobs, start one worker process, jobs/s from the worker's
           start (its startup hook, which writes the time to Redis) until none are left.
- io:      the same with jobs that each await asyncio.sleep(``--seconds``) (huey's, sync,
           time.sleep): wall time, and its ratio to the ideal jobs * seconds / concurrency.
- latency: an idle worker; jobs enqueued one at a time, each waited for; each job writes
           time.time() when it starts; enqueue-to-start p50 / p99 in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

POLL = 0.002  # seconds between two looks at a counter


@dataclass
class Keys:
    tag: str

    @property
    def ready(self) -> str:
        return f"bench-peer:{self.tag}:ready"

    @property
    def starts(self) -> str:
        return f"bench-peer:{self.tag}:starts"

    @property
    def done(self) -> str:
        return f"bench-peer:{self.tag}:done"


async def record_start(client: aioredis.Redis, keys: Keys, label: str) -> None:
    """The body of every peer's latency job: note the start time, wake the benchmark."""
    started = time.time()
    async with client.pipeline(transaction=False) as pipe:
        pipe.hset(keys.starts, label, repr(started))
        pipe.rpush(keys.done, label)
        await pipe.execute()


class Adapter:
    """One library. ``enqueue`` takes a function name and a list of kwargs dicts."""

    name = "?"

    def __init__(self, url: str, keys: Keys, options: argparse.Namespace) -> None:
        self.url, self.keys, self.options = url, keys, options

    def versions(self) -> dict[str, str]:
        raise NotImplementedError

    async def connect(self) -> None:
        raise NotImplementedError

    async def enqueue(self, function: str, calls: list[dict]) -> None:
        raise NotImplementedError

    async def remaining(self) -> int:
        """Jobs not finished yet."""
        raise NotImplementedError

    async def clean(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        pass

    def run_worker(self, concurrency: int) -> None:
        """Run the library's worker in the foreground until SIGTERM; its startup hook must
        SET keys.ready to repr(time.time())."""
        raise NotImplementedError


async def delete_matching(client: aioredis.Redis, *patterns: str) -> None:
    for pattern in patterns:
        batch = []
        async for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.unlink(*batch)
                batch = []
        if batch:
            await client.unlink(*batch)


def start_worker(args: argparse.Namespace, concurrency: int) -> subprocess.Popen:
    command = [sys.executable, sys.argv[0], "--worker", "--url", args.url, "--tag", args.tag,
               "--concurrency", str(concurrency), *args.extra]  # fmt: skip
    return subprocess.Popen(command, stdout=args.log, stderr=subprocess.STDOUT)


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(5)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


async def wait_ready(client: aioredis.Redis, keys: Keys, worker, deadline: float) -> float:
    while time.monotonic() < deadline:
        value = await client.get(keys.ready)
        if value is not None:
            return float(value)
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {worker.returncode}")
        await asyncio.sleep(POLL)
    raise TimeoutError("the worker did not start")


async def wait_drained(adapter: Adapter, deadline: float) -> float:
    while time.monotonic() < deadline:
        if await adapter.remaining() == 0:
            return time.time()
        await asyncio.sleep(POLL)
    raise TimeoutError(f"{await adapter.remaining()} jobs left when the time was up")


async def enqueue_in_batches(adapter: Adapter, function: str, calls: list[dict]) -> None:
    for start in range(0, len(calls), 500):
        await adapter.enqueue(function, calls[start : start + 500])


async def workload(adapter: Adapter, args: argparse.Namespace) -> dict:
    client = aioredis.from_url(args.url)
    deadline = time.monotonic() + args.timeout
    await adapter.connect()
    await adapter.clean()
    worker = None
    try:
        if args.workload in ("drain", "io"):
            if args.workload == "drain":
                await enqueue_in_batches(adapter, "noop", [{}] * args.jobs)
            else:
                calls = [{"seconds": args.seconds}] * args.jobs
                await enqueue_in_batches(adapter, "sleep_io", calls)
            worker = start_worker(args, args.concurrency)
            ready = await wait_ready(client, adapter.keys, worker, deadline)
            done = await wait_drained(adapter, deadline)
            elapsed = done - ready
            if args.workload == "drain":
                return {"jobs": args.jobs, "seconds": elapsed, "jobs_per_s": args.jobs / elapsed}
            ideal = args.jobs * args.seconds / args.concurrency
            return {"jobs": args.jobs, "seconds": elapsed, "ideal": ideal, "ratio": elapsed / ideal}
        # latency
        worker = start_worker(args, args.concurrency)
        await wait_ready(client, adapter.keys, worker, deadline)
        await asyncio.sleep(0.5)  # let it settle into waiting for work
        sent: dict[str, float] = {}
        for i in range(args.jobs):
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {i} of {args.jobs} latency jobs in the time allowed")
            label = str(i)
            sent[label] = time.time()
            await adapter.enqueue("record_start", [{"label": label}])
            if await client.blpop([adapter.keys.done], timeout=5) is None:
                raise TimeoutError(f"latency job {i} did not start within 5 s")
        recorded = await client.hgetall(adapter.keys.starts)
        starts = {k.decode(): float(v) for k, v in recorded.items()}
        latencies = sorted((starts[label] - sent[label]) * 1000 for label in sent)
        q = statistics.quantiles(latencies, n=100, method="inclusive")
        return {"jobs": len(latencies), "p50_ms": q[49], "p99_ms": q[98]}
    finally:
        if worker is not None:
            stop_worker(worker)
        await adapter.clean()
        await adapter.close()
        await client.aclose()


def main(adapter_class: type[Adapter]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--tag", default=f"{os.getpid()}")
    parser.add_argument("--workload", choices=["drain", "io", "latency", "versions"])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=0.05, help="sleep of an io job")
    parser.add_argument("--timeout", type=float, default=120.0, help="for the whole workload")
    parser.add_argument("--worker", action="store_true", help="run the worker (internal)")
    args, extra = parser.parse_known_args()
    args.extra = extra  # library options, passed on to the worker process
    args.log = sys.stderr
    adapter = adapter_class(args.url, Keys(args.tag), args)
    if args.worker:
        adapter.run_worker(args.concurrency)
        return
    if args.workload == "versions":
        print(json.dumps(adapter.versions()))
        return
    result = asyncio.run(workload(adapter, args))
    print(json.dumps({"library": adapter.name, "workload": args.workload, **result}))
