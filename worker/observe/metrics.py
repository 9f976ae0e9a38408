"""The worker's own Prometheus metrics, recorded as plain numbers (no prometheus-client on
the job's path) and rendered at scrape time by worker/observe/exposition.py.

A job touches its (task, queue) series a handful of times: integer increments and two
bisects, a fraction of what prometheus-client's locked values cost (docs/observability.md
has the figures). Off (the default), the worker checks one attribute per job, and the
process-wide hooks below are no-ops.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from worker.protocol.fastredis import FastRedis
from worker.protocol.records import OutcomeKind
from worker.task import lookup

if TYPE_CHECKING:
    from worker.protocol.records import Lease
    from worker.task import Task

# Run and wait times: from 1 ms to 10 min.
JOB_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
               30.0, 60.0, 120.0, 300.0, 600.0)  # fmt: skip
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
               30.0, 60.0)  # fmt: skip
ROUND_TRIP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                      0.25, 0.5, 1.0, 2.5, 5.0)  # fmt: skip
# The task label of a message that could not be decoded: its task name is not to be trusted
# (nor let grow the label set).
REJECTED = "(rejected)"
# The task label of a job lost with its worker whose task this worker does not register.
UNKNOWN = "(unknown)"


class Family(NamedTuple):
    """One metric as Prometheus sees it; ``attribute`` is where its value lives (on a
    ``Series`` for the per-job families, on the ``Meter`` for the process's)."""

    name: str
    kind: str  # "counter", "gauge" or "histogram"
    help: str
    attribute: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


_JOB = ("task", "queue")
JOB_FAMILIES = (
    Family("worker_jobs_started", "counter", "Attempts started", "started", _JOB),
    Family("worker_jobs_succeeded", "counter", "Attempts that succeeded", "succeeded", _JOB),
    Family("worker_jobs_failed", "counter",
           "Attempts that ended with an error (retried or dead-lettered)", "failed", _JOB),
    Family("worker_jobs_retried", "counter",
           "Failed attempts whose job is retried later", "retried", _JOB),
    Family("worker_jobs_dead_lettered", "counter",
           "Jobs that failed for good and went to the dead letters", "dead_lettered", _JOB),
    Family("worker_jobs_cancelled", "counter",
           "Attempts stopped by an operator's cancel", "cancelled", _JOB),
    Family("worker_jobs_deferred", "counter",
           "Attempts that raised RateLimited (run again later, uncounted)", "deferred", _JOB),
    Family("worker_jobs_in_flight", "gauge", "Attempts running now", "in_flight", _JOB),
    Family("worker_job_run_seconds", "histogram",
           "Time an attempt ran, from its start to its outcome", "run", _JOB, JOB_BUCKETS),
    Family("worker_job_wait_seconds", "histogram",
           "Time from a job's enqueue to the start of its first attempt", "wait", _JOB,
           JOB_BUCKETS),
)  # fmt: skip
PROCESS_FAMILIES = (
    Family("worker_concurrency", "gauge",
           "Attempts the worker processes may run at once (--concurrency, summed over "
           "processes)", "concurrency"),
    Family("worker_redis_outages", "counter",
           "Outages of Redis met by the worker (each logged once)", "outages"),
    Family("worker_event_loop_lag_seconds", "histogram",
           "Lateness of the event loop's periodic callback", "loop_lag", (), LAG_BUCKETS),
    Family("worker_redis_roundtrip_seconds", "histogram",
           "Round trips on the hot path's connection (enqueue, fetch, ack)", "round_trip", (),
           ROUND_TRIP_BUCKETS),
)  # fmt: skip


FAMILIES = (*JOB_FAMILIES, *PROCESS_FAMILIES)


class Histogram:
    """Counts per bucket (the last: above every bound) and the sum of what was observed.
    Written by one thread at a time; a scrape reads it from another."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def values(self) -> list[float]:
        """The counts, then the sum (a copy: what a snapshot holds)."""
        return [*self.counts, self.total]


class Series:
    """The per-job metrics of one task in one queue. Its in-flight gauge is not kept but
    worked out at scrape time, from the attempts started and those ended."""

    __slots__ = (
        "cancelled",
        "dead_lettered",
        "deferred",
        "failed",
        "labels",
        "lost",
        "released",
        "retried",
        "run",
        "settling",
        "started",
        "succeeded",
        "wait",
    )

    def __init__(self, task: str, queue: str) -> None:
        self.labels = (task, queue)
        self.started = self.succeeded = self.failed = self.retried = 0
        self.dead_lettered = self.cancelled = self.deferred = self.released = 0
        self.settling = 0  # attempts ended whose outcome's count waits for its ack
        self.lost = 0  # failed attempts counted here that ran (started) in a worker now gone
        self.run = Histogram(JOB_BUCKETS)
        self.wait = Histogram(JOB_BUCKETS)

    def ended(self, kind: OutcomeKind | None, seconds: float, settling: bool = False) -> None:
        """An attempt is over: with its outcome, or None when it was released unfinished (a
        forced shutdown: it counts for nothing but its end). ``settling``: what the outcome
        comes to is known once it is stored (``settled``): the ACK turns a retry or a
        deferral into a cancel when an operator's cancel is pending."""
        if kind is _SUCCEEDED:  # the common case first: this runs once per job
            self.succeeded += 1
        elif kind is None:
            self.released += 1
            return
        elif settling:
            self.settling += 1
        else:
            self.count(kind)
        self.run.observe(seconds)

    def settled(self, kind: OutcomeKind) -> None:
        """A settling attempt's outcome is stored: it came to ``kind``."""
        self.count(kind)
        self.settling -= 1

    def count(self, kind: OutcomeKind) -> None:
        """An attempt that did not succeed came to ``kind``."""
        if kind is _FAILED:
            self.failed += 1
            self.retried += 1
        elif kind is _FATAL:
            self.failed += 1
            self.dead_lettered += 1
        elif kind is _CANCELLED:
            self.cancelled += 1
        else:
            self.deferred += 1

    @property
    def in_flight(self) -> int:
        ended = self.succeeded + self.failed + self.cancelled + self.deferred + self.released
        return self.started + self.lost - ended - self.settling


_SUCCEEDED, _FAILED, _FATAL = OutcomeKind.SUCCEEDED, OutcomeKind.FAILED, OutcomeKind.FATAL
_CANCELLED = OutcomeKind.CANCELLED

# Every value of a set of families: family name -> label values -> a counter's or gauge's
# value, or a histogram's counts per bucket followed by its sum.
Snapshot = dict[str, dict[tuple[str, ...], float | list[float]]]
Taker = Callable[[], Snapshot]  # takes a snapshot (at each scrape)


class Meter:
    """One worker process's metrics (see the module's docstring)."""

    def __init__(self, concurrency: int = 0) -> None:
        # queue -> a task's function -> its series: a function hashes by identity, where
        # a Task (a frozen dataclass) would hash every field of its own at every job.
        self._queues: dict[str, dict[object, Series]] = {}
        self._series: list[Series] = []
        self.concurrency = concurrency
        self.outages = 0
        self.loop_lag = Histogram(LAG_BUCKETS)
        self.round_trip = Histogram(ROUND_TRIP_BUCKETS)

    def started(self, task: Task, queue: str, lease: Lease) -> Series:
        """An attempt of ``task`` starts; its series, for ``ended``."""
        tasks = self._queues.get(queue) or self._queue(queue)
        series = tasks.get(task.func) or self._new(tasks, task.func, task.module_path, queue)
        series.started += 1
        if lease.attempt == 1:
            # Redis's clock at the start, the enqueuer's in the id: a skew makes it < 0.
            waited = (lease.attempted_ms or 0) - (lease.enqueued_ms or 0)
            series.wait.observe(waited / 1000 if waited > 0 else 0.0)
        return series

    def rejected(self, queue: str) -> None:
        """A message that could not run was dead-lettered (worker.exceptions.MessageRejected)."""
        series = self._labelled(queue, REJECTED, REJECTED)
        series.started += 1
        series.count(_FATAL)

    def lost(self, queue: str, retried: list[str], dead: list[str]) -> None:
        """Jobs of ``queue`` whose worker died running them, by task path, as this worker's
        recovery found them (protocol/queue.py's ``Requeued``): their attempts failed, and
        those on their last attempt were dead-lettered. A task not registered here is
        counted under UNKNOWN (a path read from Redis must not grow the label set)."""
        for paths, kind in ((retried, _FAILED), (dead, _FATAL)):
            for path in paths:
                task = lookup(path)
                if task is None:
                    series = self._labelled(queue, UNKNOWN, UNKNOWN)
                else:
                    series = self._labelled(queue, task.func, task.module_path)
                series.lost += 1
                series.count(kind)

    def _labelled(self, queue: str, key: object, task: str) -> Series:
        tasks = self._queues.get(queue) or self._queue(queue)
        return tasks.get(key) or self._new(tasks, key, task, queue)

    def _queue(self, queue: str) -> dict[object, Series]:
        tasks = self._queues[queue] = {}
        return tasks

    def _new(self, tasks: dict[object, Series], key: object, task: str, queue: str) -> Series:
        series = tasks[key] = Series(task, queue)
        self._series.append(series)
        return series

    def snapshot(self) -> Snapshot:
        """Every value, by family name and label values: safe to take from another thread
        while the loop records (the list of series is copied at once)."""
        found: Snapshot = {f.name: {} for f in FAMILIES}
        for series in list(self._series):
            for family in JOB_FAMILIES:
                found[family.name][series.labels] = _value(getattr(series, family.attribute))
        for family in PROCESS_FAMILIES:
            found[family.name][()] = _value(getattr(self, family.attribute))
        return found


def _value(value: int | Histogram) -> float | list[float]:
    return value.values() if isinstance(value, Histogram) else float(value)


# The process-wide hooks, rebound by enable() to the process's meter; no-ops otherwise.


def _off(seconds: float) -> None:
    return None


def _no_outage() -> None:
    return None


_loop_lag: Callable[[float], None] = _off
_outage: Callable[[], None] = _no_outage


def observe_loop_lag(seconds: float) -> None:
    """Record one measurement of the event loop's lag (worker_event_loop_lag_seconds)."""
    _loop_lag(seconds)


def count_outage() -> None:
    """An outage of Redis begins (worker_redis_outages_total)."""
    _outage()


def enable(meter: Meter) -> None:
    """Send this process's loop lag, outages and hot-path round trips to ``meter``."""
    global _loop_lag, _outage

    def outage() -> None:
        meter.outages += 1

    _loop_lag = meter.loop_lag.observe
    _outage = outage
    FastRedis.timer = meter.round_trip.observe


def disable() -> None:
    global _loop_lag, _outage
    _loop_lag, _outage = _off, _no_outage
    FastRedis.timer = None
