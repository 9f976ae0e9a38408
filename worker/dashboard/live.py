"""The live view: one reader per site process, whatever the number of open pages.

While at least one page listens (``/tasks/events``, Server-Sent Events), the process's hub
reads every queue's figures and the live workers once a second (``Ops.asnapshot``: two
round trips a queue, two for the workers) and hands each page the same message; with no
page listening it reads nothing. A page listens only while its tab is visible (the
script closes the stream when it is hidden), a minute per stream (it connects again). It
keeps the last five minutes of samples, for the per-second chart of a page that opens.

With the backend's QUEUES empty (any queue name allowed), the queues are found by a SCAN of
every key under the prefix, whose cost grows with the number of jobs: at most every
QUEUES_FOR seconds here while a page listens, and at each page load (docs/dashboard.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson

from worker.ops.api import Snapshot
from worker.protocol.connection import REDIS_ERRORS

logger = logging.getLogger("worker.dashboard")

EVERY = 1.0  # seconds between reads
SAMPLES = 300  # five minutes of them, for the per-second chart
KEEPALIVE = 15.0  # seconds of silence after which a comment keeps the stream open
# Seconds a stream lasts: then it ends and the page's EventSource connects again (after
# RETRY_MS), so that no stream holds a server that is shutting down for long (uvicorn waits
# for open connections, up to its --timeout-graceful-shutdown).
STREAM_FOR = 60.0
RETRY_MS = 1000  # how soon a page connects again after its stream ended
# Seconds the list of queues is kept: with QUEUES empty it is found by a SCAN, too costly
# for every reading.
QUEUES_FOR = 30.0
# The counters that count attempts ended, and those of failed ones.
PROCESSED = ("succeeded", "retried", "failed", "cancelled", "lost")
FAILED = ("retried", "failed", "lost")


class Hub:
    """The readings of one process (one event loop), shared by every listening page."""

    def __init__(self) -> None:
        self.listeners = 0
        self.samples: deque[tuple[float, int, int, dict[str, int]]] = deque(maxlen=SAMPLES + 1)
        self.latest: dict[str, Any] | None = None
        self._next = asyncio.Event()  # set (and replaced) at each reading
        self._reader: asyncio.Task[None] | None = None
        self.reads = 0  # readings made, for tests that count the cost
        self._queues: tuple[float, list[str]] = (0.0, [])  # (when listed, the queues)

    async def messages(self) -> AsyncIterator[bytes]:
        """The stream of one page for STREAM_FOR seconds: the latest reading (with the
        per-second series), then each new one; a comment now and then keeps proxies from
        closing it."""
        self.listeners += 1
        if self._reader is None or self._reader.done():
            self.latest = None  # read while no page listened: old news
            self._reader = asyncio.create_task(self._read())
        until = time.monotonic() + STREAM_FOR
        try:
            yield b"retry: %d\n\n" % RETRY_MS
            if self.latest is None:
                await self._wait_next(until)
            if self.latest is not None:
                yield _event({**self.latest, "series": self.series()})
            while time.monotonic() < until:
                if await self._wait_next(until):
                    assert self.latest is not None
                    yield _event(self.latest)
                elif time.monotonic() < until:
                    yield b": keepalive\n\n"
        finally:
            self.listeners -= 1

    async def _wait_next(self, until: float) -> bool:
        """Until the next reading (True), KEEPALIVE seconds or ``until`` (False)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._next.wait(), min(KEEPALIVE, until - time.monotonic()))
            return True
        return False

    async def _read(self) -> None:
        from worker.dashboard.pages import ops

        while self.listeners > 0:
            try:
                reader = ops()
                if time.monotonic() - self._queues[0] > QUEUES_FOR:
                    self._queues = (time.monotonic(), await asyncio.to_thread(reader.queues))
                self.latest = self.message(await reader.asnapshot(self._queues[1]))
            except REDIS_ERRORS as e:
                self.latest = {"error": f"Redis cannot be read: {e.__class__.__name__}"}
            except Exception:
                logger.exception("The dashboard's live reading failed")
                self.latest = {"error": "The live reading failed (see the site's log)"}
            self.reads += 1
            ready, self._next = self._next, asyncio.Event()
            ready.set()
            await asyncio.sleep(EVERY)

    def message(self, snapshot: Snapshot) -> dict[str, Any]:
        """What a page is sent: totals, per-queue and per-worker figures, the latest rates."""
        per_queue = {
            name: sum(q.counters.get(c, 0) for c in PROCESSED)
            for name, q in snapshot.queues.items()
        }
        processed = sum(per_queue.values())
        failed = sum(q.counters.get(c, 0) for q in snapshot.queues.values() for c in FAILED)
        self.samples.append((snapshot.at, processed, failed, per_queue))
        rates = self.series()
        queues = {}
        for name, q in snapshot.queues.items():
            g = q.gauges
            queues[name] = {
                "ready": g.ready,
                "running": g.running,
                "delayed": g.delayed,
                "retrying": g.retrying,
                "dead": g.dead,
                "latency": None if g.oldest_ready_ms is None else g.oldest_ready_ms / 1000,
                "throughput": self._throughput(name),
                "paused": q.paused,
            }
        gauges = [q.gauges for q in snapshot.queues.values()]
        return {
            "at": snapshot.at,
            "totals": {
                "processed": processed,
                "failed": failed,
                "running": sum(g.running for g in gauges),
                "enqueued": sum(g.ready for g in gauges),
                "delayed": sum(g.delayed for g in gauges),
                "retrying": sum(g.retrying or 0 for g in gauges),
                "dead": sum(g.dead for g in gauges),
                "workers": len(snapshot.workers),
            },
            "rate": rates[-1] if rates else None,
            "queues": queues,
            "workers": {
                w.id: {
                    "in_flight": w.in_flight,
                    "processed": w.processed,
                    "failed": w.failed,
                    "quiet": w.quiet,
                    "seen": w.seen_at,
                }
                for w in snapshot.workers
            },
        }

    def series(self) -> list[list[float]]:
        """[time, succeeded per second, failed per second] between consecutive samples."""
        rates = []
        samples = self.samples
        for (t0, p0, f0, _), (t1, p1, f1, _) in itertools.pairwise(samples):
            span = max(t1 - t0, 1e-3)
            failed = max(f1 - f0, 0)
            rates.append([round(t1, 3), round(max(p1 - p0 - failed, 0) / span, 2),
                          round(failed / span, 2)])  # fmt: skip
        return rates

    def _throughput(self, queue: str) -> float | None:
        """Attempts ended per second in ``queue`` over the last minute of samples."""
        now = self.samples[-1]
        start = next((s for s in self.samples if now[0] - s[0] <= 60), now)
        if start is now:
            return None
        done = now[3].get(queue, 0) - start[3].get(queue, 0)
        return round(max(done, 0) / (now[0] - start[0]), 2)


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def hub() -> Hub:
    """This process's hub (one per event loop: a test's loop gets its own)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        for old in [other for other in _hubs if other.is_closed()]:
            del _hubs[old]
        found = _hubs[loop] = Hub()
    return found


def _event(message: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(message) + b"\n\n"
