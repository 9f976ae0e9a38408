"""The TASKS backend: Django's enqueue/get_result on top of the Redis protocol.

    TASKS = {"default": {
        "BACKEND": "worker.backend.RedisBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": {"url": "redis://127.0.0.1:6379/0"},  # None: embedded redis-server
    }}

See docs/configuration.md for every option.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import transaction
from django.tasks import TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from redis.commands.core import Script

from worker import message, scripts, signals
from worker.batching import ENQUEUE, EnqueueBatcher, chunks
from worker.broker import (
    Broker,
    Keys,
    NewJob,
    enqueue_arguments,
    enqueue_many_arguments,
    now_ms,
)
from worker.connection import async_client, redacted, sync_client
from worker.exceptions import BrokerUnavailable
from worker.fastredis import FastRedis
from worker.redis_server import embedded_url
from worker.results import from_ms, make_result, parse
from worker.task import Arguments, Task

QUEUE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
# Jobs per script call of the async bulk enqueue: small enough that Redis stores one slice
# while the next is built, large enough that a call's fixed cost stays small.
SLICE = 200

DEFAULTS: dict[str, Any] = {
    "url": None,  # redis:// or unix:// URL; None starts/joins the embedded server
    "embedded_dir": None,  # where the embedded server lives; default BASE_DIR/var/redis
    "prefix": "tasks",  # of every key, so several projects can share one Redis
    "max_payload_bytes": 1024 * 1024,
    "result_ttl": 24 * 3600,  # seconds a finished job's result is kept
    "lease": 10.0,  # seconds without a heartbeat before a worker's jobs are handed on
    "max_connections": 50,  # per process and event loop; more callers wait for one
}


@dataclass(frozen=True, slots=True)
class SyncClients:
    """The process's blocking Redis client, for sync code, and its enqueue scripts."""

    redis: redis.Redis
    enqueue: Script
    enqueue_many: Script


@dataclass(frozen=True, slots=True)
class LoopClients:
    """An event loop's Redis clients: redis.asyncio for most, the lean pipelined
    connection for the hot path, and the batcher of concurrent enqueues that uses it."""

    redis: aioredis.Redis
    fast: FastRedis
    batcher: EnqueueBatcher


class RedisBackend(BaseTaskBackend):
    task_class = Task
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        unknown = set(self.options) - set(DEFAULTS)
        if unknown:
            raise InvalidTask(f"TASKS[{alias!r}]['OPTIONS']: unknown option(s) {sorted(unknown)}")
        self.config = {**DEFAULTS, **self.options}
        for queue in self.queues:
            self.check_queue_name(queue)
        self.keys = Keys(self.config["prefix"])
        self.max_payload_bytes = int(self.config["max_payload_bytes"])
        self.result_ttl = float(self.config["result_ttl"])
        self.lease = float(self.config["lease"])
        self._url: str | None = self.config["url"]
        self._sync_clients: SyncClients | None = None
        self._aclients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple, LoopClients]
        ] = weakref.WeakKeyDictionary()
        self._identity = (alias, self._url, self.keys.prefix)  # of this backend's clients
        self._valid_tasks: set[Task] = set()  # checked already
        self._last_valid: Task | None = None

    @staticmethod
    def check_queue_name(queue: str) -> None:
        if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
            raise InvalidTask(
                f"queue name {queue!r} must be 1-100 letters, digits, '_', '.' or '-'"
            )

    @property
    def url(self) -> str:
        if self._url is None:
            folder = self.config["embedded_dir"] or Path(settings.BASE_DIR) / "var" / "redis"
            self._url = embedded_url(Path(folder))
        return self._url

    def client(self) -> redis.Redis:
        return self._sync().redis

    def _sync(self) -> SyncClients:
        if self._sync_clients is None:
            client = sync_client(self.url, int(self.config["max_connections"]))
            self._sync_clients = SyncClients(
                client,
                client.register_script(scripts.ENQUEUE),
                client.register_script(scripts.ENQUEUE_MANY),
            )
        return self._sync_clients

    def aclient(self) -> aioredis.Redis:
        return self.loop_clients().redis

    def broker(self) -> Broker:
        """The worker's side of the protocol, on this event loop's clients."""
        clients = self.loop_clients()
        return Broker(clients.redis, clients.fast, self.keys)

    def loop_clients(self) -> LoopClients:
        """This event loop's clients (an asyncio client belongs to the loop that made it).
        They hang on the loop itself where it allows, so a short-lived loop (async_to_sync
        in a sync view) takes its connections with it when it goes; a mapping keyed by the
        loop could not let go, its values holding the loop through their connections."""
        loop = asyncio.get_running_loop()
        per_loop = getattr(loop, "_worker_clients", None)
        if per_loop is None:
            try:
                per_loop = loop._worker_clients = {}  # type: ignore[attr-defined]
            except AttributeError:  # a loop without attributes (uvloop): kept for good
                per_loop = self._aclients.setdefault(loop, {})
        found = per_loop.get(self._identity)
        if found is None:
            fast = FastRedis(self.url)
            found = per_loop[self._identity] = LoopClients(
                redis=async_client(self.url, int(self.config["max_connections"])),
                fast=fast,
                batcher=EnqueueBatcher(fast, self.keys),
            )
        return found

    def validate_task(self, task: Task) -> None:
        # Django's checks inspect the function's signature: once per task is enough (a
        # task is a frozen dataclass; a one-off run_after copy is checked each time). The
        # last one is known by identity: hashing a task hashes all its fields.
        if task is self._last_valid:
            return
        if task not in self._valid_tasks:
            super().validate_task(task)
            self.check_queue_name(task.queue_name)
            if task.run_after is not None:
                return
            if len(self._valid_tasks) < 10_000:
                self._valid_tasks.add(task)
        self._last_valid = task

    def _reaching_redis(
        self, what: str, stored: list[TaskResult] | None = None, of: int = 1
    ) -> _Reaching:
        """Turns a lost connection into BrokerUnavailable; for a bulk enqueue cut off midway,
        ``stored`` are the results of the jobs Redis confirmed, out of ``of``."""
        return _Reaching(self, what, stored, of)

    def prepare(self, task: Task, args: Any, kwargs: Any) -> tuple[TaskResult, NewJob]:
        """Check a call of ``task`` and make what enqueuing it writes."""
        self.validate_task(task)
        return self._new_job(task, args, kwargs)

    def _new_job(self, task: Task, args: Any, kwargs: Any) -> tuple[TaskResult, NewJob]:
        return self._job_for(task, *message.encode(task, args, kwargs, self.max_payload_bytes))

    def _job_for(
        self, task: Task, args: list, kwargs: dict, body: bytes
    ) -> tuple[TaskResult, NewJob]:
        """The result and the job of a call that message.encode accepted."""
        enqueued_ms = now_ms()  # one clock reading: the result says what Redis stores
        job_id = message.new_job_id(task.queue_name, enqueued_ms)
        run_after = task.run_after
        result = make_result(
            task,
            job_id,
            TaskResultStatus.READY,
            args,
            kwargs,
            self.alias,
            enqueued_at=from_ms(enqueued_ms),
        )
        unique = None
        if task.unique_for is not None:
            unique = (message.fingerprint(task, args, kwargs), int(task.unique_for * 1000))
        job = NewJob(
            id=job_id,
            queue=task.queue_name,
            body=body,
            priority=task.priority,
            max_attempts=task.max_attempts,
            run_after_ms=int(run_after.timestamp() * 1000) if run_after else None,
            enqueued_ms=enqueued_ms,
            unique=unique,
        )
        return result, job

    @staticmethod
    def _on_commit(send: Callable[[], object]) -> bool:
        """Defer ``send`` to the commit of the open transaction, if there is one."""
        if not _in_transaction():
            return False
        transaction.on_commit(send, robust=False)
        return True

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        result, job = self.prepare(task, args, kwargs)
        send = partial(self._send, result, job)
        return result if self._on_commit(send) else send()

    async def aenqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        result, job = self.prepare(task, args, kwargs)
        # The loop thread's connection is only in a transaction when sync code opened one
        # around this call (e.g. async_to_sync inside atomic()); then wait for its commit.
        if self._on_commit(partial(self._send, result, job)):
            return result
        clients = self.loop_clients()
        with self._reaching_redis(f"enqueue {task.module_path}"):
            if job.unique is None:
                await clients.batcher.send(job)
            elif (
                first := await clients.fast.run(ENQUEUE, *enqueue_arguments(self.keys, job))
            ) is not None:
                # A duplicate of a unique task: the first job stands for it.
                return await self.aget_result(first.decode())
        if not signals.unheard(task_enqueued, type(self), logging.DEBUG):
            await signals.asend(task_enqueued, type(self), task_result=result)
        return result

    def _send(self, result: TaskResult, job: NewJob) -> TaskResult:
        with self._reaching_redis(f"enqueue {result.task.module_path}"):
            first = self._sync().enqueue(*enqueue_arguments(self.keys, job))
        if first is not None:
            return self.get_result(first.decode())
        task_enqueued.send(type(self), task_result=result)
        return result

    # Bulk enqueue: many calls of one task in few round trips. Not Django's API (it has
    # none); reached as task.enqueue_many / task.aenqueue_many (worker.task.Task).

    def _encode_many(self, task: Task, calls: Iterable[Arguments]) -> list[tuple]:
        """Every call checked and encoded (message.encode) before any is sent: bad input
        enqueues none of them."""
        self.validate_task(task)
        limit = self.max_payload_bytes
        return [message.encode(task, args, kwargs, limit) for args, kwargs in calls]

    def enqueue_many(self, task: Task, calls: Iterable[Arguments]) -> list[TaskResult]:
        if task.unique_for is not None:  # each call must be checked against the others
            return [self.enqueue(task, args, kwargs) for args, kwargs in calls]
        prepared = [self._job_for(task, *call) for call in self._encode_many(task, calls)]
        send = partial(self._send_many, task, prepared)
        if not self._on_commit(send):
            send()
        return [result for result, _ in prepared]

    async def aenqueue_many(self, task: Task, calls: Iterable[Arguments]) -> list[TaskResult]:
        if task.unique_for is not None:
            return [await self.aenqueue(task, args, kwargs) for args, kwargs in calls]
        encoded = self._encode_many(task, calls)
        if _in_transaction():
            prepared = [self._job_for(task, *call) for call in encoded]
            self._on_commit(partial(self._send_many, task, prepared))
            return [result for result, _ in prepared]
        results = await self._build_and_send(task, encoded)
        if not signals.unheard(task_enqueued, type(self), logging.DEBUG):
            for result in results:
                await signals.asend(task_enqueued, type(self), task_result=result)
        return results

    async def _build_and_send(self, task: Task, encoded: list[tuple]) -> list[TaskResult]:
        """Build the jobs a slice at a time, each slice sent as soon as it is built: Redis
        stores one slice while the next is built (a few microseconds a job each side). A
        slice's jobs are let go once sent: fewer objects outlive it for the GC to scan."""
        batcher = self.loop_clients().batcher
        slices: list[list[TaskResult]] = []
        sending: list[asyncio.Task] = []
        try:
            for start in range(0, len(encoded), SLICE):
                results, jobs = [], []
                for call in encoded[start : start + SLICE]:
                    result, job = self._job_for(task, *call)
                    results.append(result)
                    jobs.append(job)
                slices.append(results)
                sending.append(asyncio.ensure_future(batcher.store(jobs)))
                await asyncio.sleep(0)  # its request goes out before the next slice is built
            outcomes = await asyncio.gather(*sending, return_exceptions=True)
        finally:
            for sent in sending:  # given up (cancelled): none is left to finish unheard
                sent.cancel()
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            stored = [r for rs, o in zip(slices, outcomes, strict=True) if o is None for r in rs]
            with self._reaching_redis(f"enqueue {task.module_path}", stored, len(encoded)):
                raise errors[0]
        return [result for results in slices for result in results]

    def _send_many(self, task: Task, prepared: list[tuple[TaskResult, NewJob]]) -> None:
        enqueue_many = self._sync().enqueue_many
        with self._reaching_redis(f"enqueue {task.module_path}"):
            for chunk in chunks([job for _, job in prepared]):
                enqueue_many(*enqueue_many_arguments(self.keys, task.queue_name, chunk))
        for result, _ in prepared:
            task_enqueued.send(type(self), task_result=result)

    def get_result(self, result_id: str) -> TaskResult:
        key = self._job_key(result_id)
        with self._reaching_redis(f"get result {result_id}"):
            fields = self.client().hgetall(key)
        return parse(result_id, fields, self.alias)

    async def aget_result(self, result_id: str) -> TaskResult:
        key = self._job_key(result_id)
        with self._reaching_redis(f"get result {result_id}"):
            fields = await self.aclient().hgetall(key)
        return parse(result_id, fields, self.alias)

    def _job_key(self, result_id: str) -> str:
        try:
            return self.keys.job(result_id)
        except ValueError as e:
            raise TaskResultDoesNotExist(str(e)) from None


def _in_transaction() -> bool:
    return transaction.get_connection().in_atomic_block


class _Reaching:
    """Turns a lost connection into BrokerUnavailable, naming what was being done. (A class,
    not a generator: entered on every enqueue, where a generator costs a few microseconds.)"""

    __slots__ = ("backend", "of", "stored", "what")

    def __init__(
        self, backend: RedisBackend, what: str, stored: list[TaskResult] | None, of: int
    ) -> None:
        self.backend, self.what, self.stored, self.of = backend, what, stored, of

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: Any) -> None:
        if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
            where = f"{self.what}: Redis at {redacted(self.backend.url)} is unreachable ({error})"
            if self.stored is None:
                raise BrokerUnavailable(f"{where}; nothing was sent") from error
            raise BrokerUnavailable(
                f"{where}; {len(self.stored)} of {self.of} jobs were stored (their results "
                "are the error's .enqueued), the others may not have been",
                enqueued=self.stored,
            ) from error
