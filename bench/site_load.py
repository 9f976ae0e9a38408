"""The site under load: wrk against uvicorn serving the reference site, a worker running.

    python bench/site_load.py [--seconds 10] [--connections 1,32,256] [--processes 1,2]
                              [--views plain,enqueue,reports,sync-orders] [--quick]

For each number of uvicorn worker processes and of connections, wrk loads each view for a
fixed time. Two are the same but for one line, for the enqueue's cost: ``/bench/accepted/``
answers 202 with a token, ``/bench/accepted-enqueue/`` also enqueues
``bench.tasks.mark(token)`` first (bench/views.py). Two are the reference site's own:
``POST /reports/`` (a Report row, then its ``send_report`` job) and ``POST
/jobs/sync-orders/`` (a ``sync_orders`` job). One ``runworker`` runs the jobs meanwhile,
against a second uvicorn serving the fake order service and webhook (jobs/fake_services.py).
Per run: requests/s, latency p50 / p99 / max, errors (wrk's: connect, read, write, timeouts
and answers not 2xx), and the event-loop delay inside the site's processes
(bench/site_lag.py). For a view that enqueues, once the worker has run the jobs: of the 202s
wrk received, how many jobs succeeded at their first attempt, after retries, after being
handed on from a worker taken for lost, failed for good, or never ended (lost). Then the
enqueue's cost: 1 - requests/s with it over without.

Needs wrk (``apt-get install wrk``). Uses REDIS_URL if set, else starts a redis-server of
its own; a temporary SQLite database unless --database. Progress on stderr, the table
(Markdown) on stdout; logs in var/bench-logs/site-<run>/. What the figures mean:
docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.load import answers  # noqa: E402
from worker.protocol.keys import queue_of  # noqa: E402
from worker.protocol.servers import RedisServer, free_port  # noqa: E402

LUA = ROOT / "bench" / "site_load.lua"
# name: (method, path). "plain" and "enqueue" differ by the enqueue alone.
VIEWS = {
    "plain": ("GET", "/bench/accepted/"),
    "enqueue": ("GET", "/bench/accepted-enqueue/"),
    "reports": ("POST", "/reports/"),
    "sync-orders": ("POST", "/jobs/sync-orders/"),
}
SETTINGS = "bench.site_settings"
# The jobs of a run count as never ended once none of them has ended for this long.
STALL_SECONDS = 60
LOST = "worker.exceptions.WorkerLost"  # the error of an attempt whose worker was lost


def say(*parts: object) -> None:
    print("[site]", *parts, file=sys.stderr, flush=True)


@dataclass
class Run:
    processes: int
    connections: int
    view: str
    requests_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    lag_ms: tuple[float, float, float] | None = None  # p50, p99, max
    answered: int = 0  # 202s wrk received
    jobs: Counter[str] = field(default_factory=Counter)  # of their jobs: once, retried, ...


class Site:
    """The processes (a worker, the services, uvicorn) and Redis of one load test."""

    def __init__(self, redis_url: str, log_dir: Path, database_url: str) -> None:
        self.prefix = f"bench-site-{uuid.uuid4().hex[:8]}"
        self.redis = redis.Redis.from_url(redis_url)
        self.log_dir = log_dir
        self.settings = {
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "TASKS_PREFIX": self.prefix,
            "REDIS_URL": redis_url,
            "DATABASE_URL": database_url,
            "DJANGO_DEBUG": "0",
        }
        self.env = {**os.environ, **self.settings, "PYTHONUNBUFFERED": "1"}
        self.lag = f"{self.prefix}:bench:site-lag"  # bench.site_lag.lag_key()
        self.ops: Any = None  # worker.ops.Ops, once Django is set up (setup())

    def setup(self) -> None:
        """Django in this process, on the test's settings, for reading the jobs' results."""
        os.environ.update(self.settings)
        import django

        django.setup()
        from worker.ops import Ops

        self.ops = Ops()

    def start(self, name: str, args: list[str], **env: str) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        return subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env={**self.env, **env}, stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT, env=self.env, check=True, timeout=120,
        )  # fmt: skip

    def services(self) -> tuple[subprocess.Popen[bytes], str]:
        """The fake order service and webhook the reference jobs call, in a uvicorn of
        their own (not the one under load, nor its loop-delay figures)."""
        return self.uvicorn("services", 1, "/fake/webhook", 200,
                            DJANGO_SETTINGS_MODULE="bench.settings", FAKE_SERVICES="1")  # fmt: skip

    def worker(self, services: str) -> subprocess.Popen[bytes]:
        return self.start(
            "worker", ["manage.py", "runworker", "--no-scheduler", "--concurrency", "200"],
            ORDER_SERVICE_URL=f"{services}/fake/orders",
            REPORT_WEBHOOK_URL=f"{services}/fake/webhook",
        )  # fmt: skip

    def site(self, processes: int) -> tuple[subprocess.Popen[bytes], str]:
        return self.uvicorn(f"uvicorn-{processes}", processes, VIEWS["plain"][1], 202)

    def uvicorn(
        self, name: str, processes: int, probe: str, status: int, **env: str
    ) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        process = self.start(name, [
            "-m", "uvicorn", "project.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(processes), "--log-level", "warning",
            "--no-access-log", "--lifespan", "off",
        ], **env)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        if answers(process, base + probe, status, 60):
            return process, base
        stop(process)
        raise SystemExit(f"uvicorn did not answer (see {self.log_dir}/{name}.log)")

    def load(self, run: Run, base: str, seconds: float) -> list[str]:
        """Run wrk; fill in ``run``'s figures; the job ids of the 202s received."""
        ids_file = self.log_dir / f"ids-{run.processes}-{run.connections}-{run.view}"
        method, path = VIEWS[run.view]
        self.redis.delete(self.lag)
        began = time.time()
        out = subprocess.run(
            ["wrk", "-t1", f"-c{run.connections}", f"-d{seconds:g}s", "--timeout", "10s",
             "-s", str(LUA), base + path],
            env={**os.environ, "IDS_FILE": str(ids_file), "METHOD": method},
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout  # fmt: skip
        ended = time.time()
        line = re.search(r"^FIGURES (.*)$", out, re.MULTILINE)
        if line is None:
            raise SystemExit(f"wrk printed no figures:\n{out}")
        f = {k: int(v) for k, v in (pair.split("=") for pair in line.group(1).split())}
        run.requests_per_s = f["requests"] / (f["duration_us"] / 1e6)
        run.p50_ms, run.p99_ms, run.max_ms = (f[k] / 1000 for k in ("p50_us", "p99_us", "max_us"))
        run.errors = {k: f[k] for k in ("connect", "read", "write", "status", "timeout") if f[k]}
        run.answered = f["accepted"]
        time.sleep(1.2)  # the samplers' last flush (once a second)
        run.lag_ms = self.lag_between(began, ended)
        return ids_file.read_text().split()

    def lag_between(self, began: float, ended: float) -> tuple[float, float, float] | None:
        lags = []
        for note in self.redis.lrange(self.lag, 0, -1):
            at, lag = note.decode().split()
            if began <= float(at) <= ended:
                lags.append(float(lag))
        if len(lags) < 2:
            return None
        q = statistics.quantiles(lags, n=100, method="inclusive")
        return q[49], q[98], max(lags)

    def check_jobs(self, run: Run, ids: list[str]) -> None:
        """Wait for the jobs of the run's 202s to end (until none has ended for
        STALL_SECONDS), then sort them by how they ended, from their results: a job's
        record counts its attempts and names the error of each, so a job run twice (an
        attempt handed on from a worker taken for lost, or retried after a failure) shows
        there whenever it happened, with no window to wait out."""
        from django.tasks import TaskResultStatus

        finished = (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
        pending = {*ids}
        ended: dict[str, Any] = {}
        progress = time.monotonic()
        while pending and time.monotonic() - progress < STALL_SECONDS:
            found = [r for r in self.records(pending) if r.status in finished]
            if found:
                progress = time.monotonic()
                ended.update((r.id, r) for r in found)
                pending -= {r.id for r in found}
            else:
                time.sleep(0.5)
        for record in ended.values():
            classes = {e.exception_class_path for e in record.errors}
            if record.status == TaskResultStatus.FAILED:
                run.jobs["failed"] += 1
            elif LOST in classes:
                run.jobs["handed on"] += 1
            elif record.attempts > 1:
                run.jobs["retried"] += 1
            else:
                run.jobs["once"] += 1
        run.jobs["lost"] = len(pending) + run.answered - len(ids)  # 202s without a job id

    def records(self, ids: set[str]) -> list[Any]:
        by_queue: dict[str, list[str]] = {}
        for job_id in ids:
            by_queue.setdefault(queue_of(job_id), []).append(job_id)
        found = []
        for batch in by_queue.values():
            for start in range(0, len(batch), 1000):
                found += self.ops.records(batch[start : start + 1000])
        return found

    def clean(self) -> None:
        for key in self.redis.scan_iter(match=f"{self.prefix}:*", count=1000):
            self.redis.delete(key)


def stop(process: subprocess.Popen[bytes], wait: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


JOBS = ("once", "retried", "handed on", "failed", "lost")


def table(runs: list[Run]) -> str:
    headers = ["uvicorn processes", "connections", "view", "requests/s", "p50 ms", "p99 ms",
               "max ms", "errors", "loop delay p50 / p99 / max ms", "enqueue cost",
               "202s: job " + " / ".join(JOBS)]  # fmt: skip
    plain = {(r.processes, r.connections): r.requests_per_s for r in runs if r.view == "plain"}
    rows = []
    for r in runs:
        lag = "n/a" if r.lag_ms is None else " / ".join(f"{v:.1f}" for v in r.lag_ms)
        errors = ", ".join(f"{k} {v}" for k, v in r.errors.items()) or "0"
        cost = jobs = ""
        if r.view == "enqueue":
            base = plain.get((r.processes, r.connections))
            cost = f"{(1 - r.requests_per_s / base) * 100:.1f}%" if base else "n/a"
        if r.view != "plain":
            jobs = f"{r.jobs['once']:,} of {r.answered:,} / " + " / ".join(
                f"{r.jobs[k]:,}" for k in JOBS[1:]
            )
        rows.append([r.processes, r.connections, r.view, f"{r.requests_per_s:,.0f}",
                     f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.max_ms:.1f}", errors, lag,
                     cost, jobs])  # fmt: skip
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per run (default 10)")
    parser.add_argument("--connections", default="1,32,256", help="default 1,32,256")
    parser.add_argument("--processes", default="1,2", help="uvicorn --workers (default 1,2)")
    parser.add_argument("--views", default=",".join(VIEWS), help=f"of {', '.join(VIEWS)}")
    parser.add_argument("--database", metavar="URL", help="default: a temporary SQLite file")
    parser.add_argument("--quick", action="store_true", help="3 s runs")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else args.seconds
    try:
        connections = [int(c) for c in args.connections.split(",")]
        processes = [int(p) for p in args.processes.split(",")]
    except ValueError:
        parser.error("--connections and --processes take whole numbers, comma-separated")
    views = args.views.split(",")
    if unknown := [v for v in views if v not in VIEWS]:
        parser.error(f"--views: no view {', '.join(unknown)} (the views: {', '.join(VIEWS)})")
    if not shutil.which("wrk"):
        sys.exit("bench/site_load.py needs wrk: apt-get install wrk (or brew install wrk)")
    run_id = f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    log_dir = ROOT / "var" / "bench-logs" / f"site-{run_id}"
    log_dir.mkdir(parents=True)
    own = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        own = RedisServer(log_dir, binary=shutil.which("redis-server")).start()
        redis_url = own.url
    tmp = tempfile.TemporaryDirectory(prefix="bench-site-")
    site = Site(redis_url, log_dir, args.database or f"sqlite:///{tmp.name}/site.sqlite3")
    began = time.monotonic()
    runs: list[Run] = []
    worker = services = None
    try:
        site.migrate()
        site.setup()
        services, services_url = site.services()
        worker = site.worker(services_url)
        for count in processes:
            server, base = site.site(count)
            try:
                for view in views:  # warm up: imports, connections, the samplers
                    site.load(Run(count, 32, view), base, 1)
                for n, c in enumerate(connections):
                    # Alternating: a drift in load cancels out between plain and enqueue.
                    for view in views if n % 2 == 0 else list(reversed(views)):
                        run = Run(count, c, view)
                        ids = site.load(run, base, seconds)
                        if view != "plain":
                            site.check_jobs(run, ids)
                        say(f"{count} process(es), {c} connection(s), {view}: "
                            f"{run.requests_per_s:,.0f} req/s, jobs {dict(run.jobs)}")  # fmt: skip
                        runs.append(run)
            finally:
                stop(server)
    finally:
        for process in (worker, services):
            if process is not None:
                stop(process)
        site.clean()
        if own:
            own.stop()
        tmp.cleanup()
    runs.sort(key=lambda r: (r.processes, r.connections, list(VIEWS).index(r.view)))
    print(table(runs))
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    print(f"\n- load: {wrk.splitlines()[0].split(' [')[0]}, 1 thread, {seconds:g} s per run, "
          f"its Lua script reading each answer (bench/site_load.lua)")  # fmt: skip
    print(
        f"- machine: {os.cpu_count()} cores; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"took {time.monotonic() - began:.0f} s; logs in {log_dir.relative_to(ROOT)}"
    )


if __name__ == "__main__":
    main()
