"""Operations on the queues from Python (and the ops CLI): counts, workers, jobs by state and
workflows to look at; dead letters to send back, jobs and workflows to cancel, queues to
purge, manual enqueues. Synchronous, through the backend's broker (worker/protocol)."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

import orjson
from django.tasks import task_backends
from django.tasks.exceptions import TaskResultDoesNotExist
from django.utils import timezone

from worker.backend import RedisBackend
from worker.exceptions import Cancelled, UnknownTask
from worker.limits import LimitError, Limits, group, parse_rate
from worker.ops import browse, workflows
from worker.ops.browse import JobFilter, Page, Step
from worker.ops.workflows import WorkflowInfo, WorkflowStep
from worker.periodic import Periodic, schedules
from worker.protocol import history
from worker.protocol.backfills import Backfills, BackfillState
from worker.protocol.connection import REDIS_ERRORS, unreachable
from worker.protocol.flow import DECLARED, SET, GroupState, applying
from worker.protocol.history import Point, TaskFigures
from worker.protocol.keys import by_queue
from worker.protocol.queue import COUNTERS, QueueGauges, QueueStats
from worker.protocol.records import class_path, error_json
from worker.results import JobRecord, from_ms
from worker.task import lookup, registered

if TYPE_CHECKING:
    from worker.task import Result

__all__ = [
    "COUNTERS",
    "STATES",
    "UNSET",
    "BackfillState",
    "GroupState",
    "Health",
    "JobFilter",
    "LiveQueue",
    "Ops",
    "Place",
    "Point",
    "QueueStats",
    "Schedule",
    "Snapshot",
    "TaskFigures",
    "WorkerInfo",
    "WorkflowInfo",
    "WorkflowStep",
]

# Where a job can be, as `jobs list --status` names it (a job can also be "cancelled", or
# "waiting": a workflow's step waiting for the steps before it, on no list).
STATES = ("running", "ready", "held", "delayed", "dead", "successful")
CANCELLED = class_path(Cancelled)
CANCEL_REASON = "Cancelled by an operator."
# Ids read per round trip when listing with a task filter or purging.
PAGE = 500
# The sort time of a running job whose hash records no time at all: listed last.
_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerInfo:
    """A live worker, from its heartbeat."""

    id: str
    host: str = "?"
    pid: int = 0
    queues: list[str] = field(default_factory=list)
    weights: dict[str, int] = field(default_factory=dict)  # each queue's share of the slots
    strict: bool = False  # serves its queues strictly in order instead
    concurrency: int = 0
    in_flight: int = 0
    processed: int = 0
    started_at: float = 0.0  # seconds since the epoch
    seen_at: float = 0.0
    loop_lag: float | None = None  # its event loop's worst lag of the last minute (seconds)
    failed: int = 0  # of the processed, attempts that failed
    rss: int | None = None  # its memory (resident set, bytes); None: not measured
    quiet: bool = False  # told to fetch no more (Ops.quiet)


@dataclass(frozen=True, slots=True)
class Place:
    """Where a job is: one of STATES, "cancelled" or "waiting"; when a delayed one is due;
    whether a cancel request waits for it."""

    state: str
    due: datetime | None = None
    cancel_requested: datetime | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """A probe's answer: ``ok`` when Redis answers and each queue has a live worker;
    ``reason`` says why in one line; ``queues`` counts the live workers serving each."""

    ok: bool
    reason: str
    queues: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A periodic schedule as operators see it."""

    periodic: Periodic
    words: str  # its schedule in words
    last_fire: datetime | None  # the latest fire time handled (run, skipped or paused)
    next_fire: datetime | None  # None: paused
    paused_since: datetime | None
    runs: list[tuple[str, JobRecord | None]]  # its latest jobs, newest first (None: gone)


@dataclass(frozen=True, slots=True)
class LiveQueue:
    """A queue's figures of the moment, read in two round trips whatever its size."""

    gauges: QueueGauges
    counters: dict[str, int]
    paused: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every queue and live worker, as the dashboard's live view shows them."""

    at: float  # seconds since the epoch
    queues: dict[str, LiveQueue]
    workers: list[WorkerInfo]


# How long an order to a worker waits to be taken (it takes them every second).
ORDER_TTL = 60.0


class _Unset(Enum):
    UNSET = 0


UNSET = _Unset.UNSET  # an argument left as it is


class Ops:
    """The operations API of one TASKS backend (default: ``"default"``)."""

    def __init__(self, backend: RedisBackend | None = None) -> None:
        # Any other kind of backend has no broker: the next line fails as it should.
        self.backend = backend or cast(RedisBackend, task_backends["default"])
        self.broker = self.backend.broker

    # Looking

    def queues(self) -> list[str]:
        """The backend's queues; with QUEUES empty (any name allowed), those found in Redis."""
        if self.backend.queues:
            return sorted(self.backend.queues)
        return self.broker.queue_names()

    def stats(self, queue: str) -> QueueStats:
        return self.broker.queue(queue).stats()

    def workers(self) -> list[WorkerInfo]:
        """Every worker whose heartbeat is current, by host and pid."""
        return _workers(self.broker.heartbeats())

    async def asnapshot(self, queues: list[str] | None = None) -> Snapshot:
        """The figures of ``queues`` (default: ``queues()``) and the live workers, in 2
        round trips a queue and 2 for the workers, whatever the number of jobs."""
        found = {}
        for name in self.queues() if queues is None else queues:
            queue = self.broker.queue(name)
            counters, paused = await queue.acounters()
            found[name] = LiveQueue(await queue.gauges(), counters, paused)
        workers = _workers(await self.broker.live_heartbeats())
        return Snapshot(time.time(), found, workers)

    def running(self, worker: WorkerInfo | str) -> list[JobRecord]:
        """The jobs a worker is running (its leases, in every queue it serves): a worker of
        ``workers()``, or a live worker's id (its heartbeat is read)."""
        if isinstance(worker, str):
            found = [w for w in self.workers() if w.id == worker]
            if not found:
                return []
            worker = found[0]
        records: list[JobRecord] = []
        for name in worker.queues:
            records += self._records(self.broker.queue(name).leased_by(worker.id))
        return sorted(records, key=lambda r: r.last_attempted_at or r.enqueued_at or _NEVER)

    def server(self) -> dict[str, Any]:
        """Facts about the Redis server: INFO's fields (version, memory, clients, policy)."""
        return self.broker.info()

    def backfills(self) -> list[BackfillState]:
        """Every backfill planned (worker/backfill), its latest run, the one planned first
        first: chunks done of all, rows processed, when planned and finished."""
        return Backfills(self.broker).states()

    def backfill(self, name: str) -> BackfillState | None:
        """One backfill's progress, of its latest run planned; None until a plan job of
        it has run."""
        return Backfills(self.broker).state(name)

    def health(self, queues: list[str] | None = None) -> Health:
        """Whether Redis answers and at least one live worker serves each of ``queues``
        (default: those of ``queues()``); and in any case, that some worker lives."""
        try:
            workers = self.workers()
            chosen = sorted(set(queues)) if queues else self.queues()
        except REDIS_ERRORS as e:
            return Health(False, unreachable(self.broker.url, e))
        serving = {q: sum(q in w.queues for w in workers) for q in chosen}
        if unserved := [q for q, n in serving.items() if n == 0]:
            return Health(False, f"no live worker serves {_queues(unserved)}", serving)
        if not workers:
            return Health(False, "no live worker", serving)
        plural = "s serve" if len(workers) > 1 else " serves"
        served = _queues(chosen) if chosen else "the backend"
        return Health(True, f"{len(workers)} live worker{plural} {served}", serving)

    def job(self, job_id: str) -> JobRecord:
        """A job in any state; TaskResultDoesNotExist if there is none."""
        try:
            queue = self.broker.queue_for(job_id)
        except ValueError:  # not even shaped like a job id
            raise TaskResultDoesNotExist(job_id) from None
        return JobRecord.from_hash(job_id, queue.job(job_id))

    def place(self, record: JobRecord) -> Place:
        marks = self.broker.queue(record.queue).marks(record.id)
        requested = from_ms(marks.cancel_requested)
        if record.status == "RUNNING":
            return Place("running", cancel_requested=requested)
        if record.status == "READY":
            if record.waiting:
                return Place("waiting")
            if marks.held:
                return Place("held")
            if marks.due is None:
                return Place("ready")
            return Place("delayed", due=from_ms(marks.due))
        if record.status == "SUCCESSFUL":
            return Place("successful")
        dead = marks.dead is not None
        if not dead and record.errors and record.errors[-1].exception_class_path == CANCELLED:
            return Place("cancelled")
        return Place("dead" if dead else "failed")

    def jobs(
        self, queue: str, state: str, task: str | None = None, limit: int = 20
    ) -> list[JobRecord]:
        """Up to ``limit`` jobs of ``queue`` in ``state`` (one of STATES), of one task path if
        given: ready and delayed in the order they will run, dead and successful newest
        first, running most recently started first."""
        q = self.broker.queue(queue)
        if state == "running":
            found = [r for r in self._records(q.running_ids()) if _of(r, task)]
            found.sort(key=lambda r: r.last_attempted_at or r.enqueued_at or _NEVER, reverse=True)
            return found[:limit]
        newest_first = state in ("dead", "successful")
        page = limit if task is None else max(limit, PAGE)
        found, start = [], 0
        while len(found) < limit:
            ids = q.ids(state, start, start + page - 1, newest_first=newest_first)
            if not ids:
                break
            found += [r for r in self._records(ids) if _of(r, task)]
            start += page
        return found[:limit]

    def records(self, ids: list[str]) -> list[JobRecord]:
        """The records of ``ids`` (all of one queue) that still exist."""
        return self._records(ids)

    def browse(
        self, chosen: JobFilter, cursor: str | None = None, limit: int = 50, budget: int = 2000
    ) -> Page:
        """A page of the jobs a filter matches (worker/ops/browse.py): at most ``limit``,
        reading at most ``budget`` ids, from ``cursor`` on."""
        return browse.page(self, chosen, cursor, limit, budget)

    def act(self, action: str, job_ids: list[str], reason: str = CANCEL_REASON) -> int:
        """Retry, cancel or delete jobs by id: how many it took effect on."""
        return browse.act(self, action, job_ids, reason)

    def bulk_step(
        self,
        action: str,
        chosen: JobFilter,
        cursor: str | None = None,
        batch: int = 500,
        reason: str = CANCEL_REASON,
    ) -> Step:
        """One batch of an action on every job a filter matches; go on from the cursor
        returned until it is None."""
        return browse.step(self, action, chosen, cursor, batch, reason)

    def _records(self, ids: list[str]) -> list[JobRecord]:
        """The records of ``ids`` (all of one queue) that still exist."""
        if not ids:
            return []
        queue = self.broker.queue_for(ids[0])
        return [JobRecord.from_hash(job_id, fields) for job_id, fields in queue.jobs(ids)]

    def dead(self, queue: str, limit: int = 50, offset: int = 0) -> list[JobRecord]:
        """Dead letters of ``queue``, newest first, each with every attempt's error."""
        ids = self.broker.queue(queue).ids("dead", offset, offset + limit - 1, newest_first=True)
        return self._records(ids)

    def dead_count(self, queue: str) -> int:
        return self.broker.queue(queue).sizes("dead")[0]

    # Steering

    def retry(self, *job_ids: str) -> int:
        """Send dead-lettered jobs back to their queues with a fresh set of attempts (their
        task's max_attempts). Returns how many went back; ids that are not dead are skipped."""
        grouped = by_queue(job_ids)
        return sum(self._send_back(queue, self._records(ids)) for queue, ids in grouped.items())

    def retry_dead(
        self,
        queue: str,
        task: str | None = None,
        batch: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Send back every dead letter of ``queue`` (of one task path, if given), oldest
        first, in batches of ``batch``; ``progress`` gets each batch's size."""
        sent = skipped = 0
        q = self.broker.queue(queue)
        # Letters sent back leave the set; those skipped stay in front, so step over them.
        while ids := q.ids("dead", skipped, skipped + batch - 1):
            records = self._records(ids)
            done = self._send_back(queue, [r for r in records if _of(r, task)])
            sent += done
            skipped += len(ids) - done
            if progress:
                progress(len(ids))
        return sent

    def _send_back(self, queue: str, records: list[JobRecord]) -> int:
        if not records:
            return 0
        allowances = []
        for record in records:
            task = lookup(record.task_path) if record.task_path else None
            allowances.append((record.id, task.max_attempts if task else 1))
        return self.broker.queue(queue).retry(allowances)

    def cancel_quietly(self, job_id: str, reason: str = CANCEL_REASON) -> bool:
        """Cancel a job if it waits or runs: whether it did (a finished or missing job is
        left as it is, without an error)."""
        try:
            return self.cancel(job_id, reason) in ("cancelled", "requested")
        except TaskResultDoesNotExist:
            return False

    def cancel(self, job_id: str, reason: str = CANCEL_REASON) -> str:
        """Cancel a job. Returns "cancelled" for a queued (ready or delayed) job, now FAILED
        with a worker.exceptions.Cancelled error and never to run; "requested" for a running
        one, whose worker is asked to stop it; otherwise the status of the finished job, left
        as it is. TaskResultDoesNotExist if there is no such job."""
        record = self.job(job_id)
        queue = self.broker.queue(record.queue)
        error = error_json(CANCELLED, reason)
        task = lookup(record.task_path) if record.task_path else None
        keep = task.result_ttl if task and task.result_ttl is not None else self.backend.result_ttl
        outcome = queue.cancel(job_id, error, int(keep * 1000))
        if outcome == "missing":  # expired or purged since it was read
            raise TaskResultDoesNotExist(job_id)
        return outcome

    def purge_counts(self, queue: str) -> dict[str, int]:
        """What ``purge`` would remove: jobs per set."""
        names = ("ready", "held", "delayed", "dead")
        return dict(zip(names, self.broker.queue(queue).sizes(*names), strict=True))

    def purge(
        self,
        queue: str,
        dead: bool = False,
        batch: int = PAGE,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Remove every ready, held and delayed job of ``queue`` (and its dead letters, if
        ``dead``) with their data, ``batch`` at a time. Running jobs are left to finish."""
        q = self.broker.queue(queue)
        removed = 0
        for name in ("ready", "held", "delayed", *(("dead",) if dead else ())):
            while n := q.purge(name, batch):
                removed += n
                if progress:
                    progress(n)
        return removed

    def delete(self, *job_ids: str) -> int:
        """Delete jobs for good wherever they wait or lie finished, with their data;
        running ones are left (cancel them). Returns how many went."""
        return sum(self.broker.queue(queue).delete(ids) for queue, ids in by_queue(job_ids).items())

    # Workflows and batches (worker/workflows)

    def workflow(self, workflow_id: str, offset: int = 0, limit: int | None = None) -> WorkflowInfo:
        """A workflow or batch: its status, progress, and its steps (a batch: its
        callbacks) from ``offset``, ``limit`` at most, each with its task and state;
        WorkflowDoesNotExist if there is none."""
        return workflows.read(self, workflow_id, offset, limit)

    def cancel_workflow(self, workflow_id: str) -> str:
        """Cancel a workflow or batch: "cancelled", or the status it had ended with
        (SUCCEEDED, FAILED, CANCELLED); WorkflowDoesNotExist if there is none."""
        return workflows.cancel(self, workflow_id)

    # Pausing queues, ordering workers

    def pause(self, queue: str) -> bool:
        """Pause a queue: workers lease none of its jobs (from their next fetch; at most
        their poll interval, 1 s, for an idle one) until it is resumed; jobs go on being
        enqueued, running ones finish. False if it was paused already."""
        return self.broker.queue(self._known(queue)).pause()

    def resume(self, queue: str) -> bool:
        """Resume a paused queue (its idle workers are woken at once); False if it ran."""
        serving = sum(queue in w.queues for w in self.workers())
        return self.broker.queue(self._known(queue)).resume(serving)

    def paused(self) -> dict[str, datetime]:
        """The paused queues, each with when it was paused."""
        found = {}
        for name in self.queues():
            if (since := self.broker.queue(name).paused_since()) is not None:
                found[name] = datetime.fromtimestamp(since / 1000, UTC)
        return found

    def quiet(self, worker_id: str) -> None:
        """Tell a live worker to fetch no more jobs and finish those it runs (it lives on
        until stopped); it hears within a second. LookupError for no such live worker."""
        self._order(worker_id, "quiet")

    def stop_worker(self, worker_id: str) -> None:
        """Tell a live worker to stop as on SIGTERM (under ``runworker --processes``, the
        supervisor starts another in its place)."""
        self._order(worker_id, "stop")

    def _order(self, worker_id: str, order: str) -> None:
        if worker_id not in {w.id for w in self.workers()}:
            raise LookupError(f"no live worker {worker_id!r}")
        self.broker.give_order(worker_id, order, ORDER_TTL)

    def _known(self, queue: str) -> str:
        if self.backend.queues and queue not in self.backend.queues:
            raise ValueError(f"no queue {queue!r} (queues: {', '.join(self.queues())})")
        return queue

    # Periodic schedules

    def schedules(self, now: datetime | None = None) -> list[Schedule]:
        """Every periodic schedule this project declares, with its state in Redis."""
        now = now or datetime.now(UTC)
        declared = schedules()
        by_queue: dict[str, list[Periodic]] = {}
        for periodic in declared:
            by_queue.setdefault(periodic.task.queue_name, []).append(periodic)
        found: dict[str, Schedule] = {}
        for queue, periodics in by_queue.items():
            q = self.broker.queue(queue)
            states = q.schedules([p.name for p in periodics])
            run_ids = [i for _, _, runs in states for i in runs]
            records = {r.id: r for r in self._records(run_ids)}
            for periodic, (last, paused, runs) in zip(periodics, states, strict=True):
                found[periodic.name] = Schedule(
                    periodic=periodic,
                    words=periodic.schedule.in_words(),
                    last_fire=from_ms(last),
                    next_fire=None if paused else periodic.next_fire(now),
                    paused_since=from_ms(paused),
                    runs=[(i, records.get(i)) for i in runs],
                )
        return [found[p.name] for p in declared]

    def run_schedule(self, name: str) -> Result:
        """Enqueue a schedule's job now, besides its fire times (recorded among its runs)."""
        periodic = self._schedule(name)
        task = periodic.task.using(backend=self.backend.alias)
        result = task.enqueue(*periodic.args, **periodic.kwargs)
        self.broker.queue(periodic.task.queue_name).ran(name, result.id)
        return result

    def pause_schedule(self, name: str) -> bool:
        """Pause a schedule: its fire times pass without a job (not caught up when it is
        resumed). False if it was paused already."""
        periodic = self._schedule(name)
        return self.broker.queue(periodic.task.queue_name).pause_schedule(name)

    def resume_schedule(self, name: str) -> bool:
        """Resume a paused schedule from its next fire time; False if it was not paused."""
        periodic = self._schedule(name)
        return self.broker.queue(periodic.task.queue_name).resume_schedule(name)

    def _schedule(self, name: str) -> Periodic:
        for periodic in schedules():
            if periodic.name == name:
                return periodic
        known = ", ".join(p.name for p in schedules()) or "none"
        raise LookupError(f"no periodic schedule {name!r} (schedules: {known})")

    # What the workers did (written by them: protocol/history.py)

    def history(self, per: str = "minute") -> list[Point]:
        """Attempts ended and failed per minute over the last day (``per`` "minute") or
        per hour over the last 30 days ("hour"), oldest first."""
        if per not in ("minute", "hour"):
            raise ValueError(f"per must be 'minute' or 'hour', not {per!r}")
        return history.points(self.broker, per)

    def task_figures(self, window: str = "hour") -> list[TaskFigures]:
        """Per task over the last ``window`` ("hour" or "day"): attempts, failures, mean
        and p95 run time, mean and p95 wait (enqueue to first start)."""
        if window not in ("hour", "day"):
            raise ValueError(f"window must be 'hour' or 'day', not {window!r}")
        return history.task_figures(self.broker, window)

    # Flow control

    def limits(self, queue: str | None = None, task: str | None = None) -> list[GroupState]:
        """The limit groups of ``queue`` (default: every queue), of one task path if given:
        the limits that apply and where they come from, attempts running, starts in the
        current window, jobs held and when they may start."""
        found = []
        for name in [queue] if queue else self.queues():
            found += [s for s in self.broker.queue(name).flow.states() if task in (None, s.task)]
        return found

    def set_limit(
        self,
        task_path: str,
        *,
        rate: str | _Unset | None = UNSET,
        concurrency: int | _Unset | None = UNSET,
        key: object = UNSET,
        queues: list[str] | None = None,
        reset: bool = False,
    ) -> list[str]:
        """Change a task's limits at run time, for every worker at once: ``rate`` ("100/s";
        "0/s" holds every job), ``concurrency`` (0 holds every job), None for no limit of
        that kind, UNSET to leave it. With ``key``, for that limit key's group only (it
        wins over the task's limits). ``reset`` drops the setting: the task's declared
        limits (or, for a key, the task's) apply again. In ``queues`` (default: every
        queue). Returns the queues where something changed. UnknownTask for a task not
        registered here; LimitError (a ValueError) for a limit that cannot be."""
        task = lookup(task_path)
        if task is None:
            raise UnknownTask(_unknown_task_message(task_path))
        if task.limits is None:
            raise LimitError(
                f"{task_path} has no flow control: give its @task a rate_limit, "
                "concurrency_limit or limit_key, so that its jobs carry a limit group"
            )
        if key is not UNSET and task.limit_key is None:
            raise LimitError(f"{task_path} has no limit_key: its limits are not per key")
        scope = task_path if key is UNSET else group(task_path, key, keyed=True)
        if reset:
            if rate is not UNSET or concurrency is not UNSET:
                raise LimitError("reset drops the setting: give no rate or concurrency with it")
        elif rate is UNSET and concurrency is UNSET:
            raise LimitError("give a rate, a concurrency or reset")
        new_rate = parse_rate(rate) if isinstance(rate, str) else rate
        if isinstance(concurrency, int) and (isinstance(concurrency, bool) or concurrency < 0):
            raise LimitError(f"concurrency must be a whole number >= 0, not {concurrency!r}")
        changed = []
        for name in queues or self.queues():
            flow = self.broker.queue(name).flow
            limits = None
            if not reset:
                settings = flow.settings()
                settings.setdefault(DECLARED + task_path, task.limits)
                current = settings.get(SET + scope) or applying(settings, scope)[0] or Limits()
                limits = Limits(
                    current.rate if new_rate is UNSET else new_rate,
                    current.concurrency if concurrency is UNSET else concurrency,
                )
            if flow.set(scope, limits):
                changed.append(name)
        return changed

    def enqueue(
        self,
        task_path: str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
    ) -> Result:
        """Enqueue a registered task by its module path (never imported: looked up), as a
        manual run; UnknownTask names the close matches."""
        task = lookup(task_path)
        if task is None:
            raise UnknownTask(_unknown_task_message(task_path))
        run_after = timezone.now() + timedelta(seconds=delay) if delay else None
        chosen = task.using(
            queue_name=queue, priority=priority, run_after=run_after, backend=self.backend.alias
        )
        return chosen.enqueue(*args, **kwargs)


def _workers(beats: list[bytes]) -> list[WorkerInfo]:
    known = set(WorkerInfo.__slots__)
    found = []
    for beat in beats:
        info = orjson.loads(beat)
        found.append(WorkerInfo(**{k: v for k, v in info.items() if k in known}))
    return sorted(found, key=lambda w: (w.host, w.pid, w.id))


def _queues(names: list[str]) -> str:
    return f"queue{'s' if len(names) > 1 else ''} {', '.join(names)}"


def _of(record: JobRecord, task: str | None) -> bool:
    return task is None or record.task_path == task


def _unknown_task_message(path: str) -> str:
    names = sorted(registered())
    tail = path.rpartition(".")[2]
    close = [n for n in names if n.rpartition(".")[2] == tail]
    close += [n for n in difflib.get_close_matches(path, names, n=3, cutoff=0.6) if n not in close]
    hint = f"; did you mean {', '.join(close)}?" if close else ", nor one with a similar name"
    return f"no task {path!r} is registered in this project{hint}"
