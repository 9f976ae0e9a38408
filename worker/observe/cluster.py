"""The cluster-wide gauges no single worker owns (per queue: jobs ready, delayed, retrying,
dead, running, the age of the oldest ready job, live workers), read from Redis at each
scrape of the metrics view (worker/observe/views.py) in a number of commands that does not
grow with the number of jobs: one script call per queue, two for the workers."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import orjson

from worker.observe.metrics import Family

if TYPE_CHECKING:
    from worker.backend import RedisBackend
    from worker.observe.metrics import Snapshot

_QUEUE = ("queue",)
FAMILIES = (
    Family("worker_queue_ready", "gauge", "Jobs ready to run", "ready", _QUEUE),
    Family("worker_queue_delayed", "gauge",
           "Jobs waiting for a time (run_after, or a retry's backoff)", "delayed", _QUEUE),
    Family("worker_queue_retrying", "gauge",
           "Of the delayed jobs, those waiting to retry (left out above 1,000 delayed)",
           "retrying", _QUEUE),
    Family("worker_queue_dead", "gauge", "Dead letters", "dead", _QUEUE),
    Family("worker_queue_running", "gauge", "Jobs leased to workers now", "running", _QUEUE),
    Family("worker_queue_oldest_ready_age_seconds", "gauge",
           "How long the next job to run has been ready (0: none is ready)",
           "oldest_ready_ms", _QUEUE),
    Family("worker_queue_live_workers", "gauge", "Live workers serving the queue", "", _QUEUE),
    Family("worker_live_workers", "gauge", "Live workers of the backend", ""),
)  # fmt: skip


async def snapshot(backend: RedisBackend) -> Snapshot:
    """The gauges of every queue of ``backend`` (its QUEUES; with none given, those its live
    workers serve: finding every queue in Redis would mean a SCAN of every key)."""
    beats = [orjson.loads(beat) for beat in await backend.broker.live_heartbeats()]
    served = [set(beat.get("queues") or ()) for beat in beats]
    queues = sorted(backend.queues or set().union(*served))
    read = await asyncio.gather(*(backend.broker.queue(q).gauges() for q in queues))
    found: Snapshot = {family.name: {} for family in FAMILIES}
    for queue, gauges in zip(queues, read, strict=True):
        for family in FAMILIES:
            if not family.attribute:  # the workers', counted below
                continue
            value = getattr(gauges, family.attribute)
            if family.attribute == "oldest_ready_ms":
                found[family.name][queue,] = (value or 0) / 1000
            elif value is not None:
                found[family.name][queue,] = float(value)
        found["worker_queue_live_workers"][queue,] = float(sum(queue in s for s in served))
    found["worker_live_workers"][()] = float(len(beats))
    return found
