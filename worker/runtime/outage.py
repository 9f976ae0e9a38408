"""What a worker knows of its own hold on Redis: outages (logged once, ridden out with
backoff), stalls, and whether another worker's missing heartbeat can be trusted.

A heartbeat key runs out on Redis's clock, also while Redis is unreachable, paused or
refusing writes: then every worker's heartbeat runs out at once, and the first worker back
would take the others, alive all along, for dead. So after any outage or stall it has seen,
a worker waits ``doubt`` seconds of steady contact (long enough for the others to beat
again) before it believes a missing heartbeat.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from worker.observe import metrics
from worker.protocol.connection import failing

logger = logging.getLogger("worker")


class Outage:
    """One worker's record of its contact with Redis (see the module's docstring)."""

    def __init__(self, doubt: float, url: str = "") -> None:
        self.doubt = doubt
        self.url = url  # of the Redis, named (without its password) in the log lines
        self.since: float | None = None
        self.delay = 0.05
        # A worker just started cannot tell a dead peer from one held up by an outage that
        # ended before it began: it doubts at first too.
        self._doubt_until = time.monotonic() + doubt

    def noted(self, error: BaseException) -> None:
        """A Redis error met: the outage is logged once, and heartbeats are in doubt."""
        if self.since is None:
            self.since = time.monotonic()
            logger.error("%s; retrying with backoff", failing(self.url, error))
            metrics.count_outage()
        self._distrust()

    async def failed(self, error: BaseException) -> None:
        """``noted``, then a backoff before the caller tries again."""
        self.noted(error)
        await asyncio.sleep(self.delay * (0.5 + random.random() / 2))
        self.delay = min(self.delay * 2, 5.0)

    def ok(self) -> None:
        if self.since is not None:
            logger.warning("Redis is back after %.1fs", time.monotonic() - self.since)
            self.since, self.delay = None, 0.05
            self._distrust()  # the others are only now getting through again

    def stalled(self, seconds: float) -> None:
        """Redis took ``seconds`` to answer a command that it answers at once when well."""
        logger.warning("Redis took %.1fs to take a heartbeat (paused or stalled)", seconds)
        self._distrust()

    def trusted(self) -> bool:
        """Whether a missing heartbeat means its worker is gone."""
        return time.monotonic() >= self._doubt_until

    def _distrust(self) -> None:
        self._doubt_until = time.monotonic() + self.doubt
