"""The chaos soak's steady load: the soak's own job kinds enqueued from this process, and the
reference site's jobs enqueued through its views (POST /jobs/sync-orders/, POST /reports/).

An enqueue counts as acknowledged when its caller got a job id (aenqueue returned, or the view
answered 202): from then on the job must finish. The id goes into the ledger (``acked``).
A direct enqueue that fails with BrokerUnavailable is tried again with the same idempotency
key, so a job Redis may have stored (``maybe_stored``) is not stored twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench import chaos_ledger
from bench.chaos_cluster import LEDGER

# The mix of the soak's own kinds, by weight.
MIX = {"io": 35, "cpu": 15, "flaky": 15, "delayed": 20, "unique": 15}


class Load:
    def __init__(self, rate: float, seed: int, web_url: str) -> None:
        from bench.chaos_app import tasks

        self.tasks = tasks
        self.rate = rate
        self.rng = random.Random(seed + 1)  # apart from the fault schedule's draws
        self.web_url = web_url
        self.counts: Counter[str] = Counter()
        self.running = True
        self._n = 0
        self._pending: set[asyncio.Task[Any]] = set()

    async def send(self, kind: str, give_up_after: float = 60.0) -> str | None:
        """Enqueue one job of ``kind`` until Redis acknowledges it; its id, or None."""
        from worker.exceptions import BrokerUnavailable

        self._n += 1
        key = f"{kind}-{self._n}"
        t = self.tasks
        run_after = None
        match kind:
            case "io" | "delayed":
                task, args = t.io_job, (key, round(self.rng.uniform(0.01, 0.5), 3))
                if kind == "delayed":
                    run_after = datetime.now(UTC) + timedelta(seconds=self.rng.uniform(0.5, 10))
            case "cpu":
                task, args = t.cpu_job, (key, round(self.rng.uniform(1, 20), 1))
            case "flaky":
                task, args = t.flaky_job, (key, self.rng.randint(1, 3))
            case "unique":
                task, args = t.unique_job, (self.rng.randrange(50),)
            case "probe":
                task, args = t.probe, (key,)
            case "poison":
                task, args = t.poison_job, (key,)
            case _:
                raise ValueError(kind)
        changes: dict[str, Any] = {"run_after": run_after} if run_after else {}
        if kind != "unique":  # a unique call is its own idempotency key
            changes["idempotency_key"] = key
        call = task.using(**changes) if changes else task
        deadline = time.monotonic() + give_up_after
        tries = 0
        while True:
            tries += 1
            try:
                result = await call.aenqueue(*args)
            except BrokerUnavailable as e:
                self.counts["refused_maybe_stored" if e.maybe_stored else "refused_not_stored"] += 1
                if time.monotonic() > deadline or (not self.running and kind != "probe"):
                    chaos_ledger.record(
                        "gave-up", LEDGER, k=kind, key=key, maybe_stored=e.maybe_stored
                    )
                    self.counts["gave_up"] += 1
                    return None
                await asyncio.sleep(min(2.0, 0.1 * 2**tries) * self.rng.uniform(0.5, 1))
                continue
            chaos_ledger.record(
                "acked",
                LEDGER,
                j=result.id,
                k=kind,
                key=key,
                tries=tries,
                n=args[0] if kind == "unique" else None,
            )
            self.counts[f"acked_{kind}"] += 1
            return result.id

    def spawn(self, kind: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(self.send(kind))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def direct(self) -> None:
        """``rate`` jobs a second of the soak's kinds, in ticks of 100 ms."""
        kinds, weights = list(MIX), list(MIX.values())
        carry = 0.0
        while self.running:
            carry += self.rate / 10
            while carry >= 1:
                carry -= 1
                if len(self._pending) > self.rate * 30:  # Redis away for long: do not pile up
                    self.counts["skipped_backlog"] += 1
                    continue
                self.spawn(self.rng.choices(kinds, weights)[0])
            await asyncio.sleep(0.1)

    async def web(self) -> None:
        """Through the reference site: a request a second, sync-orders and reports in turn
        (each sync-orders fetches three pages from the site's fake order service, each report
        posts to its fake webhook: the web process is in the jobs' path too)."""
        paths = {
            "/jobs/sync-orders/": "jobs.tasks.sync_orders",
            "/reports/": "jobs.tasks.send_report",
        }
        async with httpx.AsyncClient(base_url=self.web_url, timeout=5) as client:
            turn = 0
            while self.running:
                path = list(paths)[turn % 2]
                turn += 1
                try:
                    response = await client.post(path)
                except httpx.HTTPError as e:
                    self.counts[f"web_{type(e).__name__}"] += 1
                else:
                    self.counts[f"web_{response.status_code}"] += 1
                    if response.status_code == 202:
                        chaos_ledger.record(
                            "acked", LEDGER, j=response.json()["job_id"], k=paths[path], via="web"
                        )
                await asyncio.sleep(1)

    async def wait_pending(self, seconds: float) -> None:
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=seconds)
