"""The scheduler every worker runs: at each fire time of each periodic job, ask Redis to
enqueue its job; the FIRE script lets one ask through per fire time (protocol/lua/fire.lua)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

from django.tasks import TaskResultStatus
from django.tasks.signals import task_enqueued

from worker.periodic import Periodic, schedules
from worker.protocol import Broker
from worker.protocol.connection import REDIS_ERRORS
from worker.protocol.message import encode, new_job
from worker.protocol.records import now_ms
from worker.results import from_ms, make_result
from worker.runtime import signals

logger = logging.getLogger("worker")

# Longest sleep between looks at the clock (schedules wake the loop at their fire times).
TICK = timedelta(seconds=1)
# Seconds this host's clock may differ from Redis's before it is logged.
MAX_SKEW = 1.0


def tell_skew(redis_now: float, told: bool) -> bool:
    """Whether this host's clock is more than MAX_SKEW off Redis's (``redis_now``); logged
    unless ``told`` already."""
    skew = time.time() - redis_now
    off = abs(skew) > MAX_SKEW
    if off and not told:
        logger.warning("This host's clock is %+.1fs off Redis's; what is due (delayed jobs, "
                       "retries, periodic jobs) follows Redis's clock", skew)  # fmt: skip
    return off


class Scheduler:
    """Fires the periodic jobs (``@periodic``) of this project through ``broker``; results
    and ``task_enqueued`` signals name the backend ``alias`` and ``sender``."""

    def __init__(
        self,
        broker: Broker,
        alias: str = "default",
        sender: type = object,
        jobs: list[Periodic] | None = None,
        max_payload_bytes: int = 1024 * 1024,
    ) -> None:
        self.broker = broker
        self.alias = alias
        self.sender = sender
        self.max_payload_bytes = max_payload_bytes
        self.jobs = schedules() if jobs is None else jobs
        self._next: dict[str, datetime] = {}  # per schedule: nothing to do before this
        self._skew_told = False

    async def run(self) -> None:
        if not self.jobs:
            return
        logger.info("Scheduler: %s", "; ".join(f"{j.name} {j.describe()}" for j in self.jobs))
        while True:
            try:
                now = await self.now()
            except REDIS_ERRORS as e:
                logger.debug("Scheduler could not reach Redis (%s); will retry", e)
                await asyncio.sleep(TICK.total_seconds())
                continue
            began = time.monotonic()
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
            left = (wake - now).total_seconds() - (time.monotonic() - began)
            await asyncio.sleep(max(left, 0.001))

    async def now(self) -> datetime:
        """Now on Redis's clock: every worker decides fire times on the same one, so one
        whose own clock is wrong neither fires early nor silences the schedule for the
        others. A local clock off by more than a second is logged, once."""
        redis_now = await self.broker.time()
        self._skew_told = tell_skew(redis_now, self._skew_told)
        return datetime.fromtimestamp(redis_now, UTC)

    async def check(self, job: Periodic, now: datetime) -> int | None:
        """Handle ``job``'s latest fire time at ``now`` if not yet done. Returns the FIRE
        script's answer (see ``Queue.fire``) or None."""
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
        task = job.task.using(run_after=fire)
        args, kwargs, body, limit = encode(task, job.args, job.kwargs, self.max_payload_bytes)
        new = new_job(task, args, kwargs, body, limit, now_ms())
        fire_ms = int(fire.timestamp() * 1000)
        answer = await self.broker.queue(new.queue).fire(new, job.name, fire_ms, mode)
        self._next[job.name] = job.next_fire(fire)
        if answer == 2:
            logger.info("Periodic %s fired for %s: job %s", job.name, fire.isoformat(), new.id)
            result = make_result(task, new.id, TaskResultStatus.READY, args, kwargs,
                                 self.alias, enqueued_at=from_ms(new.enqueued_ms))  # fmt: skip
            try:
                await signals.asend(task_enqueued, self.sender, task_result=result)
            except Exception:
                logger.exception("A task_enqueued receiver failed for job %s", new.id)
        elif answer == 1:
            logger.warning("Periodic %s: fire time %s passed while no worker ran; skipped",
                           job.name, fire.isoformat())  # fmt: skip
        elif answer == 5:
            logger.debug("Periodic %s is paused: fire time %s passed without a job",
                         job.name, fire.isoformat())  # fmt: skip
        elif answer == 4:
            logger.warning("Periodic %s: fire time %s is still ahead on Redis's clock; not "
                           "fired", job.name, fire.isoformat())  # fmt: skip
            self._next.pop(job.name, None)  # ask again at the next tick
        return answer
