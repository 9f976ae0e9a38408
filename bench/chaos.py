"""Chaos soak: a steady load of jobs through three workers and the reference site, against
a Redis with AOF, while faults from a seeded schedule hit every part; then the ledger of
every execution is set against what Redis holds.

    python bench/chaos.py [--minutes 30] [--seed 1] [--rate 20] [--fsync everysec|always]
                          [--out DIR] [--profile ci]

Starts its own redis-server (appendonly yes) on a free port behind a TCP proxy
(bench/chaos_proxy.py), three ``runworker`` processes (the third ``--processes 2``), uvicorn
serving the reference site, all with a 3 s lease. For ``--minutes`` it enqueues ``--rate``
jobs a second of its own kinds (bench/chaos_app/tasks.py: async I/O, sync CPU, failing then
succeeding, delayed, unique, and a periodic one every 5 s) and posts once a second to the
site's views (sync-orders, reports), while faults (bench/chaos_faults.py) follow one another.
Then faults and load stop, everything must finish (the drain), the workers stop and a burst
worker runs what they released. The analysis (bench/chaos_analysis.py) is printed and
written to DIR/chaos.json, memory over time to DIR/memory.png (with matplotlib). Exit
status 1 when a guarantee was broken. ``--profile ci`` is 3 minutes at 15 jobs/s.
Logs, the ledger, Redis's files: DIR (default var/chaos/<time>-seed<seed>/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import chaos_ledger  # noqa: E402
from bench.chaos_analysis import analyse, plot, scan_jobs  # noqa: E402
from bench.chaos_cluster import LEDGER, Cluster, alive, rss_mb  # noqa: E402
from bench.chaos_faults import Injector, dump, schedule  # noqa: E402

LEASE = 3.0


def say(*parts: Any) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}]", *parts, file=sys.stderr, flush=True)


class Soak:
    def __init__(self, args: argparse.Namespace, cluster: Cluster) -> None:
        from bench.chaos_load import Load

        self.args = args
        self.c = cluster
        self.direct = cluster.redis.client(timeout=2)
        self.load = Load(args.rate, args.seed, cluster.web_url)
        self.memory: list[dict[str, Any]] = []
        self.began = time.time()
        self.load_seconds = args.minutes * 60
        self.planned = schedule(args.seed, self.load_seconds - 15)
        dump(self.planned, cluster.out / "schedule.json")
        self.faults_done: list[dict[str, Any]] = []
        self.probes: set[asyncio.Task[None]] = set()
        self.drain_seconds = 0.0
        self.burst_exit: int | None = None

    async def wait_ready(self) -> None:
        """Four worker processes heartbeating and the site answering."""
        import httpx

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            beats = await asyncio.to_thread(
                lambda: list(self.direct.scan_iter(match=f"{self.c.prefix}:worker:*"))
            )
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    web = (await client.get(f"{self.c.web_url}/fake/orders")).status_code == 200
            except httpx.HTTPError:
                web = False
            if len(beats) >= 4 and web:
                return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"workers or web did not come up; see {self.c.logs}")

    async def monitor(self) -> None:
        """Restart what died on its own; sample memory every 2 s."""
        while True:
            for name in self.c.restart_dead():
                say(f"{name} exited on its own; restarted")
            sample: dict[str, Any] = {"t": round(time.time() - self.began, 1), "rss": {}}
            for slot in self.c.slots:
                sample["rss"][slot.name] = rss_mb(slot.tree())

            def redis_memory() -> tuple[float | None, float | None]:
                try:
                    info = self.c.redis.client(timeout=1).info("memory")
                    return info["used_memory"] / 2**20, info["used_memory_rss"] / 2**20
                except Exception:
                    return None, None

            used, rss = await asyncio.to_thread(redis_memory)
            sample["redis_used"] = round(used, 2) if used is not None else None
            sample["redis_rss"] = round(rss, 2) if rss is not None else None
            self.memory.append(sample)
            await asyncio.sleep(2)

    async def faults(self) -> None:
        loop = asyncio.get_running_loop()

        def enqueue(kind: str) -> str | None:
            return asyncio.run_coroutine_threadsafe(self.load.send(kind), loop).result(90)

        injector = await asyncio.to_thread(Injector, self.c, enqueue)
        if not injector.faketime:
            say("libfaketime missing (and not installable here): clock-skew faults skipped")
        await asyncio.sleep(5)  # a steady state first
        for planned in self.planned:
            await asyncio.sleep(planned.gap)
            if time.time() - self.began > self.load_seconds - 10:
                break
            done = await asyncio.to_thread(injector.run, planned)
            self.faults_done.append(done.as_json())
            note = done.skipped or done.detail.get("error") or ""
            say(
                f"fault #{planned.n} {planned.kind} {planned.params} "
                f"({done.lifted - done.started:.1f}s, held {len(done.held)}) {note}"
            )
            self.probes.add(probe := asyncio.create_task(self.probe(planned.n)))
            probe.add_done_callback(self.probes.discard)

    async def probe(self, n: int) -> None:
        job_id = await self.load.send("probe", give_up_after=120)
        chaos_ledger.record("probe", LEDGER, n=n, j=job_id)

    async def drain(self) -> None:
        """Until every job stored in Redis finished (periodic jobs due in the last seconds
        aside: the scheduler keeps firing), at most ``--drain`` seconds."""
        start = time.monotonic()
        await self.load.wait_pending(120)
        while time.monotonic() - start < self.args.drain:
            jobs = await asyncio.to_thread(scan_jobs, self.direct, self.c.prefix)
            now = time.time()
            open_ = [
                j
                for j, job in jobs.items()
                if job["status"] not in ("SUCCESSFUL", "FAILED")
                and not (job["task"].endswith(".tick") and (job["run_after"] or 0) > now - 10)
            ]
            if not open_:
                break
            say(f"drain: {len(open_)} jobs not finished yet")
            await asyncio.sleep(3)
        self.drain_seconds = time.monotonic() - start

    async def run(self) -> None:
        await self.wait_ready()
        say(
            f"up: redis :{self.c.redis.port} (AOF, appendfsync {self.args.fsync}), proxy "
            f":{self.c.proxy_port}, web {self.c.web_url}; {len(self.planned)} faults planned; "
            f"load for {self.load_seconds:.0f}s at {self.args.rate}/s"
        )
        self.began = time.time()
        background = [
            asyncio.create_task(c) for c in (self.monitor(), self.load.direct(), self.load.web())
        ]
        faults = asyncio.create_task(self.faults())
        await asyncio.sleep(self.load_seconds)
        self.load.running = False
        await faults  # the fault in progress is lifted; no new one starts
        say("load and faults stopped; draining")
        await self.drain()
        for task in background:
            task.cancel()
        self.memory_end = time.time()


def burst(cluster: Cluster) -> int | None:
    """After the workers stopped: one ``runworker --burst`` runs what they released."""
    command = [sys.executable, "manage.py", "runworker", "--burst", "--no-scheduler"]
    try:
        return subprocess.run(
            command,
            cwd=ROOT,
            env=cluster.env,
            timeout=180,
            stdout=(cluster.logs / "burst.log").open("ab"),
            stderr=subprocess.STDOUT,
        ).returncode
    except subprocess.TimeoutExpired:
        return None


def summary(report: dict[str, Any]) -> str:
    a = report["analysis"]
    lines = [
        f"chaos soak: seed {report['seed']}, {report['minutes']} min, rate {report['rate']}/s, "
        f"appendfsync {report['fsync']}, lease {LEASE}s",
        f"faults injected       {report['faults_injected']} ({report['faults_skipped']} skipped): "
        + ", ".join(f"{k} {v}" for k, v in sorted(report["faults_by_kind"].items())),
        f"jobs acknowledged     {a['jobs_acknowledged']} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(a['acknowledged_by_kind'].items()))})",
        f"jobs in Redis         {a['jobs_in_redis']}, executions in the ledger {a['executions']}",
        f"acked, never finished {a['acknowledged_never_finished']} (must be 0); "
        f"stored, never finished {len(a['stored_never_finished'])}",
        f"run more than once    {a['duplicates']['count']} "
        f"({a['duplicates']['unexplained']} with no fault near)",
        f"periodic fire times   {a['periodic']['fire_times']} "
        f"(expected {a['periodic']['expected_between_first_and_last']}), with >1 job "
        f"{len(a['periodic']['more_than_one_job'])}, "
        f"missed {len(a['periodic']['missed_fire_times'])}",
        f"results vs ledger     mismatched {len(a['results']['mismatched'])}, "
        f"no execution {len(a['results']['no_execution'])}, unexpected dead letters "
        f"{len(a['results']['unexpected_dead_letters'])}, poison/malformed not dead "
        f"{len(a['results']['expected_dead_not_dead'])}, unknown to Redis "
        f"{len(a['results']['unknown_to_redis'])}; reference jobs failed "
        f"{a['results']['reference_jobs_failed'] or 0}",
        f"unique calls split    {a['unique_calls_split']}",
        f"unplanned deaths      {len(a['unplanned_deaths'])} (poison jobs kill their worker)",
        f"enqueue               {dict(sorted(report['load'].items()))}",
        "recovery (s) by kind  (from the fault's start: held jobs finished and a probe ran)",
    ]
    for kind, r in a["recovery_by_kind"].items():
        lines.append(f"  {kind:22} n {r['n']:2}  p50 {r['p50']:6.2f}  max {r['max']:6.2f}")
    mem = report["memory"]
    if mem:
        peak = {k: max((m["rss"].get(k) or 0) for m in mem) for k in mem[-1]["rss"]}
        redis_peak = max((m["redis_used"] or 0) for m in mem)
        lines.append(
            f"memory peak (MB)      {peak}, redis used {redis_peak:.1f}; "
            f"plot: {report['memory_plot'] or 'skipped (no matplotlib)'}"
        )
    lines.append(
        f"drain                 {report['drain_seconds']:.1f}s; burst worker exit "
        f"{report['burst_exit']}"
    )
    if a["broken"]:
        lines.append("BROKEN:")
        lines += [f"  - {b}" for b in a["broken"]]
    else:
        lines.append("all guarantees held")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=20.0, help="own jobs enqueued a second")
    parser.add_argument("--fsync", choices=["everysec", "always"], default="everysec")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--drain", type=float, default=240.0, help="drain at most (seconds)")
    parser.add_argument("--profile", choices=["ci"], help="ci: 3 minutes at 15 jobs/s")
    args = parser.parse_args()
    if args.profile == "ci":
        args.minutes, args.rate = 3.0, 15.0
    out = args.out or ROOT / "var" / "chaos" / f"{time.strftime('%Y%m%d-%H%M%S')}-seed{args.seed}"
    out = out.resolve()
    prefix = f"chaos-{uuid.uuid4().hex[:8]}"
    cluster = Cluster(out, args.fsync, LEASE, prefix)
    say(f"output in {out}")
    try:
        cluster.start()
        for name in (
            "DJANGO_SETTINGS_MODULE",
            "REDIS_URL",
            "TASKS_PREFIX",
            "TASKS_LEASE",
            "DATABASE_URL",
        ):
            os.environ[name] = cluster.env[name]
        import django

        django.setup()
        soak = Soak(args, cluster)
        asyncio.run(soak.run())
        say("stopping workers and web; a burst worker runs what they released")
        cluster.stop()
        orphans_left = [p for p in cluster.orphans if alive(p)]
        soak.burst_exit = burst(cluster)
        jobs = scan_jobs(cluster.redis.client(timeout=30), prefix)
    finally:
        cluster.shutdown()
    analysis = analyse(cluster.ledger_dir, jobs, LEASE, soak.began)
    for f in soak.faults_done:
        if f["detail"].get("children_alive_after_s"):
            analysis["broken"].append(
                f"children of a SIGKILLed --processes parent still ran {LEASE + 10:.0f}s later: "
                f"{f['detail']['children_alive_after_s']}"
            )
    if orphans_left:
        analysis["broken"].append(f"orphaned worker processes at the end: {orphans_left}")
    kinds: dict[str, int] = {}
    for f in soak.faults_done:
        if not f["skipped"]:
            kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    report: dict[str, Any] = {
        "seed": args.seed,
        "minutes": args.minutes,
        "rate": args.rate,
        "fsync": args.fsync,
        "lease": LEASE,
        "out": str(out),
        "faults_injected": sum(kinds.values()),
        "faults_skipped": sum(1 for f in soak.faults_done if f["skipped"]),
        "faults_by_kind": kinds,
        "load": dict(soak.load.counts),
        "drain_seconds": round(soak.drain_seconds, 1),
        "burst_exit": soak.burst_exit,
        "memory": soak.memory,
        "memory_plot": plot(soak.memory, analysis["faults"], out / "memory.png"),
        "analysis": analysis,
    }
    (out / "chaos.json").write_text(json.dumps(report, indent=1, default=str))
    text = summary(report)
    print(text)
    (out / "summary.txt").write_text(text + "\n")
    sys.exit(1 if analysis["broken"] else 0)


if __name__ == "__main__":
    main()
