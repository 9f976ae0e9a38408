"""The worker: leases jobs from Redis in batches, runs them on the loop, stores outcomes.

Life of a job here: ``_fetch_loop`` leases it (``Queue.fetch``), ``_execute`` runs one
attempt (runtime/attempt.py), ``_flush_loop`` stores the outcome and drops the lease in one
batched call (``Queue.ack``). Heartbeats keep this worker's leases; ``_reap`` hands on the
leases of workers that stopped heartbeating. See docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from logging import ERROR, INFO
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson
from django.tasks import TaskResultStatus
from django.tasks.base import TaskError
from django.tasks.signals import task_finished, task_started

from worker.context import JobContext, metadata_json
from worker.exceptions import Cancelled, MessageRejected, WorkerLost
from worker.observe import context, tracing
from worker.observe.watchdog import THRESHOLD, Watchdog
from worker.protocol import Broker, Queue, history
from worker.protocol.connection import REDIS_ERRORS, SOCKET_TIMEOUT, redacted, refuses_writes
from worker.protocol.keys import queue_of
from worker.protocol.message import Call, decode
from worker.protocol.queue import Fetched
from worker.protocol.records import Lease, Outcome, OutcomeKind, class_path, error_json
from worker.results import errors_of, finished, parse
from worker.runtime import attempt, process, signals
from worker.runtime.loops import loop_name
from worker.runtime.outage import Outage
from worker.runtime.reports import AttemptReports, Reports
from worker.runtime.scheduler import Scheduler, tell_skew
from worker.task import registered

if TYPE_CHECKING:
    from django.dispatch import Signal

    from worker.observe.metrics import Meter, Series
    from worker.periodic import Periodic
    from worker.task import Result

logger = logging.getLogger("worker")

# Seconds before a job whose attempt the worker itself failed around is tried again.
FAULT_RETRY = 1.0
# Seconds before a failed heartbeat is sent again (jittered).
BEAT_RETRY = 0.5
# Seconds between looks for operators' cancel requests, while jobs run.
CANCEL_POLL = 0.5
# A lease this worker holds but knows nothing of for this long came from a fetch whose
# reply was lost (no reply takes longer than SOCKET_TIMEOUT): the job never ran here.
STRAY_AFTER = SOCKET_TIMEOUT + 5.0
# Seconds within which a second stop signal is the same stop (see Worker.stop).
SAME_STOP = 1.0
# Seconds between recounts of the limit groups' slots from the leases (a safety net: see
# protocol/lua/recount.lua).
RECOUNT_EVERY = 60.0
# Seconds between a worker's looks at the transactional outbox (worker/outbox): only the
# jobs of a commit that could not reach Redis wait there, so this bounds how soon they run
# once Redis is back.
RELAY_EVERY = 1.0
# Seconds between a worker's writes of what its jobs did (protocol/history.py), each with a
# look for an operator's order (quiet, stop) to it.
REPORT_EVERY = 1.0
# What an operator may order a worker, through Redis (Ops.quiet / Ops.stop_worker).
ORDERS = ("quiet", "stop")
# Seconds a background loop waits after an error it did not expect, before it goes on.
BROKEN_PAUSE = 1.0
# Recorded after a failed attempt's own error when an operator's cancel request, pending
# when the attempt ended, stops the job instead of its retry (protocol/lua/ack.lua).
CANCELLED_AFTER_FAILURE = error_json(
    class_path(Cancelled),
    "Cancelled by an operator while it ran; its attempt failed before the worker could stop "
    "it, and the job is not retried.",
)


class OutboxRelay(Protocol):
    """Moves the jobs of the transactional outbox to Redis (worker/outbox/relay.py)."""

    async def __call__(self) -> int: ...  # how many it moved

    async def close(self) -> None: ...


class Worker:
    """One worker process's engine: serves ``queues`` of ``broker`` with at most
    ``concurrency`` jobs at once; ``stop()`` drains it within ``grace`` seconds. While
    several queues have work, jobs are taken from them in the proportions of their
    ``weights`` (1 each by default); ``strict`` serves them in the order given instead,
    an earlier queue's jobs always first. ``alias``
    and ``sender`` are the TASKS backend's, for the results and signals it makes. With
    ``burst``, ``run()`` returns once no job is ready and none runs, every outcome stored
    (jobs due later, retries included, are left for another run; no periodic job fires).
    Unless ``scheduler`` is off, it fires the ``periodic`` jobs too (the backend's own).
    ``slots`` gives each job its thread (by default one of its own: runtime/attempt.py;
    worker/testing's run the jobs in the caller's). ``meter``, when the process exports
    metrics, counts each attempt (worker/observe/metrics.py). Made by
    ``RedisBackend.worker()``; run by ``manage.py runworker``."""

    def __init__(
        self,
        broker: Broker,
        queues: list[str],
        *,
        alias: str = "default",
        sender: type = object,
        lease: float = 10.0,
        result_ttl: float = 24 * 3600,
        max_payload_bytes: int = 1024 * 1024,
        concurrency: int = 100,
        inflight_bytes: int = 64 * 1024 * 1024,
        grace: float = 30.0,
        poll: float = 1.0,
        scheduler: bool = True,
        periodic: Sequence[Periodic] = (),
        burst: bool = False,
        weights: dict[str, int] | None = None,
        strict: bool = False,
        slots: attempt.Slots | None = None,
        loop_lag_threshold: float | None = THRESHOLD,
        relay: OutboxRelay | None = None,
        meter: Meter | None = None,
    ) -> None:
        self.broker = broker
        self.queues = list(queues)
        self.weights = {q: (weights or {}).get(q, 1) for q in self.queues}
        self.strict = strict
        self._credit = dict.fromkeys(self.queues, 0)  # smooth weighted round robin
        self._queues: dict[str, Queue] = {name: broker.queue(name) for name in self.queues}
        self.alias = alias
        self._sender = sender  # of Django's task signals, as Django's backends send them
        self.lease = lease
        self.max_payload_bytes = max_payload_bytes
        self.concurrency = concurrency
        self.inflight_bytes = inflight_bytes  # payload bytes of the jobs running at most
        self._inflight = 0  # payload bytes of the jobs running now
        self.grace = grace
        self.poll = poll
        self.scheduler = scheduler and not burst
        self.periodic = list(periodic)  # fired by this worker's scheduler (if it runs one)
        self.burst = burst
        # Seconds the loop may be blocked before the watchdog names the job; 0/None: no
        # watchdog (and no lag measured).
        self.loop_lag_threshold = loop_lag_threshold
        self._watchdog: Watchdog | None = None
        self._tracer = tracing.tracer()  # None unless a tracer provider is set up
        self.id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.lease_ms = int(lease * 1000)
        self.result_ttl_ms = int(result_ttl * 1000)
        self.started_at = time.time()
        self.processed = 0
        self.unwritten = 0  # outcomes given up on at the end (Redis stayed away): run again
        self._running: dict[str, asyncio.Task[None]] = {}
        self._attempting: set[str] = set()  # of the running jobs, those still in their attempt
        self._outbox: dict[str, list[Outcome]] = defaultdict(list)
        self._slots = attempt.Slots() if slots is None else slots
        self._stopping = asyncio.Event()
        self._stop_at = 0.0  # when the first stop came (monotonic)
        self._forced = asyncio.Event()
        self._room = asyncio.Event()
        self._outbox_ready = asyncio.Event()
        self._outage = Outage(doubt=lease / 2, url=broker.url)
        self._beat_since: float | None = None  # when the heartbeat in flight was sent
        self._beat_at = 0.0  # when the latest heartbeat got through (monotonic)
        self._out_of_memory = False
        self._waiter: asyncio.Task[Fetched | None] | None = None  # the wait for a wake-up token
        self._wait_connection = broker.waiting_connection()
        self._reserved = (0, 0)  # room and bytes the wait's FETCH may lease
        self._nudged = False  # a wake-up token was left to end the wait early
        self._due_now = False  # the fetch loop woke for a delayed job, the wait pending
        self._sweeps = 0  # fetches from several queues so far (which queue goes first)
        self._woken: str | None = None  # the queue whose wake-up token ended the wait
        self._paused: set[str] = set()  # queues FETCH found paused: waited on for a resume
        self._due: dict[str, float] = {}  # queue -> when its next delayed job is due
        self._wait_backoff = 0.05  # seconds before waiting again, after a failed wait
        self._cancelled: set[str] = set()  # running jobs being cancelled at an operator's word
        self._adopted: dict[str, int] = {}  # running job -> the later attempt it answers for
        self._strays: dict[str, float] = {}  # leased ids unknown here, since when (monotonic)
        self._relay_outbox = relay  # moves the jobs of the transactional outbox to Redis
        self._reports = Reports(broker)  # the running jobs' progress and metadata
        self._meter = meter  # the process's metrics (worker/observe), when it exports them
        # job -> its series and what its attempt came to, until its outcome is stored
        self._settling: dict[str, tuple[Series, OutcomeKind]] = {}
        self._tally = history.Tally()  # what its jobs did, until the next report
        self._history_refused = False  # Redis refused the last write of the tally
        self.quiet = False  # an operator's order: fetch no more, finish what runs

    def stop(self) -> None:
        """First call: stop fetching and drain within the grace period. Second: stop now,
        unless it comes within SAME_STOP of the first: a process manager that signals the
        whole process group (systemd's default) reaches a --processes child twice, from
        itself and through the supervisor, and that is one stop, not two."""
        now = time.monotonic()
        if self._stopping.is_set():
            if now - self._stop_at < SAME_STOP:
                return
            logger.warning("Second stop signal: releasing in-flight jobs now")
            self._forced.set()
        else:
            logger.info("Stopping: no new jobs; waiting up to %.0fs for %d in flight",
                        self.grace, len(self._running))  # fmt: skip
            self._stopping.set()
            self._stop_at = now
        self._room.set()

    async def run(self) -> None:
        logger.info(
            "Worker %s started: serving %s, concurrency %d, Redis %s, on %s",
            self.id, ", ".join(self.queues), self.concurrency, redacted(self.broker.url),
            loop_name(asyncio.get_running_loop()),
        )  # fmt: skip
        self._reports.attach(asyncio.get_running_loop())
        await self._retrying(self._heartbeat)
        await self._retrying(self._publish_limits)
        await self._tell_skew()
        background = [
            self._background(self._beat_loop()),
            self._background(self._every(self.lease / 4, self._reap, first=0)),
            self._background(self._flush_loop()),
            self._background(self._every(CANCEL_POLL, self._cancel_requested)),
            self._background(self._every(self.lease / 4, self._release_strays)),
            self._background(self._every(RECOUNT_EVERY, self._recount)),
            self._background(self._every(REPORT_EVERY, self._report)),
        ]
        if self._relay_outbox is not None:
            background.append(self._background(self._every(RELAY_EVERY, self._relay, first=0)))
        if self.scheduler and self.periodic:
            scheduler = Scheduler(self.broker, self.alias, self._sender, self.periodic,
                                  self.max_payload_bytes)  # fmt: skip
            background.append(self._background(scheduler.run()))
        if self.loop_lag_threshold:
            self._watchdog = Watchdog(self.loop_lag_threshold).start()
        try:
            await self._fetch_loop()
            await asyncio.gather(self._drain(), self._end_wait())
        finally:
            await self._end_wait()
            self._wait_connection.close()
            for t in background:
                t.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            self.unwritten = await self._flush(give_up_after=self.lease)
            await self._quietly(self._write_history())  # the attempts since the last report
            await self._release()
            await self._quietly(self._hand_off())
            self._slots.shutdown()
            if self._relay_outbox is not None:
                await self._relay_outbox.close()
            await self._quietly(self.broker.forget(self.id))
            if self._watchdog is not None:
                self._watchdog.stop()
            logger.info("Worker %s stopped after %d jobs", self.id, self.processed)

    # Fetching

    async def _fetch_loop(self) -> None:
        while not self._stopping.is_set():
            if self.quiet:
                await self._quiet_wait()
                continue
            woken = self._take_woken()
            if woken is not None:
                got, due_in, held, emptied = woken
            else:
                room = self.concurrency - len(self._running) - self._reserved[0]
                budget = self.inflight_bytes - self._inflight - self._reserved[1]
                if room <= 0 or (budget <= 0 and self._running):
                    self._room.clear()  # before any await: a signal meanwhile must stand
                    if self._due_now and room <= 0 < self.concurrency - len(self._running):
                        await self._nudge()
                    await self._room.wait()
                    continue
                try:
                    # Half the concurrency at most per fetch: while one half's jobs start,
                    # the next half is being fetched, instead of the worker idling through
                    # every FETCH (docs/performance.md has the figures).
                    got, due_in, held, emptied = await self._fetch(
                        min(room, max(1, self.concurrency // 2)), budget
                    )
                except REDIS_ERRORS as e:
                    await self._outage.failed(e)
                    continue
                self._outage.ok()
            if got and emptied:
                # The fetch after a wake-up took every job ready in the queue that woke it:
                # wait again at once, without a FETCH that would find nothing (and go out
                # before the jobs just leased start). A job made ready since, in any queue,
                # left a wake-up token, and the wait ends at the next due delayed job.
                got = 0
            if got:
                if len(self.queues) > 1:
                    self._stop_waiting()  # busy now: a wake-up token is for an idle worker
                continue
            if held and self._running:
                # Jobs wait that do not fit the byte budget: wait for one of ours to end,
                # not for the wake-up token this fetch left for other workers.
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), self.poll)
                continue
            if self.burst and not self._running:
                logger.info("Burst done: no job ready, none running")
                return
            timeout = self.poll
            if due_in is not None:
                timeout = min(timeout, max(due_in / 1000, 0.001))
            await self._wait_for_work(timeout)
            # Woken by the clock for a delayed job due before the wait's BLPOP ends.
            waiter = self._waiter
            self._due_now = timeout < self.poll and waiter is not None and not waiter.done()

    async def _fetch(self, room: int, budget: int) -> tuple[int, int | None, int, bool]:
        """Lease up to ``room`` jobs within ``budget`` bytes: (leased, ms until the next
        delayed job is due, ready jobs left for the budget). Serving several queues: the
        queue whose token ended the wait first, with all the room (its job starts one
        round trip after the wake-up, however many queues there are); then one round trip
        asks the queues for a share of the room each (as many queues as the room allows,
        those with a delayed job due first, then from a rotating start); then those that
        had more than their share get what is left, in turn. The last of the four says
        whether a fetch after a wake-up emptied the queue that woke it (and went no
        further): the worker can wait again at once."""
        if len(self.queues) == 1 or self.strict:
            self._woken = None  # strict: the queues' own order decides, whoever woke
            return *(await self._fetch_in_turn(self.queues, room, budget)), False
        got, due_in, held = 0, None, 0
        woken, self._woken = self._woken, None
        if woken is not None:
            try:
                got, due_in, held = await self._fetch_in_turn([woken], room, budget)
            except BaseException:
                self._woken = woken  # its token is spent: ask it first next time
                raise
            if 0 < got < room and not held:
                return got, self._soonest(due_in), held, True
        left = room - got
        budget = self.inflight_bytes - self._inflight
        rotated = self._rotated()
        self._sweeps += 1
        now = time.monotonic()
        order = sorted(
            (q for q in rotated if q != woken),
            # due ones first, paused ones last (they lease nothing): a stable sort
            key=lambda q: (q in self._paused, self._due.get(q, now + 1) > now),
        )
        if left <= 0 or budget <= 0 or not order:
            return got, self._soonest(due_in), held, False
        counts = self._shares(order, left)
        asked = sum(1 for count in counts if count)
        # The queues given no share are looked at too, leasing nothing (count 0): their
        # due delayed jobs move to ready, a queue with jobs ready gets a wake-up token
        # (this worker's next wait returns for it), and their next due time is known. A
        # burst asks them in turn instead: it ends only once every queue is empty.
        more = [q for q, count in zip(order, counts, strict=True) if not count and self.burst]
        looked = [(q, n) for q, n in zip(order, counts, strict=True) if n or not self.burst]
        idle = not self._running and not self._wait_fetches()
        fetched = await asyncio.gather(
            *(
                self._queues[queue].fetch(count, self.id, budget // asked, idle and i == 0)
                for i, (queue, count) in enumerate(looked)
            ),
            return_exceptions=True,
        )
        for (queue, count), found in zip(looked, fetched, strict=True):
            if isinstance(found, BaseException):
                continue
            self._note_due(queue, found)
            got += self._start_all(queue, found)
            held += found.held_back
            due_in = _earlier(due_in, found.due_in_ms)
            if count and (len(found.leases) == count or found.held_back):
                more.append(queue)
        if errors := [e for e in fetched if isinstance(e, BaseException)]:
            raise errors[0]  # the leases of the others started: an outage, met as ever
        left, budget = room - got, self.inflight_bytes - self._inflight
        if more and left > 0 and budget > 0:  # its count of jobs held back stands now
            got_more, later, held = await self._fetch_in_turn(more, left, budget)
            got += got_more
            due_in = _earlier(due_in, later)
        return got, self._soonest(due_in), held, False

    def _shares(self, queues: list[str], room: int) -> list[int]:
        """How many of ``room`` jobs to ask each of ``queues`` for: in proportion to their
        weights, by a smooth weighted round robin that carries over from fetch to fetch
        (a fetch for one free slot gives it to one queue, and over a round of as many
        slots as the weights add up to, each queue gets its weight's worth: at least one).
        With equal weights, a share each for as many queues as the room allows (the
        queues are in a rotating order)."""
        weights = [self.weights[q] for q in queues]
        total = sum(weights)
        if total == len(queues):  # all 1
            share = max(1, room // len(queues))
            asked = min(room // share, len(queues))  # a job each at least, never over the room
            return [share] * asked + [0] * (len(queues) - asked)
        rounds, rest = divmod(room, total)
        counts = [rounds * w for w in weights]
        credit = [self._credit[q] for q in queues]
        for _ in range(rest):
            credit = [c + w for c, w in zip(credit, weights, strict=True)]
            best = credit.index(max(credit))
            credit[best] -= total
            counts[best] += 1
        self._credit.update(zip(queues, credit, strict=True))
        return counts

    def _rotated(self) -> list[str]:
        """The queues from a first one that moves on with each fetch from several: a queue
        early in the list must not always be asked (or waited on) first."""
        start = self._sweeps % len(self.queues)
        return self.queues[start:] + self.queues[:start]

    def _soonest(self, due_in: int | None) -> int | None:
        """``due_in`` (ms), or sooner if a queue not looked at now has a delayed job due."""
        if not self._due:
            return due_in
        return _earlier(due_in, max(0, int((min(self._due.values()) - time.monotonic()) * 1000)))

    def _note_due(self, queue: str, fetched: Fetched) -> None:
        """When the queue's next delayed job is due (monotonic), for a worker serving
        several queues to ask that one first then; and whether it is paused (its waits are
        then for its resume, not for its enqueues)."""
        if fetched.paused:
            self._paused.add(queue)
        else:
            self._paused.discard(queue)
        if fetched.due_in_ms is None or fetched.held_back or fetched.leases:
            # a backlog ahead of the due job: asking first would not start it sooner
            self._due.pop(queue, None)
        else:
            self._due[queue] = time.monotonic() + fetched.due_in_ms / 1000

    async def _fetch_in_turn(
        self, queues: list[str], room: int, budget: int
    ) -> tuple[int, int | None, int]:
        got, due_in, held = 0, None, 0
        for queue in queues:
            idle = not self._running and not self._wait_fetches()
            fetched = await self._queues[queue].fetch(room - got, self.id, budget, idle)
            self._note_due(queue, fetched)
            got += self._start_all(queue, fetched)
            budget -= sum(len(lease.payload or b"") for lease in fetched.leases)
            held += fetched.held_back
            due_in = _earlier(due_in, fetched.due_in_ms)
            if got >= room or budget <= 0:
                break
        return got, due_in, held

    async def _wait_for_work(self, timeout: float) -> None:
        """Until a wake-up token, ``timeout`` seconds (the next delayed job), or a stop.
        The BLPOP runs for the whole poll interval and outlives a shorter wait, while the
        worker stays idle: Redis times blocked commands out only at its ``hz`` (100 ms by
        default), too coarsely for delayed jobs. Serving one queue, the wait carries a
        FETCH (``Queue.wait_then_fetch``) for the room and bytes it holds back from other
        fetches meanwhile; it is then never cut short (its FETCH may have run), and its
        leases are started whenever it returns, busy or not."""
        if self._waiter is None:
            self._waiter = asyncio.create_task(self._wait())
            self._waiter.add_done_callback(lambda _: self._room.set())
            self._nudged = False
        events = [self._stopping]
        if self.burst:  # the end of the last running job may end the burst
            self._room.clear()
            events.append(self._room)
        waits = [asyncio.create_task(event.wait()) for event in events]
        await asyncio.wait(
            {self._waiter, *waits}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for wait in waits:
            wait.cancel()

    async def _wait(self) -> Fetched | None:
        """The wait itself. It fails alone, with a backoff of its own, when its connection
        does (the fetches and heartbeats on the shared connection judge whether Redis is
        away): a connection that cannot be opened again must not make a busy loop."""
        seconds = min(self.poll, SOCKET_TIMEOUT / 2)  # within the connection's watchdog
        try:
            if len(self.queues) > 1:
                # Asked in turn from a rotating first queue: BLPOP takes the first list
                # that has a token, and no queue should always come last.
                order = self._rotated()
                self._woken = await self.broker.wait_for_work(
                    self._wait_connection, order, seconds, self._paused
                )
                fetched = None
            else:
                room = min(self.concurrency - len(self._running), max(1, self.concurrency // 2))
                budget = (self.inflight_bytes - self._inflight) // 2
                self._reserved = (room, budget)
                queue = self._queues[self.queues[0]]
                fetched = await queue.wait_then_fetch(self._wait_connection, seconds, room,
                                                      self.id, budget, not self._running,
                                                      queue.name in self._paused)  # fmt: skip
        except REDIS_ERRORS as e:
            self._reserved = (0, 0)
            logger.debug("Waiting for work failed (%r); waiting %.2fs", e, self._wait_backoff)
            await asyncio.sleep(self._wait_backoff * (0.5 + random.random() / 2))
            self._wait_backoff = min(self._wait_backoff * 2, 5.0)
            return None
        self._wait_backoff = 0.05
        return fetched

    def _wait_fetches(self) -> bool:
        """Whether a wait is pending whose FETCH may lease jobs (serving one queue)."""
        return self._waiter is not None and len(self.queues) == 1

    def _take_woken(self) -> tuple[int, int | None, int, bool] | None:
        """What a finished wait brought, as ``_fetch`` tells it (its leases started here),
        and whether it left no ready job behind; None when no wait has finished or it
        fetched nothing (a plain wait, Redis had lost the script, or the wait failed)."""
        if self._waiter is None or not self._waiter.done():
            return None
        waiter, self._waiter = self._waiter, None
        asked, self._reserved = self._reserved[0], (0, 0)
        if waiter.cancelled() or (fetched := waiter.result()) is None:
            return None
        self._note_due(self.queues[0], fetched)
        got = self._start_all(self.queues[0], fetched)
        emptied = got < asked and not fetched.held_back
        return got, fetched.due_in_ms, fetched.held_back, emptied

    async def _nudge(self) -> None:
        """The wait's FETCH holds every free slot while its BLPOP runs for the poll
        interval, and a delayed job falls due before that: a wake-up token ends the wait
        now (or starts another idle worker, which fetches the job as well). Once per
        wait."""
        self._due_now = False
        if self._nudged:
            return
        self._nudged = True
        try:
            for queue in self._queues.values():
                await queue.hand_off()
        except REDIS_ERRORS as e:
            self._outage.noted(e)

    async def _end_wait(self) -> None:
        """Stop waiting, for good. A wait that carries a FETCH is let finish (its BLPOP
        times out within the poll interval) rather than cut: Redis would learn that its
        connection closed at a time of its own, maybe after this worker released its jobs
        on the shared connection, and a FETCH run then would lease them to a worker that
        is gone. What it leased is released with the rest (``_release``)."""
        waiter = self._waiter
        if waiter is not None and not waiter.done() and len(self.queues) == 1:
            await asyncio.wait({waiter}, timeout=self.poll + SOCKET_TIMEOUT)
        self._stop_waiting()

    async def _publish_limits(self) -> None:
        """The limits this worker's tasks declare, for FETCH to enforce (an operator's
        settings stand over them): a deploy that changes a limit changes it here."""
        declared = {
            path: task.limits for path, task in registered().items() if task.backend == self.alias
        }
        try:
            for queue in self._queues.values():
                await queue.flow.publish(declared)
        except REDIS_ERRORS as e:
            if not refuses_writes(e):
                raise  # an outage: tried again
            # Out of memory (say): the limits already in Redis stand; jobs must not wait.
            logger.error("Could not publish the tasks' limits (%s); those in Redis stand", e)

    async def _tell_skew(self) -> None:
        try:
            tell_skew(await self.broker.time(), told=False)
        except REDIS_ERRORS as e:  # the heartbeat just got through: an outage begins
            self._outage.noted(e)

    async def _hand_off(self) -> None:
        for queue in self._queues.values():
            await queue.hand_off()

    def _stop_waiting(self) -> None:
        """Give up the wait (its connection closes, so Redis hands it nothing more). A
        FETCH that went with it may have leased jobs by then: they stay leased until the
        worker releases what it holds as it stops, or its strays (``_release_strays``)."""
        if self._waiter is not None:
            self._waiter.cancel()
            self._waiter = None
            self._reserved = (0, 0)
            self._wait_connection.close()

    # Running

    def _start_all(self, queue: str, fetched: Fetched) -> int:
        for lease in fetched.leases:
            self._start(queue, lease)
        return len(fetched.leases)

    def _start(self, queue: str, lease: Lease) -> None:
        if lease.payload is None:
            logger.warning("Job %s was queued but its data is gone (purged or expired)", lease.id)
            return
        if lease.id in self._running:
            # This worker was taken for dead while the job ran here, and fetched it again:
            # the attempt running here answers for the new lease, instead of a second run.
            logger.warning("Job %s came back to this worker while it runs here: the running "
                           "attempt answers for attempt %d", lease.id, lease.attempt)  # fmt: skip
            outbox = self._outbox[queue]
            for i, outcome in enumerate(outbox):
                if outcome.job_id == lease.id:  # stored already, not yet written
                    outbox[i] = outcome._replace(attempt=lease.attempt)
                    return
            self._adopted[lease.id] = lease.attempt
            return
        self._inflight += len(lease.payload)
        self._running[lease.id] = asyncio.create_task(self._execute(queue, lease))

    async def _execute(self, queue: str, lease: Lease) -> None:
        stored = False
        series: Series | None = None  # the job's metrics, when the process exports them
        began = 0.0
        try:
            try:
                call = decode(lease.payload, self.max_payload_bytes)
            except MessageRejected as e:
                logger.error("Job %s dead-lettered: %s", lease.id, e)
                self._store(queue, attempt.failure(e, lease))
                stored = True
                self._tally.add(None, True, 0.0, None)
                if self._meter is not None:
                    self._meter.rejected(queue)
                return
            context.enter(lease, queue, call.task)
            began = time.perf_counter()
            if self._meter is not None:
                series = self._meter.started(call.task, queue, lease)
            result = None  # built only when a receiver or the task itself will look at it
            if call.task.takes_context or not signals.unheard(task_started, self._sender, INFO):
                result = attempt.running_result(call, lease, self.alias)
            value: Any = None
            error: BaseException | None = None
            job: JobContext | None = None  # what the task reports of itself, if it may
            saved = b"{}"  # its metadata as the attempt began
            if call.task.takes_context:
                job, saved = await self._job_context(queue, lease, result)
            traced, released = None, False
            if self._tracer is not None:
                traced = tracing.consuming(self._tracer, call, lease, queue)
            self._attempting.add(lease.id)
            try:
                if result is not None:
                    await self._signal(task_started, result)
                value, error = await attempt.run(call, result, self._slots, job)
                outcome, error = attempt.outcome_of(call, lease, value, error)
            except asyncio.CancelledError as e:
                current = asyncio.current_task()
                assert current is not None  # this coroutine runs as a task of its own
                if lease.id in self._cancelled:  # an operator's cancel
                    current.uncancel()
                    self._cancelled.discard(lease.id)
                    error = Cancelled("Cancelled by an operator while it ran.")
                    outcome = attempt.failure(error, lease, OutcomeKind.CANCELLED)
                elif current.cancelling():
                    released = True
                    raise  # a forced shutdown: the job is released, not failed
                else:  # raised by the task itself: an error like any other
                    outcome, error = attempt.outcome_of(call, lease, None, e)
            finally:
                self._attempting.discard(lease.id)
                if traced is not None:
                    tracing.end(traced, error, released)
            if job is not None:
                self._save_metadata(job, saved)
            if call.task.result_ttl is not None:
                outcome = outcome._replace(keep_ms=int(call.task.result_ttl * 1000))
            self._store(queue, outcome)
            stored = True
            if series is not None:
                self._count(series, lease, outcome, time.perf_counter() - began)
            self._tally_attempt(call, lease, outcome.kind, time.perf_counter() - began)
            await self._report_finished(call, lease, result, outcome, value, error)
        except Exception as e:
            # A fault of the worker's own around the attempt (the task's errors are
            # outcomes already): the attempt counts and is retried like a failed one.
            # Left leased, the job would be released uncounted and could come back forever.
            logger.exception("Job %s: the worker failed around its attempt", lease.id)
            if not stored:
                outcome = attempt.failure(e, lease, OutcomeKind.FAILED, FAULT_RETRY)
                self._store(queue, outcome)
                stored = True
                if series is not None:
                    self._count(series, lease, outcome, time.perf_counter() - began)
        finally:
            if series is not None and not stored:
                series.ended(None, 0.0)  # released unfinished (a forced shutdown)
            self._running.pop(lease.id, None)
            self._inflight -= len(lease.payload or b"")
            self.processed += 1
            self._room.set()

    def _count(self, series: Series, lease: Lease, outcome: Outcome, seconds: float) -> None:
        """Count an attempt's end in its metrics. A retry or a deferral is counted once
        its outcome is stored (``_settle``): the ACK ends the job as cancelled instead when
        an operator's cancel is pending. The ACK dead-letters an error on a job's last
        attempt (a fault of the worker's own, stored as one to retry)."""
        kind = outcome.kind
        if kind is not OutcomeKind.FAILED and kind is not OutcomeKind.DEFERRED:
            series.ended(kind, seconds)
            return
        if kind is OutcomeKind.FAILED and lease.last_attempt:
            kind = OutcomeKind.FATAL
        self._settling[outcome.job_id] = (series, kind)
        series.ended(kind, seconds, settling=True)

    def _settle(self, outcomes: list[Outcome], stopped: list[str]) -> None:
        """Count the settling attempts among ``outcomes``, just stored: those the ACK
        ended as cancelled (``stopped``) as such."""
        for outcome in outcomes:
            if (settling := self._settling.pop(outcome.job_id, None)) is not None:
                series, kind = settling
                series.settled(OutcomeKind.CANCELLED if outcome.job_id in stopped else kind)

    async def _job_context(
        self, queue: str, lease: Lease, result: Result | None
    ) -> tuple[JobContext, bytes]:
        """The context of a task that takes it, and its metadata as JSON: as earlier runs
        saved it (a retry's, a run after RateLimited or after a release at shutdown)."""
        saved = b"{}"
        with contextlib.suppress(*REDIS_ERRORS):  # then it starts afresh
            saved = await self._queues[queue].metadata(lease.id) or saved
        try:
            metadata = orjson.loads(saved)
        except orjson.JSONDecodeError:
            metadata = None
        if not isinstance(metadata, dict):
            metadata, saved = {}, b"{}"
        job = JobContext(task_result=cast("Result", result), metadata=metadata,
                         reporter=self._reports.of_attempt(lease.id))  # fmt: skip
        return job, saved

    def _save_metadata(self, job: JobContext, saved: bytes) -> None:
        """Store the metadata the attempt changed (before its outcome: see Reports); what
        its handler reports from now on is dropped."""
        cast("AttemptReports", job.reporter).closed = True
        try:
            data = metadata_json(job.metadata)
        except ValueError as e:
            logger.warning("Job %s: its metadata is not saved: %s", job.task_result.id, e)
            return
        if data != saved:
            self._reports.report(job.task_result.id, None, data)

    async def _report_finished(
        self,
        call: Call,
        lease: Lease,
        result: Result | None,
        outcome: Outcome,
        value: Any,
        error: BaseException | None,
    ) -> None:
        if outcome.kind == OutcomeKind.FAILED:
            delay = outcome.retry_delay_ms / 1000
            logger.warning("Job %s attempt %d of %d failed, retry in %.1fs: %r",
                           lease.id, lease.attempt, lease.max_attempts, delay, error)  # fmt: skip
            return  # task_finished is for the end of a job, not of one attempt
        if outcome.kind == OutcomeKind.DEFERRED:
            logger.info("Job %s rate limited: runs again in %.1fs (not counted as an attempt): %s",
                        lease.id, outcome.retry_delay_ms / 1000, error)  # fmt: skip
            return
        succeeded = outcome.kind == OutcomeKind.SUCCEEDED
        if signals.unheard(task_finished, self._sender, INFO if succeeded else ERROR):
            return
        if result is None:
            result = attempt.running_result(call, lease, self.alias)
        errors = result.errors
        if lease.attempt > 1:  # the earlier attempts' errors, for a complete result
            try:
                fields = await self._queues[queue_of(lease.id)].ajob(lease.id)
                errors = errors_of(fields, before=lease.attempt)
            except REDIS_ERRORS as e:
                logger.debug("Earlier errors of job %s unread: %s", lease.id, e)
        if succeeded:
            ended = finished(result, TaskResultStatus.SUCCESSFUL, errors, value)
            await self._signal(task_finished, ended)
            return
        errors = [*errors, TaskError(**orjson.loads(outcome.value))]
        ended = finished(result, TaskResultStatus.FAILED, errors)
        if error is None:
            await self._signal(task_finished, ended)
            return
        # Sent while the error is being handled, as Django's own backends do: its logging
        # receiver records the exception and its traceback with the FAILED line.
        try:
            raise error
        except BaseException:
            await self._signal(task_finished, ended)

    async def _signal(self, signal: Signal, result: Result) -> None:
        try:
            await signals.asend(signal, self._sender, task_result=result)
        except Exception:
            # A broken receiver must not cost the job its outcome nor the worker its loop.
            logger.exception("A %s receiver failed for job %s", signal, result.id)

    def _store(self, queue: str, outcome: Outcome) -> None:
        if self._adopted and (newer := self._adopted.pop(outcome.job_id, None)) is not None:
            outcome = outcome._replace(attempt=newer)
        self._outbox[queue].append(outcome)
        self._outbox_ready.set()

    # Storing outcomes

    async def _flush_loop(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            try:
                await self._flush()
            except Exception:
                # The outcomes went back to the outbox: were this loop to end, no job
                # would be acked again and every one would run twice.
                logger.exception("Storing outcomes failed; trying again in %.0fs", BROKEN_PAUSE)
                self._outbox_ready.set()
                await asyncio.sleep(BROKEN_PAUSE)

    async def _flush(self, give_up_after: float | None = None) -> int:
        """Write every outcome waiting in the outbox, riding out Redis outages. Returns how
        many were given up on (``give_up_after`` seconds of outage)."""
        deadline = None if give_up_after is None else time.monotonic() + give_up_after
        while self._outbox:
            queue, outcomes = next(iter(self._outbox.items()))
            del self._outbox[queue]
            try:
                await self._reports.write()  # a job's last reports before its end
                stopped = await self._queues[queue].ack(
                    self.id, outcomes, self.result_ttl_ms, CANCELLED_AFTER_FAILURE
                )
                self._outage.ok()
            except BaseException as e:
                # Whatever stopped this ack (an outage, a cancelled flush at shutdown), the
                # outcomes wait for the next; the ACK script may safely see them twice.
                self._outbox[queue][:0] = outcomes
                if not isinstance(e, REDIS_ERRORS):
                    raise
                if deadline is not None and time.monotonic() > deadline:
                    unwritten = sum(map(len, self._outbox.values()))
                    logger.error("Gave up writing %d outcomes; their jobs will run again",
                                 unwritten)  # fmt: skip
                    return unwritten
                await self._outage.failed(e)
                continue
            if self._settling:
                self._settle(outcomes, stopped)
            for job_id in stopped:
                logger.warning("Job %s cancelled by an operator: its attempt failed before "
                               "it could be stopped, and it is not retried", job_id)  # fmt: skip
                await self._report_stopped(queue, job_id)
        return 0

    async def _report_stopped(self, queue: str, job_id: str) -> None:
        """task_finished for a job the ACK ended instead of retrying it: its attempt was
        reported as one to retry, and the job's end must be heard like any other."""
        if signals.unheard(task_finished, self._sender, ERROR):
            return
        try:
            fields = await self._queues[queue].ajob(job_id)
        except REDIS_ERRORS as e:
            logger.debug("Job %s ended unreported: %s", job_id, e)
            return
        if fields:
            await self._signal(task_finished, parse(job_id, fields, self.alias))

    # Leases: heartbeats, reaping, release

    async def _beat_loop(self) -> None:
        """A heartbeat every lease / 4. One that fails is tried again within a second, not a
        quarter lease later: the lease runs on meanwhile. One that Redis is slow to take
        was held up like everyone's, so missing heartbeats are in doubt for a while."""
        pause = self.lease / 4
        while True:
            await asyncio.sleep(pause * (0.9 + random.random() / 5))
            sent = time.monotonic()
            try:
                await self._heartbeat()
            except REDIS_ERRORS as e:
                self._outage.noted(e)
                pause = BEAT_RETRY
                continue
            except Exception:
                logger.exception("The heartbeat failed; trying again in %.1fs", BEAT_RETRY)
                pause = BEAT_RETRY
                continue
            took = time.monotonic() - sent
            if took > self.lease / 8:
                self._outage.stalled(took)
            self._outage.ok()
            pause = max(self.lease / 4 - took, 0)

    async def _heartbeat(self) -> None:
        info = {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": self.queues,
            "weights": self.weights,
            "strict": self.strict,
            "concurrency": self.concurrency,
            "in_flight": len(self._running),
            "processed": self.processed,
            "started_at": self.started_at,
            "seen_at": time.time(),
            # the worst lag of the event loop over the last minute (seconds; None: unmeasured)
            "loop_lag": None if self._watchdog is None else round(self._watchdog.worst(), 4),
            "failed": self._tally.failed,
            "rss": process.rss(),
            "quiet": self.quiet,
        }
        self._beat_since = time.monotonic()
        try:
            stored = await self.broker.heartbeat(self.id, orjson.dumps(info), self.lease_ms)
        finally:
            self._beat_since = None
        self._beat_at = time.monotonic()
        if stored == self._out_of_memory:  # a change
            self._out_of_memory = not stored
            if stored:
                logger.warning("Redis takes writes again (it was out of memory)")
            else:
                logger.error(
                    "Redis is out of memory (maxmemory with noeviction): it refuses "
                    "enqueues; this worker keeps its leases and runs its jobs meanwhile"
                )

    def _sure_of_heartbeats(self) -> bool:
        """Whether a missing heartbeat now means its worker is gone: no outage or stall of
        late, and this worker's own heartbeat got through lately and is not held up."""
        now = time.monotonic()
        held_up = self._beat_since is not None and now - self._beat_since > self.lease / 8
        return self._outage.trusted() and not held_up and now - self._beat_at < self.lease / 2

    async def _reap(self) -> None:
        """Hand the jobs of workers that stopped heartbeating to the queue again."""
        lost = error_json(
            class_path(WorkerLost),
            "The worker running this job stopped heartbeating (killed, crashed or cut off). "
            "Such attempts count: a job that takes its worker down on every attempt is "
            "dead-lettered after max_attempts.",
        )
        for queue in self._queues.values():
            if not self._sure_of_heartbeats():
                return
            for worker_id in await queue.dead_workers():
                if worker_id == self.id or not self._sure_of_heartbeats():
                    continue
                requeued = await queue.requeue(worker_id, "lost", lost)
                if self._meter is not None:
                    self._meter.lost(queue.name, requeued.tasks_back, requeued.tasks_dead)
                logger.warning(
                    "Worker %s is gone: %d of its jobs requeued, %d dead-lettered (out of "
                    "attempts)", worker_id, requeued.back, requeued.dead,
                )  # fmt: skip

    async def _recount(self) -> None:
        for queue in self._queues.values():
            if mended := await queue.flow.recount():
                logger.warning("Queue %s: the running counts of %d limit groups did not match "
                               "their leases; mended", queue.name, mended)  # fmt: skip

    async def _cancel_requested(self) -> None:
        """Stop the running jobs an operator cancelled (``jobs cancel``). A sync job's
        thread cannot be stopped: it runs on, but its outcome is the cancellation. A job
        whose attempt is over is left alone: the ACK of its outcome answers the request."""
        if not self._attempting:
            return
        for queue in self._queues.values():
            for job_id in await queue.cancel_requests():
                task = self._running.get(job_id)
                if job_id in self._attempting and task and job_id not in self._cancelled:
                    logger.warning("Job %s cancelled by an operator while running", job_id)
                    self._cancelled.add(job_id)
                    task.cancel()

    async def _release_strays(self) -> None:
        """Put back the jobs this worker holds leases on but never received: their FETCH ran
        in Redis but its reply was lost. Its heartbeat would otherwise keep them forever."""
        known = set(self._running)
        known.update(o.job_id for outcomes in self._outbox.values() for o in outcomes)
        waiter = self._waiter  # a wait that has leased jobs the fetch loop has yet to start
        if waiter is not None and waiter.done() and not waiter.cancelled():
            if waiter.exception() is None and (fetched := waiter.result()) is not None:
                known.update(lease.id for lease in fetched.leases)
        now = time.monotonic()
        for queue in self._queues.values():
            unknown = await queue.leased(self.id) - known
            for job_id in list(self._strays):
                if queue_of(job_id) == queue.name and job_id not in unknown:
                    del self._strays[job_id]  # it arrived, or was acked meanwhile
            stale = [i for i in unknown if now - self._strays.setdefault(i, now) > STRAY_AFTER]
            if stale:
                requeued = await queue.requeue(self.id, "released", ids=stale)
                logger.warning("Released %d leases whose fetch reply was lost", requeued.back)
                for job_id in stale:
                    del self._strays[job_id]

    async def _report(self) -> None:
        """Carry out an operator's order ("quiet", or "stop" as SIGTERM), then write what
        this worker's jobs did (protocol/history.py). The order first: a Redis that refuses
        writes (out of memory) still hands it over (GETDEL may not grow memory)."""
        order = await self.broker.take_order(self.id)
        if order is not None:
            self.order(order)
        await self._write_history()

    async def _write_history(self) -> None:
        """Write the tally. Redis refusing writes (out of memory, say) is no outage: taken
        for one, it would put every heartbeat in doubt, and a dead worker's jobs would wait
        for the end of it. Said once; the tally waits, within bounds, until Redis takes it."""
        try:
            await history.write(self.broker, self._tally)
        except REDIS_ERRORS as e:
            if not refuses_writes(e):
                raise
            if not self._history_refused:
                self._history_refused = True
                logger.warning("Redis refuses writes (%s): this worker's figures for the "
                               "dashboard wait until it takes them", e)  # fmt: skip
            if dropped := self._tally.bound():
                logger.warning("Dropped the figures of %d attempts Redis refused", dropped)
            return
        self._history_refused = False

    def order(self, order: str) -> None:
        """Carry out an operator's ``order``: "quiet" (fetch no more jobs, finish those
        running, live on until stopped) or "stop" (as SIGTERM)."""
        if order not in ORDERS:
            logger.error("Ignored an order this worker does not know: %r", order)
        elif order == "stop":
            logger.info("Stopping at an operator's order")
            self.stop()
        elif not self.quiet:
            logger.info("Quiet at an operator's order: no new jobs; %d running finish",
                        len(self._running))  # fmt: skip
            self.quiet = True
            self._room.set()

    async def _quiet_wait(self) -> None:
        """Quiet: let a pending wait end (it cannot be cut short: see ``_end_wait``) and
        put back, uncounted, what its FETCH leased; then fetch nothing until the worker
        stops."""
        stopping = asyncio.create_task(self._stopping.wait())
        waiter = self._waiter
        try:
            await asyncio.wait({stopping, *([waiter] if waiter else [])},
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            stopping.cancel()
        if waiter is None or not waiter.done():
            return
        self._waiter, self._reserved = None, (0, 0)
        fetched = None if waiter.cancelled() else waiter.result()
        if fetched is not None and fetched.leases:
            ids = [lease.id for lease in fetched.leases]
            await self._quietly(self._queues[self.queues[0]].requeue(self.id, "released", ids=ids))

    def _tally_attempt(self, call: Call, lease: Lease, kind: OutcomeKind, ran: float) -> None:
        if kind == OutcomeKind.DEFERRED:
            return  # not an attempt
        wait = None
        if lease.attempt == 1 and lease.started_ms is not None and lease.enqueued_ms is not None:
            wait = max(lease.started_ms - lease.enqueued_ms, 0)
        failed = kind in (OutcomeKind.FAILED, OutcomeKind.FATAL)
        self._tally.add(call.task.module_path, failed, ran, wait)

    async def _relay(self) -> None:
        assert self._relay_outbox is not None
        if moved := await self._relay_outbox():
            logger.info("Moved %d job(s) from the outbox to Redis", moved)

    async def _drain(self) -> None:
        """Give in-flight jobs the grace period (a second signal cuts it short), then cancel
        what is left: those jobs stay leased until ``_release`` puts them back."""
        if not self._running:
            return
        jobs = asyncio.create_task(asyncio.wait(list(self._running.values())))
        forced = asyncio.create_task(self._forced.wait())
        await asyncio.wait({jobs, forced}, timeout=self.grace, return_when=asyncio.FIRST_COMPLETED)
        jobs.cancel()  # stops waiting only: asyncio.wait never cancels what it waits for
        forced.cancel()
        if self._running:
            logger.warning("Releasing %d unfinished jobs back to the queue", len(self._running))
            for t in list(self._running.values()):
                t.cancel()
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def _release(self) -> None:
        for queue in self._queues.values():
            await self._quietly(queue.requeue(self.id, "released"))

    # Helpers

    def _background(self, loop: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run one of the worker's background loops, each of which handles its own errors;
        should one end with an error all the same, it is logged with its traceback at once,
        not found at shutdown."""
        task = asyncio.create_task(loop)
        task.add_done_callback(_log_death)
        return task

    async def _every(
        self, seconds: float, action: Callable[[], Awaitable[None]], first: float | None = None
    ) -> None:
        """``action`` every ``seconds`` (jittered) for the worker's life. An error is logged
        and the next turn comes as usual: a heartbeat must not stop for one bad turn, or
        other workers would take this live worker's jobs and run them twice."""
        await asyncio.sleep(seconds if first is None else first)
        while True:
            try:
                await action()
            except REDIS_ERRORS as e:  # an outage, logged once by whoever meets it first
                self._outage.noted(e)
            except Exception:
                logger.exception("%s failed; trying again in %.1fs", action.__name__, seconds)
            await asyncio.sleep(seconds * (0.9 + random.random() / 5))

    async def _retrying(self, action: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping.is_set():
            try:
                await action()
                self._outage.ok()
                return
            except REDIS_ERRORS as e:
                await self._outage.failed(e)

    @staticmethod
    async def _quietly(awaitable: Awaitable[object]) -> None:
        try:
            await awaitable
        except REDIS_ERRORS as e:
            logger.error("Could not reach Redis on the way out (%s)", e)


def _earlier(due_in: int | None, other: int | None) -> int | None:
    """The sooner of two times until a delayed job is due (ms; None: none is)."""
    if due_in is None or other is None:
        return other if due_in is None else due_in
    return min(due_in, other)


def _log_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        logger.error("A background loop of the worker stopped: %r", error, exc_info=error)
