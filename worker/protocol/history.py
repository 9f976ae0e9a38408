"""The figures workers write for operators (the dashboard's charts and per-task page): what
their jobs did, added up in memory per worker and written once a second, never per job.

- Per minute (kept a day) and per hour (kept 30 days): attempts ended ("processed") and,
  of those, failed.
- Per task, per 5 minutes (kept an hour) and per hour (kept a day): attempts, failures,
  run time and wait time (enqueue to first start), as sums and histograms whose buckets
  grow by a factor of 2^(1/4) (a p95 read from them is within 19% of the true one).

Every bucket is a hash with a TTL, so memory is bounded by the number of tasks, whatever the
number of jobs. A bucket's fields: ``<minute>:p`` / ``<minute>:f`` (the minute or hour as a
number since the epoch); ``<task>|n`` attempts, ``|f`` failures, ``|r`` run ms, ``|w`` wait
ms, ``|wn`` waits measured, ``|r<i>`` / ``|w<i>`` the histograms (docs/protocol.md).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from worker.protocol.broker import Broker

MINUTE, HOUR, DAY = 60, 3600, 86400
FIVE_MINUTES = 300
# Rows (task, outcome, run and wait buckets) a worker's tally keeps at most while Redis
# refuses its writes: a few hundred bytes each.
KEPT_ROWS = 10_000
# Histogram buckets per doubling: bucket i holds times in [2^(i/4), 2^((i+1)/4)) ms.
STEPS = 4
NO_WAIT = -1  # the wait bucket of an attempt whose wait is not measured (not a first one)

# Each kind of bucket: its width and how long it is kept (seconds).
_MINUTES = ("m", MINUTE, DAY + HOUR)  # a key per hour, a field pair per minute
_HOURS = ("h", HOUR, 31 * DAY)  # a key per day, a field pair per hour
_TASKS_5M = ("t5m", FIVE_MINUTES, HOUR + 2 * FIVE_MINUTES)
_TASKS_1H = ("t1h", HOUR, DAY + 2 * HOUR)


def bucket_of(ms: float) -> int:
    """The histogram bucket of a time in ms."""
    return int(STEPS * math.log2(ms)) if ms > 1 else 0


def bucket_top(index: int) -> float:
    """The upper bound of a histogram bucket, in ms."""
    return float(2 ** ((index + 1) / STEPS))


class Tally:
    """One worker's figures since they were last written: per (task, failed, run bucket,
    wait bucket), the attempts and their run and wait ms. ``add`` is a dict update or two:
    it runs for every attempt."""

    __slots__ = ("failed", "jobs", "processed")

    def __init__(self) -> None:
        self.jobs: dict[tuple[str | None, bool, int, int], list[float]] = {}
        self.processed = 0  # since the worker started (its heartbeat shows them)
        self.failed = 0

    def add(self, task: str | None, failed: bool, run_seconds: float, wait_ms: int | None) -> None:
        """An attempt ended: of ``task`` (None: its message was unreadable), after
        ``run_seconds``; ``wait_ms`` from its enqueue to its start, for a first attempt."""
        run_ms = run_seconds * 1000
        wait = NO_WAIT if wait_ms is None else bucket_of(wait_ms)
        key = (task, failed, bucket_of(run_ms), wait)
        found = self.jobs.get(key)
        if found is None:
            self.jobs[key] = [1, run_ms, wait_ms or 0]
        else:
            found[0] += 1
            found[1] += run_ms
            found[2] += wait_ms or 0
        self.processed += 1
        self.failed += failed

    def take(self) -> dict[tuple[str | None, bool, int, int], list[float]]:
        """What is to be written; the tally starts again from nothing."""
        jobs, self.jobs = self.jobs, {}
        return jobs

    def bound(self, rows: int = KEPT_ROWS) -> int:
        """Drop what is to be written if it grew past ``rows`` rows (Redis refused it for
        long): how many attempts were dropped (0: it is kept)."""
        if len(self.jobs) <= rows:
            return 0
        dropped = int(sum(n for n, _, _ in self.jobs.values()))
        self.jobs = {}
        return dropped

    def give_back(self, jobs: dict[tuple[str | None, bool, int, int], list[float]]) -> None:
        """Figures that could not be written, for the next write."""
        for key, (n, run, wait) in jobs.items():
            found = self.jobs.setdefault(key, [0, 0.0, 0.0])
            found[0] += n
            found[1] += run
            found[2] += wait


def increments(
    jobs: dict[tuple[str | None, bool, int, int], list[float]], now: float
) -> dict[tuple[str, int], dict[str, int]]:
    """What a write adds: (bucket kind, bucket start) -> field -> amount."""
    out: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    minute, hour = int(now // MINUTE), int(now // HOUR)
    tasks = [out[("t5m", int(now // FIVE_MINUTES))], out[("t1h", hour)]]
    totals = [(out[("m", hour)], minute), (out[("h", int(now // DAY))], hour)]
    for (task, failed, run_bucket, wait_bucket), (n, run, wait) in jobs.items():
        count = int(n)
        for fields, at in totals:
            fields[f"{at}:p"] += count
            if failed:
                fields[f"{at}:f"] += count
        if task is None:
            continue
        for fields in tasks:
            fields[f"{task}|n"] += count
            fields[f"{task}|r"] += round(run)
            fields[f"{task}|r{run_bucket}"] += count
            if failed:
                fields[f"{task}|f"] += count
            if wait_bucket != NO_WAIT:
                fields[f"{task}|w"] += round(wait)
                fields[f"{task}|wn"] += count
                fields[f"{task}|w{wait_bucket}"] += count
    return out


_KINDS = {kind[0]: kind for kind in (_MINUTES, _HOURS, _TASKS_5M, _TASKS_1H)}


async def write(broker: Broker, tally: Tally) -> None:
    """Write a worker's tally in one round trip (figures not written stay in it)."""
    jobs = tally.take()
    if not jobs:
        return
    try:
        async with broker.aclient().pipeline(transaction=False) as pipe:
            for (kind, start), fields in increments(jobs, time.time()).items():
                key = broker.keys.history(f"{kind}:{start}")
                for name, amount in fields.items():
                    pipe.hincrby(key, name, amount)
                pipe.expire(key, _KINDS[kind][2])
            await pipe.execute()
    except BaseException:
        tally.give_back(jobs)
        raise


# Reading, for the ops API.


@dataclass(frozen=True, slots=True)
class Point:
    """Attempts ended and failed in one minute or hour (``at``: its start, epoch seconds)."""

    at: int
    processed: int
    failed: int


@dataclass(frozen=True, slots=True)
class TaskFigures:
    """One task's attempts over a window; times in seconds (None: none measured)."""

    task: str
    count: int
    failures: int
    run_mean: float | None
    run_p95: float | None
    wait_mean: float | None
    wait_p95: float | None


def points(broker: Broker, per: str, now: float | None = None) -> list[Point]:
    """Per minute over the last day (``per`` "minute") or per hour over the last 30 days
    ("hour"), oldest first, every minute or hour there (0 where nothing ran)."""
    now = time.time() if now is None else now
    kind, width, _ = _MINUTES if per == "minute" else _HOURS
    bucket = HOUR if per == "minute" else DAY
    span = DAY if per == "minute" else 30 * DAY
    first = int((now - span) // width) + 1
    last = int(now // width)
    keys = range(int(first * width // bucket), int(now // bucket) + 1)
    with broker.sync.pipeline(transaction=False) as pipe:
        for start in keys:
            pipe.hgetall(broker.keys.history(f"{kind}:{start}"))
        replies = cast("list[dict[bytes, bytes]]", pipe.execute())
    found: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for reply in replies:
        for name, value in reply.items():
            at, _, which = name.decode().partition(":")
            found[int(at)][which == "f"] += int(value)
    return [Point(at * width, *found.get(at, (0, 0))) for at in range(first, last + 1)]


def task_figures(broker: Broker, window: str, now: float | None = None) -> list[TaskFigures]:
    """Each task's figures over the last hour (``window`` "hour": 5-minute buckets) or day
    ("day": hourly buckets), by task path."""
    now = time.time() if now is None else now
    kind, width, _ = _TASKS_5M if window == "hour" else _TASKS_1H
    count = HOUR // width if window == "hour" else DAY // width
    last = int(now // width)
    with broker.sync.pipeline(transaction=False) as pipe:
        for start in range(last - count + 1, last + 1):
            pipe.hgetall(broker.keys.history(f"{kind}:{start}"))
        replies = cast("list[dict[bytes, bytes]]", pipe.execute())
    return summarised([{k.decode(): int(v) for k, v in reply.items()} for reply in replies])


def summarised(buckets: list[dict[str, int]]) -> list[TaskFigures]:
    """Each task's figures over ``buckets`` (their fields as ``increments`` writes them)."""
    summed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for bucket in buckets:
        for name, value in bucket.items():
            task, bar, field = name.rpartition("|")
            if bar:
                summed[task][field] += value
    return [_figures(task, fields) for task, fields in sorted(summed.items())]


def _figures(task: str, fields: dict[str, int]) -> TaskFigures:
    n, waits = fields.get("n", 0), fields.get("wn", 0)
    return TaskFigures(
        task=task,
        count=n,
        failures=fields.get("f", 0),
        run_mean=fields.get("r", 0) / n / 1000 if n else None,
        run_p95=_p95(fields, "r", n),
        wait_mean=fields.get("w", 0) / waits / 1000 if waits else None,
        wait_p95=_p95(fields, "w", waits),
    )


def _p95(fields: dict[str, int], prefix: str, total: int) -> float | None:
    """The 95th percentile from a histogram's buckets (their upper bound), in seconds."""
    if not total:
        return None
    buckets = sorted(
        (int(name[len(prefix) :]), n)
        for name, n in fields.items()
        if name.startswith(prefix) and name[len(prefix) :].isdigit()
    )
    seen = 0
    for index, n in buckets:
        seen += n
        if seen >= 0.95 * total:
            return bucket_top(index) / 1000
    return bucket_top(buckets[-1][0]) / 1000 if buckets else None
