"""The scheduler every worker runs: at each fire time of each periodic job, ask Redis to
enqueue its job; the FIRE script lets one ask through per fire time (worker/scripts.py)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from django.tasks.signals import task_enqueued

from worker import scripts, signals
from worker.backend import RedisBackend
from worker.broker import enqueue_arguments
from worker.connection import REDIS_ERRORS
from worker.periodic import Periodic, schedules

logger = logging.getLogger("worker")

# Longest sleep between looks at the clock (schedules wake the loop at their fire times).
TICK = timedelta(seconds=1)


class Scheduler:
    def __init__(self, backend: RedisBackend, jobs: list[Periodic] | None = None) -> None:
        self.backend = backend
        self.jobs = schedules() if jobs is None else jobs
        self._next: dict[str, datetime] = {}  # per schedule: nothing to do before this
        self._fire = backend.aclient().register_script(scripts.FIRE)

    async def run(self) -> None:
        if not self.jobs:
            return
        logger.info("Scheduler: %s", "; ".join(f"{j.name} {j.describe()}" for j in self.jobs))
        while True:
            now = datetime.now(UTC)
            for job in self.jobs:
                try:
                    await self.check(job, now)
                except REDIS_ERRORS as e:
                    logger.debug("Scheduler could not reach Redis (%s); will retry", e)
                except Exception:
                    # One broken schedule (or enqueue receiver) must not stop the others.
                    logger.exception("Periodic %s failed; trying again shortly", job.name)
                    self._next[job.name] = now + 5 * TICK
            wake = min([*self._next.values(), now + TICK])
            await asyncio.sleep(max((wake - datetime.now(UTC)).total_seconds(), 0.001))

    async def check(self, job: Periodic, now: datetime) -> int | None:
        """Handle ``job``'s latest fire time at ``now`` if not yet done. Returns the FIRE
        script's answer (0 handled elsewhere, 1 missed, 2 enqueued, 3 a new schedule's
        first, late, fire time) or None."""
        due = self._next.get(job.name)
        if due is not None and now < due:
            return None
        fire = job.schedule.last_at_or_before(now)
        if fire is None:
            self._next[job.name] = job.next_fire(now)
            return None
        late = now - fire > job.grace
        mode = "fire" if not late else "catch_up" if job.missed == "run_once" else "skip"
        # The job records its fire time as run_after: it is due then, and it says which
        # fire it is (at most one job per schedule has a given run_after).
        result, new = self.backend.prepare(job.task.using(run_after=fire), job.args, job.kwargs)
        keys, argv = enqueue_arguments(self.backend.keys, new)
        answer = int(
            await self._fire(
                [*keys[:3], self.backend.keys.periodic(new.queue)],
                [*argv[:8], job.name, int(fire.timestamp() * 1000), mode],
            )
        )
        self._next[job.name] = job.next_fire(fire)
        if answer == 2:
            logger.info("Periodic %s fired for %s: job %s", job.name, fire.isoformat(), new.id)
            try:
                await signals.asend(task_enqueued, type(self.backend), task_result=result)
            except Exception:
                logger.exception("A task_enqueued receiver failed for job %s", new.id)
        elif answer == 1:
            logger.warning("Periodic %s: fire time %s passed while no worker ran; skipped",
                           job.name, fire.isoformat())  # fmt: skip
        return answer
