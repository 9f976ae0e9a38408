"""The growth benchmark: whether the engine keeps its pace as what Redis holds grows (a big
backlog, a big delayed set, many queues, hours of results expiring). Run by bench/run.py
(``--growth``, or ``--only growth``, or ``--only backlog,due,queues,soak``), one workload
per process of its own:

    python bench/growth.py --workload backlog|due|queues|soak --log-dir DIR
                           [--jobs 1000000] [--minutes 10]

with bench/run.py's settings in the environment (REDIS_URL, TASKS_PREFIX, ...); for
``queues`` it sets BENCH_QUEUES=100 (bench/settings.py) before Django's setup, so that
this process and its worker know the queues q000 to q099. Progress goes to stderr; the
last line of stdout is the workload's figures as JSON (or ``{"error": ...}``, exit 1).
What each measures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import FULL, BenchError, Harness, quantiles_ms, rss_mb, say  # noqa: E402

QUEUES = 100  # the queues one worker serves in ``queues``
PACED_JOBS = 1_000  # jobs of each ``queues`` run, one every PACE seconds
PACE = 0.01
SOAK_RATE = 5_000  # jobs/s enqueued by the soak
SOAK_TTL = 60  # seconds: bench.tasks.noop_ttl60's result_ttl
SOAK_SETTLE = 30  # seconds after the first TTL before the reference window
SOAK_SAMPLE = 10.0  # seconds between two samples
# Seconds of samples averaged at each end: Redis's active expiry lets a quarter to a third
# of these short-lived records linger past their TTL, then reclaims them in bursts, so
# used_memory swings by 10-20% over some 30 s; one sample at each end would measure that.
SOAK_WINDOW = 60.0
LATE_JOBS, LATE_SPREAD = 1_000, 10.0  # the due jobs of bench/delayed.py, over seconds


async def reference(h: Harness) -> float:
    """The drain's rate, as bench/run.py measures it (20,000 no-op jobs, then one worker),
    the median of 3: the growth figures, measured once, are set against it."""
    return statistics.median([(await h.drain(1))["jobs_per_s"] for _ in range(3)])


# --------------------------------------------------------------------------------------
# a. A backlog of a million jobs


async def backlog(h: Harness, jobs: int) -> dict:
    """The drain's rate, then the same drain with ``jobs`` queued: its rate over the
    whole, its first and its last tenth."""
    drain = await reference(h)
    say(f"  backlog: the 20,000-job drain ran {drain:,.0f} jobs/s; enqueueing {jobs:,}")
    await h.clean()
    await h.enqueue_many(h.tasks.noop, [], jobs)
    window = jobs // 10
    crossings: dict[int, tuple[float, int] | None] = {window: None, jobs - window: None}
    process = h.start_worker("growth-backlog", h.sizes.drain_concurrency)
    try:
        elapsed, infos, steady = await h.timed_drain(
            jobs, process, 1, 120 + jobs / 2_000, crossings
        )
    finally:
        h.stop(process)
    await h.clean()
    end = infos[0]["started_at"] + elapsed
    (first_at, first), (last_at, last) = crossings[window], crossings[jobs - window]
    return {
        "reference_per_s": drain,
        "whole_per_s": jobs / elapsed,
        "first_per_s": first / (first_at - infos[0]["started_at"]),
        "last_per_s": (jobs - last) / (end - last_at),
        "ratio": jobs / elapsed / drain,
        "redis_us": steady.get("redis_us"),
        "worker_us": steady.get("worker_us"),
    }


# --------------------------------------------------------------------------------------
# b. A million delayed jobs due at once; lateness beside a big delayed set


async def due(h: Harness, jobs: int) -> dict:
    """The drain's rate; then ``jobs`` no-op jobs all due at one instant, enqueued in bulk
    before it while an idle worker waits: from that instant to the ``succeeded`` counter
    reaching ``jobs``. Then bench/delayed.py's lateness with a tenth of ``jobs`` delayed
    a day."""
    drain = await reference(h)
    await h.clean()
    # The instant must come after the last enqueue: time 10,000 delayed enqueues first.
    later = h.tasks.noop.using(run_after=datetime.now(UTC) + timedelta(days=1))
    began = time.monotonic()
    await h.enqueue_many(later, [], 10_000)
    rate = 10_000 / (time.monotonic() - began)
    await h.clean()
    process = h.start_worker("growth-due", h.sizes.drain_concurrency)
    try:
        await h.wait_workers(1, process)
        instant = datetime.now(UTC) + timedelta(seconds=jobs / (rate * 0.6) + 2)
        instant = instant.replace(microsecond=instant.microsecond // 1000 * 1000)  # whole ms
        say(f"  due: enqueueing {jobs:,} jobs due at {instant:%H:%M:%S.%f} UTC")
        await h.enqueue_many(h.tasks.noop.using(run_after=instant), [], jobs)
        at = instant.timestamp()
        if time.time() > at - 0.2:
            raise BenchError("the delayed jobs were still being enqueued when they were due")
        first = None
        deadline = at + 120 + jobs / 2_000
        while time.time() < deadline:
            succeeded, failed = await h.counts()
            now = time.time()
            if failed:
                raise BenchError(f"{failed} jobs failed (see growth-due.log)")
            if succeeded and first is None:
                first = now
            if succeeded >= jobs:
                break
            if process.poll() is not None:
                raise BenchError(f"runworker exited with code {process.returncode}")
            await asyncio.sleep(0.002)
        else:
            raise BenchError(f"only {succeeded:,} of {jobs:,} due jobs done in time")
    finally:
        h.stop(process)
    await h.clean()
    late = await lateness(h, jobs // 10)
    return {
        "reference_per_s": drain,
        "per_s": jobs / (now - at),
        "ratio": jobs / (now - at) / drain,
        "first_ms": (first - at) * 1000,
        **late,
    }


async def lateness(h: Harness, far: int) -> dict:
    """bench/delayed.py: LATE_JOBS jobs due at random times over LATE_SPREAD seconds (and
    its 200 no-op jobs/s besides), with ``far`` jobs delayed a day ahead first."""
    command = [sys.executable, str(ROOT / "bench" / "delayed.py"), "--jobs", str(LATE_JOBS),
               "--spread", str(LATE_SPREAD), "--far", str(far), "--json"]  # fmt: skip
    with h.log("growth-delayed") as log:
        done = await asyncio.to_thread(
            subprocess.run, command, cwd=ROOT, env=h.env, stdout=subprocess.PIPE, stderr=log,
            timeout=300,
        )  # fmt: skip
    if done.returncode != 0:
        raise BenchError("bench/delayed.py failed (see growth-delayed.log)")
    found = json.loads(done.stdout.decode().splitlines()[-1])
    return {f"late_{k}": v for k, v in found.items()}


# --------------------------------------------------------------------------------------
# c. One worker serving 100 queues


async def queues(h: Harness) -> dict:
    """Latency (enqueue to start) of record_start jobs enqueued one every PACE seconds,
    not waited for: into ``default`` with a worker serving it alone, then into random ones
    of QUEUES queues with one worker serving them all."""
    single = await paced_latency(h, ["default"])
    many = await paced_latency(h, [f"q{i:03d}" for i in range(QUEUES)])
    return {
        "one_p50_ms": single["p50_ms"],
        "one_p99_ms": single["p99_ms"],
        "many_p50_ms": many["p50_ms"],
        "many_p99_ms": many["p99_ms"],
        "many_max_ms": many["max_ms"],
        "ratio": many["p99_ms"] / single["p99_ms"],
    }


async def paced_latency(h: Harness, names: list[str]) -> dict:
    from bench.tasks import starts_key

    await h.clean()
    tasks = [h.tasks.record_start.using(queue_name=name) for name in names]
    choose = random.Random(len(names)).choice
    process = h.start_worker(f"growth-queues-{len(names)}", 100, queues=names)
    try:
        await h.wait_workers(1, process)
        await asyncio.sleep(0.5)  # idle: waiting for work
        sent = {}
        began = time.monotonic()
        for i in range(PACED_JOBS):
            if (wait := began + i * PACE - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            before = time.time()
            sent[(await choose(tasks).aenqueue()).id] = before
        deadline = time.monotonic() + 30
        while await h.client.hlen(starts_key()) < PACED_JOBS:
            if time.monotonic() > deadline or process.poll() is not None:
                raise BenchError(f"the jobs into {len(names)} queue(s) did not all start")
            await asyncio.sleep(0.05)
        starts = await h.client.hgetall(starts_key())
    finally:
        h.stop(process)
    await h.clean()
    started = {k.decode(): float(v) for k, v in starts.items()}
    seconds = [started[i] - t for i, t in sent.items()]
    return {**quantiles_ms(seconds), "max_ms": max(seconds) * 1000}


# --------------------------------------------------------------------------------------
# d. Minutes at 5,000 jobs/s, results kept a minute


async def soak(h: Harness, minutes: float) -> dict:
    """One worker; noop_ttl60 jobs enqueued at SOAK_RATE (a bulk call every 10 ms for the
    jobs due by then) for ``minutes``; every SOAK_SAMPLE seconds, the worker's RSS and
    Redis's used_memory. Growth: the mean of the samples of the last window over that of
    the first window from SOAK_TTL + SOAK_SETTLE seconds in; each window SOAK_WINDOW
    seconds, or half the time from that start to the end if shorter."""
    await h.clean()
    process = h.start_worker("growth-soak", h.sizes.drain_concurrency)
    samples: list[dict] = []
    try:
        (info,) = await h.wait_workers(1, process)
        began, sent, next_sample = time.monotonic(), 0, 0.0
        end = minutes * 60
        while (elapsed := time.monotonic() - began) < end:
            if process.poll() is not None:
                raise BenchError(f"runworker exited with code {process.returncode}")
            if elapsed >= next_sample:
                samples.append(await sample(h, info["pid"], elapsed, sent))
                next_sample += SOAK_SAMPLE
            if (due := int(elapsed * SOAK_RATE)) > sent:
                await h.tasks.noop_ttl60.aenqueue_many([((), {})] * (due - sent))
                sent = due
            await asyncio.sleep(0.01)
        samples.append(await sample(h, info["pid"], time.monotonic() - began, sent))
    finally:
        h.stop(process)
    await h.clean()
    last, start = samples[-1], SOAK_TTL + SOAK_SETTLE
    window = min(SOAK_WINDOW, (last["t"] - start) / 2)
    first = [s for s in samples if start <= s["t"] < start + window]
    final = [s for s in samples if s["t"] >= last["t"] - window]
    if not first or not final:
        raise BenchError(f"too few samples {start} s in and after: run longer (--minutes)")
    found = {"per_s": last["sent"] / last["t"], "backlog_end": last["sent"] - last["succeeded"]}
    for name, key in ("rss", "rss_mb"), ("memory", "memory_mb"):
        ref = statistics.fmean(s[key] for s in first)
        end = statistics.fmean(s[key] for s in final)
        found |= {f"{name}_ref_mb": ref, f"{name}_end_mb": end,
                  f"{name}_growth_pct": (end / ref - 1) * 100}  # fmt: skip
    return found


async def sample(h: Harness, pid: int, elapsed: float, sent: int) -> dict:
    succeeded, failed = await h.counts()
    if failed:
        raise BenchError(f"{failed} jobs failed (see growth-soak.log)")
    info = await h.client.info("memory")
    found = {"t": elapsed, "sent": sent, "succeeded": succeeded, "rss_mb": rss_mb(pid),
             "memory_mb": int(info["used_memory"]) / 2**20}  # fmt: skip
    say(f"  soak {elapsed:5.0f} s: {sent:,} sent, {succeeded:,} done, worker RSS "
        f"{found['rss_mb']:.1f} MB, Redis used_memory {found['memory_mb']:.1f} MB")  # fmt: skip
    return found


# --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", required=True, choices=("backlog", "due", "queues", "soak"))
    parser.add_argument("--log-dir", required=True, type=Path)
    parser.add_argument("--jobs", type=int, default=1_000_000, help="backlog and due sizes")
    parser.add_argument("--minutes", type=float, default=10.0, help="the soak's length")
    args = parser.parse_args()
    if args.workload == "queues":
        os.environ["BENCH_QUEUES"] = str(QUEUES)
    import django

    django.setup()
    from worker.runtime.loops import loop_factory

    h = Harness(FULL, args.log_dir, os.environ["REDIS_URL"], os.environ["DATABASE_URL"])
    calls = {
        "backlog": lambda: backlog(h, args.jobs),
        "due": lambda: due(h, args.jobs),
        "queues": lambda: queues(h),
        "soak": lambda: soak(h, args.minutes),
    }
    try:
        result = asyncio.run(calls[args.workload](), loop_factory=loop_factory("auto"))
    except (BenchError, subprocess.SubprocessError, OSError) as e:
        result = {"error": str(e)}
    result["logs"] = sorted({path.name for path in h.logs})
    print(json.dumps(result))
    sys.exit(1 if "error" in result else 0)


if __name__ == "__main__":
    main()
