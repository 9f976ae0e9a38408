"""Operations on the queues from Python (and the ops CLI): counts, workers and jobs by state
to look at; dead letters to send back, jobs to cancel, queues to purge, manual enqueues.
Synchronous, on the backend's sync client."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.tasks import TaskResult, task_backends
from django.tasks.exceptions import TaskResultDoesNotExist
from django.utils import timezone

from worker import scripts
from worker.backend import RedisBackend
from worker.broker import error_json, now_ms
from worker.exceptions import Cancelled, UnknownTask
from worker.results import JobRecord, from_ms
from worker.task import lookup, registered

# Where a job can be, as `jobs list --status` names it (a job can also be "cancelled").
STATES = ("running", "ready", "delayed", "dead", "successful")
# A queue's outcome counters (its `stats` hash), each since the queue began.
COUNTERS = ("succeeded", "retried", "failed", "lost", "cancelled")
CANCELLED = f"{Cancelled.__module__}.{Cancelled.__qualname__}"
# Delayed jobs are split into scheduled and retrying by reading each one's attempts; a
# queue with more than this many delayed jobs is not split (status stays one round trip).
SPLIT_LIMIT = 1000
# Ids read per round trip when listing with a task filter or purging.
PAGE = 500

# Cancel a queued job: only the caller whose ZREM took it from ready/delayed marks it, so a
# worker's fetch and a cancel never both win. A running job gets a cancel request instead.
# KEYS: job, ready, delayed, cancel, stats   ARGV: id, now_ms, error_json, result_ttl_ms
# Returns 'cancelled', 'requested', 'missing' or the status of a job that is neither.
CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if redis.call('ZREM', KEYS[2], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1]) > 0 then
  local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
  redis.call('HSET', KEYS[1], 'status', 'FAILED', 'finished_at', ARGV[2],
             'error:' .. (attempts + 1), ARGV[3])
  if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
  redis.call('HINCRBY', KEYS[5], 'cancelled', 1)
  return 'cancelled'
end
if status == 'RUNNING' then
  redis.call('ZADD', KEYS[4], 'NX', ARGV[2], ARGV[1])
  return 'requested'
end
return status
"""

# Remove up to ARGV[2] jobs from one of a queue's sorted sets, their hashes with them.
# KEYS: the set   ARGV: job_key_prefix, count   Returns how many were removed.
PURGE = """
local popped = redis.call('ZPOPMIN', KEYS[1], tonumber(ARGV[2]))
for i = 1, #popped, 2 do redis.call('DEL', ARGV[1] .. popped[i]) end
return #popped / 2
"""


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    ready: int
    running: int
    delayed: int
    retrying: int | None  # of the delayed, those waiting to retry; None: too many to count
    dead: int
    counters: dict[str, int]  # COUNTERS, and any other the engine keeps


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerInfo:
    """A live worker, from its heartbeat."""

    id: str
    host: str = "?"
    pid: int = 0
    queues: list[str] = field(default_factory=list)
    concurrency: int = 0
    in_flight: int = 0
    processed: int = 0
    started_at: float = 0.0  # seconds since the epoch
    seen_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Place:
    """Where a job is: one of STATES or "cancelled"; when a delayed one is due; whether a
    cancel request waits for it."""

    state: str
    due: datetime | None = None
    cancel_requested: datetime | None = None


class Ops:
    def __init__(self, backend: RedisBackend | None = None) -> None:
        self.backend = backend or task_backends["default"]
        self.client = self.backend.client()
        self.keys = self.backend.keys
        self._retry = self.client.register_script(scripts.RETRY)
        self._cancel = self.client.register_script(CANCEL)
        self._purge = self.client.register_script(PURGE)

    # Looking

    def queues(self) -> list[str]:
        """The backend's queues; with QUEUES empty (any name allowed), those found in Redis."""
        if self.backend.queues:
            return sorted(self.backend.queues)
        found = set()
        for key in self.client.scan_iter(match=self.keys.glob("{*}:*"), count=1000):
            queue, _, rest = key.decode()[len(self.keys.prefix) + 2 :].partition("}:")
            if ":" not in rest:  # a queue's own key, not a job's
                found.add(queue)
        return sorted(found)

    def stats(self, queue: str) -> QueueStats:
        k = self.keys
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zcard(k.ready(queue)).zcard(k.delayed(queue)).zcard(k.dead(queue))
            pipe.smembers(k.workers(queue)).hgetall(k.stats(queue))
            ready, delayed, dead, workers, counters = pipe.execute()
        with self.client.pipeline(transaction=False) as pipe:
            for worker_id in workers:
                pipe.scard(k.wip(queue, worker_id.decode()))
            if delayed <= SPLIT_LIMIT:
                pipe.zrange(k.delayed(queue), 0, -1)
            replies = pipe.execute()
        running = sum(replies[: len(workers)])
        retrying = None
        if delayed <= SPLIT_LIMIT:
            with self.client.pipeline(transaction=False) as pipe:
                for job_id in replies[-1]:
                    pipe.hget(k.job(job_id.decode()), "attempts")
                retrying = sum(1 for n in pipe.execute() if n and int(n) > 0)
        return QueueStats(
            queue=queue,
            ready=ready,
            running=running,
            delayed=delayed,
            retrying=retrying,
            dead=dead,
            counters=dict.fromkeys(COUNTERS, 0)
            | {name.decode(): int(n) for name, n in counters.items()},
        )

    def workers(self) -> list[WorkerInfo]:
        """Every worker whose heartbeat is current, by host and pid."""
        keys = list(self.client.scan_iter(match=self.keys.glob("worker:*"), count=1000))
        beats = self.client.mget(keys) if keys else []
        known = set(WorkerInfo.__slots__)
        found = []
        for beat in beats:
            if beat is not None:  # expired since the scan
                info = orjson.loads(beat)
                found.append(WorkerInfo(**{k: v for k, v in info.items() if k in known}))
        return sorted(found, key=lambda w: (w.host, w.pid, w.id))

    def job(self, job_id: str) -> JobRecord:
        """A job in any state; TaskResultDoesNotExist if there is none."""
        try:
            key = self.keys.job(job_id)
        except ValueError:  # not even shaped like a job id
            raise TaskResultDoesNotExist(job_id) from None
        return JobRecord.from_hash(job_id, self.client.hgetall(key))

    def place(self, record: JobRecord) -> Place:
        k, q, job_id = self.keys, record.queue, record.id
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zscore(k.delayed(q), job_id).zscore(k.dead(q), job_id)
            pipe.zscore(k.cancel(q), job_id)
            due, dead, cancel = pipe.execute()
        requested = from_ms(int(cancel)) if cancel is not None else None
        if record.status == "RUNNING":
            return Place("running", cancel_requested=requested)
        if record.status == "READY":
            return Place("ready") if due is None else Place("delayed", due=from_ms(int(due)))
        if record.status == "SUCCESSFUL":
            return Place("successful")
        if dead is None and record.errors and record.errors[-1].exception_class_path == CANCELLED:
            return Place("cancelled")
        return Place("dead" if dead is not None else "failed")

    def jobs(
        self, queue: str, state: str, task: str | None = None, limit: int = 20
    ) -> list[JobRecord]:
        """Up to ``limit`` jobs of ``queue`` in ``state`` (one of STATES), of one task path if
        given: ready and delayed in the order they will run, dead and successful newest
        first, running most recently started first."""
        if state == "running":
            found = [r for r in self._records(self._running_ids(queue)) if _of(r, task)]
            found.sort(key=lambda r: r.last_attempted_at or r.enqueued_at, reverse=True)
            return found[:limit]
        key, newest_first = {
            "ready": (self.keys.ready(queue), False),
            "delayed": (self.keys.delayed(queue), False),
            "dead": (self.keys.dead(queue), True),
            "successful": (self.keys.done(queue), True),
        }[state]
        page = limit if task is None else max(limit, PAGE)
        found, start = [], 0
        while len(found) < limit:
            ids = self.client.zrange(key, start, start + page - 1, desc=newest_first)
            if not ids:
                break
            found += [r for r in self._records(ids) if _of(r, task)]
            start += page
        return found[:limit]

    def _running_ids(self, queue: str) -> list[bytes]:
        workers = self.client.smembers(self.keys.workers(queue))
        with self.client.pipeline(transaction=False) as pipe:
            for worker_id in workers:
                pipe.smembers(self.keys.wip(queue, worker_id.decode()))
            return sorted(set().union(*pipe.execute()))

    def _records(self, ids: list[bytes]) -> list[JobRecord]:
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id.decode()))
            hashes = pipe.execute()
        return [
            JobRecord.from_hash(job_id.decode(), fields)
            for job_id, fields in zip(ids, hashes, strict=True)
            if fields
        ]

    def dead(self, queue: str, limit: int = 50, offset: int = 0) -> list[JobRecord]:
        """Dead letters of ``queue``, newest first, each with every attempt's error."""
        ids = self.client.zrevrange(self.keys.dead(queue), offset, offset + limit - 1)
        return self._records(ids)

    def dead_count(self, queue: str) -> int:
        return self.client.zcard(self.keys.dead(queue))

    # Steering

    def retry(self, *job_ids: str) -> int:
        """Send dead-lettered jobs back to their queues with a fresh set of attempts (their
        task's max_attempts). Returns how many went back; ids that are not dead are skipped."""
        by_queue: dict[str, list[str]] = {}
        for job_id in job_ids:
            by_queue.setdefault(job_id.partition(":")[0], []).append(job_id)
        sent = 0
        for queue, ids in by_queue.items():
            sent += self._send_back(queue, self._records([i.encode() for i in ids]))
        return sent

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
        # Letters sent back leave the set; those skipped stay in front, so step over them.
        while ids := self.client.zrange(self.keys.dead(queue), skipped, skipped + batch - 1):
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
        args: list[object] = [self.keys.job_prefix(queue)]
        for record in records:
            task = lookup(record.task_path) if record.task_path else None
            args += (record.id, task.max_attempts if task else 1)
        k = self.keys
        keys = [k.dead(queue), k.ready(queue), k.notify(queue), k.cancel(queue)]
        return int(self._retry(keys, args))

    def cancel(self, job_id: str, reason: str = "Cancelled by an operator.") -> str:
        """Cancel a job. Returns "cancelled" for a queued (ready or delayed) job, now FAILED
        with a worker.exceptions.Cancelled error and never to run; "requested" for a running
        one, whose worker is asked to stop it; otherwise the status of the finished job, left
        as it is. TaskResultDoesNotExist if there is no such job."""
        record = self.job(job_id)
        q, k = record.queue, self.keys
        error = error_json(CANCELLED, reason)
        keys = [k.job(job_id), k.ready(q), k.delayed(q), k.cancel(q), k.stats(q)]
        argv = [job_id, now_ms(), error, int(self.backend.result_ttl * 1000)]
        outcome = self._cancel(keys, argv).decode()
        if outcome == "missing":  # expired or purged since it was read
            raise TaskResultDoesNotExist(job_id)
        return outcome

    def purge_counts(self, queue: str) -> dict[str, int]:
        """What ``purge`` would remove: jobs per set."""
        with self.client.pipeline(transaction=False) as pipe:
            for name in ("ready", "delayed", "dead"):
                pipe.zcard(getattr(self.keys, name)(queue))
            return dict(zip(("ready", "delayed", "dead"), pipe.execute(), strict=True))

    def purge(
        self,
        queue: str,
        dead: bool = False,
        batch: int = PAGE,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Remove every ready and delayed job of ``queue`` (and its dead letters, if ``dead``)
        with their data, ``batch`` at a time. Running jobs are left to finish."""
        sets = [self.keys.ready(queue), self.keys.delayed(queue)]
        if dead:
            sets.append(self.keys.dead(queue))
        removed = 0
        for key in sets:
            while n := int(self._purge([key], [self.keys.job_prefix(queue), batch])):
                removed += n
                if progress:
                    progress(n)
        return removed

    def enqueue(
        self,
        task_path: str,
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
    ) -> TaskResult:
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


def _of(record: JobRecord, task: str | None) -> bool:
    return task is None or record.task_path == task


def _unknown_task_message(path: str) -> str:
    names = sorted(registered())
    tail = path.rpartition(".")[2]
    close = [n for n in names if n.rpartition(".")[2] == tail]
    close += [n for n in difflib.get_close_matches(path, names, n=3, cutoff=0.6) if n not in close]
    hint = f"; did you mean {', '.join(close)}?" if close else ", nor one with a similar name"
    return f"no task {path!r} is registered in this project{hint}"
