"""The workflow workloads of bench/run.py (``--only workflow_enqueue,workflow_drain``), each
beside plain jobs in the same run, the order alternating with the run (a drift in the
machine's load cancels out over the runs):

- ``workflow_enqueue``: the enqueue of one group of ENQUEUE_STEPS no-op steps and a no-op
  callback (planned, each call checked, then stored: its first steps staged 1,000 a call,
  then made visible by one START call), and a bulk enqueue (``aenqueue_many``) of as many
  no-op jobs, on this harness's loop; and Redis's own time in the scripts of each, in all
  and in its longest call (during which Redis serves nothing else).
- ``workflow_drain``: the drain by one runworker of DRAIN_GROUPS groups of GROUP_STEPS
  no-op steps, each group with a no-op callback, and of as many no-op jobs: what the
  workflows' bookkeeping (in the scripts that ack a step) costs a drain.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from worker.workflows import Part, group, step

if TYPE_CHECKING:
    from bench.run import Harness

ENQUEUE_STEPS = 10_000
DRAIN_GROUPS, GROUP_STEPS = 200, 100  # 20,200 jobs: about the drain row's 20,000


def callback_group(task, steps: int) -> Part:
    return group([step(task) for _ in range(steps)]).then(step(task))


def order(run: int) -> tuple[bool, bool]:
    return (True, False) if run % 2 else (False, True)


async def workflow_enqueue(harness: Harness, run: int) -> dict:
    """Jobs/s of the group's enqueue and of the bulk one (``group_per_s``, ``bulk_per_s``),
    their ratio, and Redis's time in the scripts of each (``script_ms``,
    ``bulk_script_ms``) and in its longest call (``longest_ms``, ``bulk_longest_ms``)."""
    got: dict[bool, dict] = {}
    for workflow in order(run):
        await harness.clean()
        got[workflow] = await (_enqueue_group if workflow else _enqueue_bulk)(harness)
    await harness.clean()
    group_per_s, bulk_per_s = got[True]["per_s"], got[False]["per_s"]
    return {"group_per_s": group_per_s, "bulk_per_s": bulk_per_s,
            "ratio": group_per_s / bulk_per_s, "script_ms": got[True]["script_ms"],
            "bulk_script_ms": got[False]["script_ms"], "longest_ms": got[True]["longest_ms"],
            "bulk_longest_ms": got[False]["longest_ms"]}  # fmt: skip


async def _enqueue_group(harness: Harness) -> dict:
    flow = callback_group(harness.tasks.noop, ENQUEUE_STEPS)
    return await _timed(harness, flow.aenqueue())


async def _enqueue_bulk(harness: Harness) -> dict:
    calls = [((), {})] * (ENQUEUE_STEPS + 1)
    return await _timed(harness, harness.tasks.noop.aenqueue_many(calls))


async def _timed(harness: Harness, enqueue: Awaitable[object]) -> dict:
    """Jobs/s of an enqueue of ENQUEUE_STEPS + 1 jobs, and Redis's time in its scripts: in
    all, and in the longest call (Redis's slow log, set to keep every command meanwhile)."""
    client = harness.client
    saved = await client.config_get("slowlog-log-slower-than")
    await client.config_set("slowlog-log-slower-than", 0)
    await client.slowlog_reset()
    before = await _script_usec(harness)
    began = time.perf_counter()
    try:
        await enqueue
        per_s = (ENQUEUE_STEPS + 1) / (time.perf_counter() - began)
        script_ms = (await _script_usec(harness) - before) / 1000
        calls = [e for e in await client.slowlog_get(128) if e["command"].startswith(b"EVALSHA")]
    finally:
        await client.config_set("slowlog-log-slower-than", saved["slowlog-log-slower-than"])
    longest_ms = max(e["duration"] for e in calls) / 1000
    return {"per_s": per_s, "script_ms": script_ms, "longest_ms": longest_ms}


async def _script_usec(harness: Harness) -> int:
    """Microseconds Redis has spent in scripts run by EVALSHA (none but the enqueue's while
    it runs: no worker runs, and the benchmark's Redis is its own)."""
    stats = await harness.client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("usec", 0))


async def workflow_drain(harness: Harness, run: int) -> dict:
    """Jobs/s of the drain of the groups' steps and callbacks and of as many no-op jobs
    (``steps_per_s``, ``plain_per_s``), their ratio, and each one's CPU per job."""
    got: dict[bool, dict] = {}
    for workflow in order(run):
        got[workflow] = await _drain(harness, workflow)
    steps, plain = got[True], got[False]
    return {"steps_per_s": steps["jobs_per_s"], "plain_per_s": plain["jobs_per_s"],
            "ratio": steps["jobs_per_s"] / plain["jobs_per_s"],
            "worker_us": steps.get("worker_us"), "redis_us": steps.get("redis_us"),
            "plain_worker_us": plain.get("worker_us"),
            "plain_redis_us": plain.get("redis_us")}  # fmt: skip


async def _drain(harness: Harness, workflows: bool) -> dict:
    n = DRAIN_GROUPS * (GROUP_STEPS + 1)
    await harness.clean()
    if workflows:
        flow = callback_group(harness.tasks.noop, GROUP_STEPS)
        for _ in range(DRAIN_GROUPS):  # a canvas is enqueued as many times as wanted
            await flow.aenqueue()
    else:
        await harness.enqueue_many(harness.tasks.noop, [], n)
    name = "workflow-drain" if workflows else "workflow-drain-plain"
    process = harness.start_worker(name, harness.sizes.drain_concurrency)
    try:
        elapsed, _, window = await harness.timed_drain(n, process, 1, 120)
    finally:
        harness.stop(process)
    await harness.clean()
    return {"jobs_per_s": n / elapsed, **window}


if __name__ == "__main__":
    sys.exit("run it through bench/run.py: python bench/run.py --only workflow_drain")
