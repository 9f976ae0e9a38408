"""One queue's side of the protocol: every command the engine sends about one queue's jobs,
from the enqueue of a job to its ack, and what operators read and change (docs/protocol.md).

The hot path (enqueue, fetch, ack) goes over the event loop's fast connection; blocking
waits, recovery and the sync callers (``enqueue`` in sync code, the ops API) over redis-py.
Methods named like Django's (``enqueue`` / ``aenqueue``) come in a sync and an async form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from redis.exceptions import NoScriptError

from worker.protocol.enqueue import CHUNK, enqueue_arguments, enqueue_many_arguments
from worker.protocol.flow import Flow
from worker.protocol.keys import Keys, enqueued_ms_of
from worker.protocol.records import Lease, NewJob, Outcome, now_ms
from worker.protocol.scripts import (
    ACK,
    AFTER,
    CANCEL,
    DELETE,
    ENQUEUE,
    ENQUEUE_MANY,
    FETCH,
    FIRE,
    GAUGES,
    HAND_OFF,
    PURGE,
    READ,
    REPORT,
    REQUEUE,
    RETRY,
    UNIQUE,
)

if TYPE_CHECKING:
    from worker.protocol.broker import Broker
    from worker.protocol.fastredis import FastRedis

# How many of the latest successful (and cancelled) job ids a queue remembers (for listing
# them).
HISTORY = 10_000
# How many of each periodic schedule's latest job ids are kept.
RUNS_KEPT = 10
# Delayed jobs are split into scheduled and retrying by reading each one's attempts; a
# queue with more than this many delayed jobs is not split (stats stay one round trip).
SPLIT_LIMIT = 1000
# How long the wake-up tokens of a resume wait for the workers that were waiting while the
# queue was paused (ms): one not taken lapses rather than wake a worker at the next pause.
RESUMED_TTL_MS = 10_000
# A queue's outcome counters (its `stats` hash), each since the queue began.
# deferred: attempts that raised RateLimited (not counted against max_attempts).
COUNTERS = ("succeeded", "retried", "failed", "lost", "cancelled", "deferred")
# Where a job id can wait, by the name operators use: the ready lists, the lists of jobs a
# limit holds, the sorted sets of delayed jobs and dead letters, the lists of the latest
# successes and cancellations.
SETS = ("ready", "held", "delayed", "dead", "successful", "cancelled")

# The SETS that are lists kept newest first (the others: lists in the order jobs will run,
# sorted sets by time).
_NEWEST_FIRST = ("successful", "cancelled")

Fields = dict[bytes, bytes]  # a job hash as Redis returns it


@dataclass(frozen=True, slots=True)
class QueueStats:
    queue: str
    ready: int
    held: int  # of the queued, those a rate or concurrency limit holds (flow control)
    running: int
    delayed: int
    retrying: int | None  # of the delayed, those waiting to retry; None: too many to count
    dead: int
    counters: dict[str, int]  # COUNTERS, and any other the engine keeps


@dataclass(frozen=True, slots=True)
class QueueGauges:
    """A queue as the metrics view shows it, read in one call whatever the number of jobs."""

    ready: int
    delayed: int
    retrying: int | None  # of the delayed, those waiting to retry; None: too many to count
    dead: int
    running: int
    oldest_ready_ms: int | None  # how long the longest-waiting ready job has; None: none


class Fetched(NamedTuple):
    """What a FETCH leased, and what it saw of the rest of the queue."""

    leases: list[Lease]
    due_in_ms: int | None  # until the next delayed job is due, on Redis's clock
    held_back: int  # ready jobs left in place for the byte budget
    paused: bool = False  # the queue is paused: nothing was looked at


class Requeued(NamedTuple):
    """What a REQUEUE put back and dead-lettered; of a lost worker's jobs (mode "lost"),
    the task path of each, as its message names it ("" for one that does not)."""

    back: int
    dead: int
    tasks_back: list[str]
    tasks_dead: list[str]


@dataclass(frozen=True, slots=True)
class KeptResults:
    """What a queue's kept results cost, judged from its latest successes."""

    per_second: float  # jobs that succeeded and were kept, lately
    bytes_each: float  # Redis memory per kept job (MEMORY USAGE of a sample)
    seconds_kept: float  # how long each is kept (its age plus the time it has left)

    @property
    def bytes_kept(self) -> float:
        """What the results take once the rate has held for as long as they are kept."""
        return self.per_second * self.seconds_kept * self.bytes_each


@dataclass(frozen=True, slots=True)
class Marks:
    """Where a job's id stands besides its hash: when a delayed one is due, when it was
    dead-lettered, when an operator asked to cancel it (epoch ms, or None); whether a
    limit holds it."""

    due: int | None
    dead: int | None
    cancel_requested: int | None
    held: bool = False


class Queue:
    """The Redis I/O of one queue (SAQ's model: one object owns a queue's commands)."""

    def __init__(self, broker: Broker, name: str) -> None:
        self.broker = broker
        self.name = name
        k: Keys = broker.keys
        self.keys = k
        self.job_prefix = k.job_prefix(name)
        self.ready, self.delayed, self.dead = k.ready(name), k.delayed(name), k.dead(name)
        self.priorities = k.priorities(name)
        self.notify, self.stats_key, self.done = k.notify(name), k.stats(name), k.done(name)
        self.workers, self.cancels = k.workers(name), k.cancel(name)
        self.limits, self.running, self.gates = k.limits(name), k.running(name), k.gates(name)
        self.paused, self.resumed = k.paused(name), k.resumed(name)
        self.cancelled = k.cancelled(name)
        self.flow = Flow(self)  # its flow-control commands (protocol/flow.py)
        # What the previous protocol (0.1) left: jobs FETCH takes over, leases REQUEUE
        # puts back (docs/protocol.md, "Upgrading").
        self.legacy_ready, self.legacy_delayed = k.legacy(name, "ready"), k.legacy(name, "delayed")

    def job_key(self, job_id: str) -> str:
        return self.job_prefix + job_id.partition(":")[2]

    # Enqueue: sync for sync callers, async over the loop's batcher.

    def enqueue(self, job: NewJob) -> str | None:
        """Store ``job``; for a unique job already enqueued, the first job's id instead."""
        return _id(ENQUEUE.run_sync(self.broker.sync, *enqueue_arguments(self.keys, job)))

    async def aenqueue(self, job: NewJob) -> str | None:
        if job.unique is None:
            await self.broker.loop().batcher.send(job)
            return None
        fast = self.broker.loop().fast
        return _id(await fast.run(ENQUEUE, *enqueue_arguments(self.keys, job)))

    def stored_twin(self, job: NewJob) -> str | None:
        """For a unique job, the id of the same call's job stored already, if any."""
        return _id(UNIQUE.run_sync(self.broker.sync, *self._unique_arguments(job)))

    async def astored_twin(self, job: NewJob) -> str | None:
        return _id(await self.broker.loop().fast.run(UNIQUE, *self._unique_arguments(job)))

    def _unique_arguments(self, job: NewJob) -> tuple[list[str], list[str]]:
        assert job.unique is not None, "only a unique job has a twin"
        return [self.keys.unique(self.name, job.unique[0])], [self.job_prefix]

    def enqueue_many(self, jobs: list[NewJob], stored: Callable[[int], None]) -> None:
        """Store jobs of this queue, CHUNK per script call; after each call, ``stored`` is
        told how many of the jobs (from the first) Redis has confirmed."""
        for start in range(0, len(jobs), CHUNK):
            chunk = jobs[start : start + CHUNK]
            ENQUEUE_MANY.run_sync(
                self.broker.sync, *enqueue_many_arguments(self.keys, self.name, chunk)
            )
            stored(start + len(chunk))

    async def aenqueue_many(self, jobs: list[NewJob]) -> None:
        """Store jobs of this queue in one script call (a slice of a bulk enqueue)."""
        await self.broker.loop().batcher.store(jobs)

    async def fire(self, job: NewJob, schedule: str, fire_ms: int, mode: str) -> int:
        """Enqueue a periodic job for one fire time, once however many schedulers ask; the
        FIRE script's answer (0 handled already, 1 missed, 2 enqueued, 3 a new schedule's
        first, late, fire time, 4 a fire time still ahead on Redis's clock, 5 paused)."""
        keys, argv = enqueue_arguments(self.keys, job._replace(unique=None))
        keys += [self.keys.periodic(self.name), self.keys.periodic_paused(self.name)]
        keys.append(self.keys.periodic_runs(self.name, schedule))
        argv += [schedule, fire_ms, mode, RUNS_KEPT]
        return int(await self.broker.loop().fast.run(FIRE, keys, argv))

    # The worker's side: leases and outcomes.

    async def fetch(
        self, count: int, worker_id: str, byte_budget: int = 2**62, idle: bool = True
    ) -> Fetched:
        """Lease up to ``count`` ready jobs whose payloads come to at most ``byte_budget``
        bytes (for an ``idle`` worker, the first whatever its size)."""
        keys, argv = self._fetch_command(count, worker_id, byte_budget, idle)
        return self._fetched(await self.broker.loop().fast.run(FETCH, keys, argv))

    async def wait_then_fetch(
        self,
        connection: FastRedis,
        seconds: float,
        count: int,
        worker_id: str,
        byte_budget: int,
        idle: bool,
        paused: bool = False,
    ) -> Fetched | None:
        """Block on this queue's wake-up list for up to ``seconds``, then fetch (as
        ``fetch``) the moment it returns: the FETCH goes out with the BLPOP, so Redis runs
        it without waiting for the worker to hear of the token and ask (one round trip, not
        two, between an enqueue and the start of its job). It runs whether a token came or
        the time ran out, and what it leased is the caller's either way. None when Redis
        had lost the FETCH script (flushed since this connection loaded it): it is loaded
        again; fetch again. A worker that knows the queue ``paused`` blocks on the list a
        resume wakes instead: the enqueues' tokens would wake it for nothing. ``connection``
        is blocked meanwhile: one of the caller's own, not the loop's shared one."""
        keys, argv = self._fetch_command(count, worker_id, byte_budget, idle)
        try:
            _, reply = await connection.pipeline(
                ("BLPOP", self.resumed if paused else self.notify, seconds),
                ("EVALSHA", FETCH.sha, len(keys), *keys, *argv),
                script=FETCH,
            )
        except NoScriptError:  # flushed since this connection loaded it
            await connection.execute("SCRIPT", "LOAD", FETCH.source)
            return None
        return self._fetched(reply)

    def _fetch_command(
        self, count: int, worker_id: str, byte_budget: int, idle: bool
    ) -> tuple[list[str], list[Any]]:
        keys = [self.ready, self.priorities, self.delayed, self.keys.wip(self.name, worker_id)]
        keys += [self.workers, self.notify, self.legacy_ready, self.legacy_delayed]
        keys += [self.limits, self.running, self.gates, self.paused]
        return keys, [count, worker_id, self.job_prefix, byte_budget, int(idle)]

    @staticmethod
    def _fetched(reply: list[Any]) -> Fetched:
        rows, due_in, now, held_back, paused = reply
        leases = []
        for row in rows:
            job_id = row[0].decode()
            if row[1] is None:
                leases.append(Lease(job_id, None))
                continue
            enqueued = enqueued_ms_of(job_id)
            started = enqueued + int(row[4]) if row[4] is not None else now
            wids = tuple(row[3].decode().split(","))
            # Positional: a job's Lease is made on the hot path, keywords cost a third more.
            leases.append(
                Lease(job_id, row[1], int(row[2]), int(row[5] or 1), wids, enqueued, started, now)
            )
        due_in_ms = int(due_in) if due_in is not None else None
        return Fetched(leases, due_in_ms, int(held_back), bool(paused))

    async def ack(
        self, worker_id: str, outcomes: list[Outcome], result_ttl_ms: int, cancelled: bytes = b""
    ) -> list[str]:
        """Store outcomes and drop their leases, all in one atomic call; a success or a
        cancel is kept for its ``keep_ms``, else ``result_ttl_ms`` (0: not kept). A
        retryable error of a job an operator asked to cancel ends it instead,
        ``cancelled`` (an error's JSON) recorded after the attempt's: returns the ids of
        the jobs so ended."""
        args: list[Any] = [self.job_prefix, HISTORY, cancelled, worker_id]
        for o in outcomes:
            keep = result_ttl_ms if o.keep_ms is None else o.keep_ms
            args += (o.job_id, o.kind, o.value, o.retry_delay_ms, o.attempt, keep)
        keys = [self.keys.wip(self.name, worker_id), self.ready, self.priorities, self.delayed]
        keys += [self.dead, self.stats_key, self.done, self.cancels, self.notify]
        keys += [self.running, self.gates]
        stopped = await self.broker.loop().fast.run(ACK, keys, args)
        return [i.decode() for i in stopped]

    async def report(self, reports: list[tuple[str, bytes, bytes]]) -> None:
        """Store what running jobs reported: (id, progress JSON, metadata JSON), b"" for
        what did not change (lua/report.lua)."""
        args: list[Any] = [self.job_prefix]
        for report in reports:
            args += report
        await self.broker.loop().fast.run(REPORT, [self.keys.waited(self.name)], args)

    async def metadata(self, job_id: str) -> bytes | None:
        """The metadata a job's earlier attempts stored, as JSON."""
        found = await self.broker.aclient().hget(self.keys.job(job_id), "d")
        return cast("bytes | None", found)

    async def requeue(
        self, worker_id: str, mode: str, error: bytes = b"", ids: list[str] | None = None
    ) -> Requeued:
        """Put a worker's leased jobs back (only ``ids``, if given): ``mode`` is "lost" (it
        died) or "released" (not run: shutting down, or never started)."""
        keys = [self.keys.wip(self.name, worker_id), self.ready, self.priorities, self.dead]
        keys += [self.workers, self.notify, self.stats_key, self._legacy_wip(worker_id)]
        keys += [self.running, self.gates]
        argv = [self.job_prefix, worker_id, mode, error, *(ids or ())]
        back, dead, tasks_back, tasks_dead = await self.broker.loop().fast.run(REQUEUE, keys, argv)
        return Requeued(int(back), int(dead), _text(tasks_back), _text(tasks_dead))

    async def hand_off(self) -> None:
        """Leave a wake-up token for an idle worker (one at most waits in the list)."""
        await self.broker.loop().fast.run(HAND_OFF, [self.notify], [])

    def _legacy_wip(self, worker_id: str) -> str:
        return self.keys.legacy(self.name, f"wip:{worker_id}")

    async def leased(self, worker_id: str) -> set[str]:
        """The ids ``worker_id`` holds leases on in this queue."""
        found = await self.broker.aclient().hkeys(self.keys.wip(self.name, worker_id))
        return set(_text(cast("list[bytes]", found)))

    def leased_by(self, worker_id: str) -> list[str]:
        """The ids ``worker_id`` holds leases on in this queue (for operators)."""
        found = self.broker.sync.hkeys(self.keys.wip(self.name, worker_id))
        return sorted(_text(cast("list[bytes]", found)))

    async def cancel_requests(self) -> list[str]:
        """Ids of running jobs an operator asked to cancel."""
        found = await self.broker.aclient().zrange(self.cancels, 0, -1)
        return _text(cast("list[bytes]", found))

    async def dead_workers(self) -> list[str]:
        """Workers holding leases here whose heartbeat has expired."""
        client = self.broker.aclient()
        ids = _text(await client.smembers(self.workers))
        if not ids:
            return []
        async with client.pipeline(transaction=False) as pipe:
            for wid in ids:
                pipe.exists(self.keys.heartbeat(wid))
            alive = await pipe.execute()
        return [wid for wid, up in zip(ids, alive, strict=True) if not up]

    # One job's hash, and many: what the hash holds, and while the job runs what its lease
    # says (FETCH writes a job's state when its attempt ends, not when it begins).

    def job(self, job_id: str) -> Fields:
        reply = READ.run_sync(self.broker.sync, *self._read_command([job_id]))
        [(_, fields)] = self._read(reply, [job_id])
        return fields

    async def ajob(self, job_id: str) -> Fields:
        reply = await self.broker.loop().fast.run(READ, *self._read_command([job_id]))
        [(_, fields)] = self._read(reply, [job_id])
        return fields

    def jobs(self, ids: list[str]) -> list[tuple[str, Fields]]:
        """The hashes of ``ids`` in one round trip, leaving out those that are gone."""
        if not ids:
            return []
        reply = READ.run_sync(self.broker.sync, *self._read_command(ids))
        return [(i, fields) for i, fields in self._read(reply, ids) if fields]

    def _read_command(self, ids: list[str]) -> tuple[list[str], list[str]]:
        return [self.workers], [self.job_prefix, self.keys.wip(self.name, ""), *ids]

    @staticmethod
    def _read(reply: list[Any], ids: list[str]) -> list[tuple[str, Fields]]:
        found = []
        for job_id, (flat, worker, lease) in zip(ids, reply, strict=True):
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
            if lease is not None and fields:
                fields = _with_lease(job_id, fields, worker.decode(), lease)
            found.append((job_id, fields))
        return found

    # What operators read.

    def stats(self) -> QueueStats:
        client = self.broker.sync
        lists = self._ready_lists()
        with client.pipeline(transaction=False) as pipe:
            for key in lists:
                pipe.llen(key)
            for key in (self.legacy_ready, self.delayed, self.legacy_delayed, self.dead):
                pipe.zcard(key)
            pipe.smembers(self.workers)
            pipe.hgetall(self.stats_key)
            replies = pipe.execute()
        *lengths, legacy_ready, delayed, legacy_delayed, dead, workers, counters = replies
        delayed += legacy_delayed
        held_lists = self._lists("held")
        with client.pipeline(transaction=False) as pipe:
            for worker_id in workers:
                pipe.hlen(self.keys.wip(self.name, worker_id.decode()))
            for key in held_lists:
                pipe.llen(key)
            if delayed <= SPLIT_LIMIT:
                pipe.zrange(self.delayed, 0, -1)
            replies = pipe.execute()
        running = sum(replies[: len(workers)])
        held = sum(replies[len(workers) : len(workers) + len(held_lists)])
        retrying = None
        if delayed <= SPLIT_LIMIT:
            with client.pipeline(transaction=False) as pipe:
                for job_id in replies[-1]:
                    pipe.hget(self.job_key(job_id.decode()), "a")
                retrying = sum(1 for n in pipe.execute() if n and int(n) > 0)
        return QueueStats(
            queue=self.name,
            ready=sum(lengths) + legacy_ready,
            held=held,
            running=running,
            delayed=delayed,
            retrying=retrying,
            dead=dead,
            counters=dict.fromkeys(COUNTERS, 0)
            | {name.decode(): int(n) for name, n in counters.items()},
        )

    async def gauges(self) -> QueueGauges:
        """What ``stats`` counts but held jobs, in one script call (lua/gauges.lua): the
        retrying are counted with SPLIT_LIMIT delayed jobs at most, as there. The age of the
        oldest ready job is that of the heads of the ready lists (the next to run)."""
        keys = [self.ready, self.priorities, self.delayed, self.dead, self.workers]
        keys += [self.legacy_ready, self.legacy_delayed]
        argv = [self.job_prefix, self.keys.wip(self.name, ""), SPLIT_LIMIT]
        reply = await self.broker.loop().fast.run(GAUGES, keys, argv)
        ready, delayed, retrying, dead, running, oldest = reply
        return QueueGauges(ready, delayed, retrying, dead, running, oldest)

    def kept_results(self, latest: int = 1000, sample: int = 20) -> KeptResults | None:
        """The rate and cost of this queue's kept results, from its ``latest`` successes
        (None with fewer than 100 of them, or all in one second: too few to judge)."""
        client = self.broker.sync
        found = _text(cast("list[bytes]", client.lrange(self.done, 0, latest - 1)))
        if len(found) < 100:
            return None
        now = float(client.time()[0]) * 1000
        looked = [*found[:sample], found[-1]]  # the newest, and the oldest for the rate
        with client.pipeline(transaction=False) as pipe:
            for job_id in looked:
                pipe.hget(self.job_key(job_id), "f")
                pipe.memory_usage(self.job_key(job_id), samples=0)
                pipe.pttl(self.job_key(job_id))
            replies = pipe.execute()
        rows = [  # (when it finished, ms; its bytes; ms it has left), or None: gone
            (enqueued_ms_of(job_id) + int(since), size, left) if since and left > 0 else None
            for job_id, since, size, left in zip(
                looked, replies[::3], replies[1::3], replies[2::3], strict=True
            )
        ]
        newest, oldest, kept = rows[0], rows[-1], [row for row in rows[:-1] if row]
        if newest is None or oldest is None or newest[0] - oldest[0] < 1000:
            return None
        return KeptResults(
            per_second=(len(found) - 1) / ((newest[0] - oldest[0]) / 1000),
            bytes_each=sum(size for _, size, _ in kept) / len(kept),
            seconds_kept=sum(now - at + left for at, _, left in kept) / len(kept) / 1000,
        )

    def sizes(self, *sets: str) -> list[int]:
        """How many ids each of ``sets`` (names from SETS) holds."""
        lists = {name: self._lists(name) for name in sets if name in ("ready", "held")}
        with self.broker.sync.pipeline(transaction=False) as pipe:
            for name in sets:
                if name in lists:
                    for key in lists[name]:
                        pipe.llen(key)
                elif name in _NEWEST_FIRST:
                    pipe.llen(self._set(name))
                else:
                    pipe.zcard(self._set(name))
            replies = pipe.execute()
        found, at = [], 0
        for name in sets:
            width = len(lists[name]) if name in lists else 1
            found.append(sum(replies[at : at + width]))
            at += width
        return found

    def ids(self, name: str, start: int, stop: int, newest_first: bool = False) -> list[str]:
        """Ids of one of SETS by rank (inclusive ``stop``, as ZRANGE): ready ones in the
        order they will run, the others oldest first (or ``newest_first``)."""
        client = self.broker.sync
        if name in _NEWEST_FIRST:  # lists kept newest first
            key = self._set(name)
            if newest_first:
                return _text(cast("list[bytes]", client.lrange(key, start, stop)))
            found = client.lrange(key, -stop - 1, -start - 1)
            return _text(reversed(cast("list[bytes]", found)))
        if name in ("ready", "held"):
            return self._list_ids(self._lists(name), start, stop, newest_first)
        ranked = client.zrange(self._set(name), start, stop, desc=newest_first)
        return _text(cast("list[bytes]", ranked))

    def after(
        self, name: str, anchor: str | None, score: int | None, count: int
    ) -> list[tuple[str, int | None]]:
        """Up to ``count`` ids of one of SETS after ``anchor`` (an id; ``score``, its score
        in a sorted set), in the order an action on every job of the set goes through it:
        ready and held jobs in the order they will run, the latest successes and
        cancellations oldest first, delayed jobs by due time, dead letters newest first
        (those that die meanwhile come before: a retried job that fails again is not met
        twice). In one call, unshifted by the workers' fetches (lua/after.lua). Each id
        with its score, in a sorted set."""
        order = "desc" if name in ("dead", *_NEWEST_FIRST) else "asc"
        if name in ("delayed", "dead"):
            kind, keys = "zset", [self._set(name)]
        elif name == "ready":
            kind, keys = name, [self.ready, self.priorities]
        elif name == "held":
            kind, keys = name, [self.gates]
        else:
            kind, keys = "list", [self._set(name)]
        argv = [kind, order, count, anchor or "", score or 0, self.job_prefix]
        reply = AFTER.run_sync(self.broker.sync, keys, argv)
        if kind != "zset":
            return [(job_id, None) for job_id in _text(reply)]
        return [(reply[i].decode(), int(float(reply[i + 1]))) for i in range(0, len(reply), 2)]

    def _lists(self, name: str) -> list[str]:
        """The lists "ready" or "held" jobs wait in, in the order they will run (held: per
        limit group, each group's in order)."""
        if name == "ready":
            return self._ready_lists()
        groups = _text(cast("list[bytes]", self.broker.sync.zrange(self.gates, 0, -1)))
        return [self.keys.held(self.name, group) for group in groups]

    def _ready_lists(self) -> list[str]:
        """The ready lists, highest priority first (as lua/ready.lua orders them)."""
        levels = [
            int(p) for p in cast("list[bytes]", self.broker.sync.zrange(self.priorities, 0, -1))
        ]
        higher = [self.ready + f":{p}" for p in levels if p > 0]
        lower = [self.ready + f":{p}" for p in levels if p < 0]
        return [*higher, self.ready, *lower]

    def _list_ids(self, lists: list[str], start: int, stop: int, newest_first: bool) -> list[str]:
        client = self.broker.sync
        with client.pipeline(transaction=False) as pipe:
            for key in lists:
                pipe.llen(key)
            lengths = pipe.execute()
        total = sum(lengths)
        stop = min(stop if stop >= 0 else total + stop, total - 1)
        if newest_first:  # ranks counted from the last to run
            start, stop = total - 1 - stop, total - 1 - start
        found: list[str] = []
        offset = 0
        for key, length in zip(lists, lengths, strict=True):
            lo, hi = max(start - offset, 0), min(stop - offset, length - 1)
            if lo <= hi:
                found += _text(cast("list[bytes]", client.lrange(key, lo, hi)))
            offset += length
        return found[::-1] if newest_first else found

    def running_ids(self) -> list[str]:
        client = self.broker.sync
        workers = _text(client.smembers(self.workers))
        with client.pipeline(transaction=False) as pipe:
            for worker_id in workers:
                pipe.hkeys(self.keys.wip(self.name, worker_id))
            return sorted(_text(set().union(*pipe.execute())))

    def marks(self, job_id: str) -> Marks:
        client = self.broker.sync
        with client.pipeline(transaction=False) as pipe:
            for key in (self.delayed, self.dead, self.cancels):
                pipe.zscore(key, job_id)
            pipe.hget(self.job_key(job_id), "k")
            due, dead, cancel, group = pipe.execute()
        held = group is not None and (
            client.lpos(self.keys.held(self.name, group.decode()), job_id) is not None
        )
        due, dead, cancel = (int(v) if v is not None else None for v in (due, dead, cancel))
        return Marks(due, dead, cancel, held)

    # What operators change.

    def retry(self, allowances: list[tuple[str, int]]) -> int:
        """Send dead letters back to ready, each ``(id, attempts to allow on top of those
        used)``. Returns how many went back (ids not dead are left alone)."""
        args: list[object] = [self.job_prefix]
        for job_id, attempts in allowances:
            args += (job_id, attempts)
        keys = [self.dead, self.ready, self.priorities, self.notify, self.cancels]
        return int(RETRY.run_sync(self.broker.sync, keys, args))

    def cancel(self, job_id: str, error: bytes, result_ttl_ms: int) -> str:
        """'cancelled' (it was queued), 'requested' (it runs), 'missing', or the status of a
        finished job (left alone)."""
        keys = [self.job_key(job_id), self.ready, self.priorities, self.delayed, self.cancels]
        keys += [self.stats_key, self.legacy_ready, self.legacy_delayed, self.gates]
        argv = [job_id, now_ms(), error, result_ttl_ms, self.job_prefix, HISTORY]
        return str(CANCEL.run_sync(self.broker.sync, keys, argv).decode())

    def delete(self, ids: list[str]) -> int:
        """Delete jobs for good wherever they wait or lie finished (running ones are left):
        how many went."""
        if not ids:
            return 0
        keys = [self.ready, self.delayed, self.dead, self.done, self.cancelled, self.gates]
        return int(DELETE.run_sync(self.broker.sync, keys, [self.job_prefix, *ids]))

    # Pausing: FETCH leases nothing from a paused queue (lua/fetch.lua).

    def pause(self) -> bool:
        """Pause the queue; False if it was paused already."""
        return bool(self.broker.sync.set(self.paused, now_ms(), nx=True))

    def resume(self, workers: int = 1) -> bool:
        """Resume the queue, waking at once up to ``workers`` workers that wait while it is
        paused (a token each, on ``resumed``; those not taken lapse) and an idle worker
        that does not know it was paused; False if it was not paused."""
        tokens = max(workers, 1)
        with self.broker.sync.pipeline(transaction=False) as pipe:
            pipe.delete(self.paused)  # first: a worker woken finds the queue running
            pipe.rpush(self.resumed, *[1] * tokens)
            pipe.ltrim(self.resumed, 0, tokens - 1)
            pipe.pexpire(self.resumed, RESUMED_TTL_MS)
            pipe.rpush(self.notify, 1)
            pipe.ltrim(self.notify, 0, 0)  # at most one token, as lua/wake.lua leaves
            deleted, *_ = pipe.execute()
        return bool(deleted)

    def paused_since(self) -> int | None:
        """When the queue was paused (epoch ms), or None: it runs."""
        found = self.broker.sync.get(self.paused)
        return int(found) if found is not None else None

    async def acounters(self) -> tuple[dict[str, int], bool]:
        """The queue's outcome counters (COUNTERS), and whether it is paused: one round trip."""
        async with self.broker.aclient().pipeline(transaction=False) as pipe:
            pipe.hgetall(self.stats_key)
            pipe.exists(self.paused)
            counters, paused = await pipe.execute()
        found = {name.decode(): int(n) for name, n in counters.items()}
        return dict.fromkeys(COUNTERS, 0) | found, bool(paused)

    # Periodic schedules whose jobs go to this queue: operators' view and controls.

    def schedules(self, names: list[str]) -> list[tuple[int | None, int | None, list[str]]]:
        """Per schedule name: its latest fire time handled (ms), when it was paused (ms;
        None: it runs), and its latest jobs' ids, newest first; one round trip."""
        if not names:
            return []
        periodic, paused = self.keys.periodic(self.name), self.keys.periodic_paused(self.name)
        with self.broker.sync.pipeline(transaction=False) as pipe:
            pipe.hmget(periodic, names)
            pipe.hmget(paused, names)
            for name in names:
                pipe.lrange(self.keys.periodic_runs(self.name, name), 0, -1)
            fired, stopped, *runs = pipe.execute()
        return [
            (_int(last), _int(since), _text(ids))
            for last, since, ids in zip(fired, stopped, runs, strict=True)
        ]

    def pause_schedule(self, name: str) -> bool:
        """Pause a schedule (its fire times pass without a job); False if it was paused."""
        paused = self.keys.periodic_paused(self.name)
        return bool(self.broker.sync.hsetnx(paused, name, now_ms()))

    def resume_schedule(self, name: str) -> bool:
        """Resume a schedule from its next fire time; False if it was not paused."""
        return bool(self.broker.sync.hdel(self.keys.periodic_paused(self.name), name))

    def ran(self, name: str, job_id: str) -> None:
        """Record a job of a schedule that an operator ran by hand among its latest runs."""
        runs = self.keys.periodic_runs(self.name, name)
        with self.broker.sync.pipeline(transaction=False) as pipe:
            pipe.lpush(runs, job_id)
            pipe.ltrim(runs, 0, RUNS_KEPT - 1)
            pipe.execute()

    def purge(self, name: str, batch: int) -> int:
        """Remove up to ``batch`` jobs of one of SETS, with their hashes."""
        kind = {"ready": "ready", "held": "held"}.get(
            name, "list" if name in _NEWEST_FIRST else "zset"
        )
        keys = [self.gates if name == "held" else self._set(name), self.priorities]
        return int(PURGE.run_sync(self.broker.sync, keys, [self.job_prefix, batch, kind]))

    def _set(self, name: str) -> str:
        if name == "successful":
            return self.done
        if name not in SETS:
            raise ValueError(f"no set {name!r} (expected one of {', '.join(SETS)})")
        return str(getattr(self, name))


def _with_lease(job_id: str, fields: Fields, worker_id: str, lease: bytes) -> Fields:
    """A job's hash as it stands while ``worker_id`` holds its lease ("attempt started_ms",
    and its limit group if any): running, that attempt, started then, by that worker."""
    attempt, started, *_ = lease.split(b" ", 2)
    since = b"%d" % (int(started) - enqueued_ms_of(job_id))  # as the hash keeps times
    wids, worker = fields.get(b"w"), worker_id.encode()
    return fields | {
        b"s": b"R",
        b"a": attempt,
        b"l": since,
        b"t": fields.get(b"t", since),
        b"w": wids + b"," + worker if wids else worker,
    }


def _int(value: bytes | None) -> int | None:
    return int(value) if value is not None else None


def _id(reply: bytes | None) -> str | None:
    return reply.decode() if reply is not None else None


def _text(items: Iterable[bytes | str]) -> list[str]:
    """Members as text (redis-py answers bytes; its types allow str)."""
    return [i.decode() if isinstance(i, bytes) else i for i in items]
