"""The TASKS backend: Django's enqueue and get_result on top of the Redis protocol.

    TASKS = {"default": {
        "BACKEND": "worker.backend.RedisBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": {"url": "redis://127.0.0.1:6379/0"},
    }}

See docs/configuration.md for every option. A job's path: ``aenqueue`` checks and encodes
the call (protocol/message.py), its queue stores it (protocol/queue.py), a worker leases,
runs and acks it (runtime/worker.py, runtime/attempt.py).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from django.tasks import TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued

from worker import config, pending, periodic
from worker.exceptions import BrokerUnavailable
from worker.observe import tracing
from worker.protocol import Broker
from worker.protocol.connection import (
    REDIS_DOWN,
    forget_tries,
    refuses_writes,
    surely_unstored,
    unreachable,
)
from worker.protocol.durability import NotReplicated
from worker.protocol.enqueue import CHUNK
from worker.protocol.message import Incoming, encode, new_job
from worker.protocol.records import NewJob, now_ms
from worker.protocol.servers import embedded_url
from worker.results import from_ms, make_result, parse
from worker.runtime import signals
from worker.task import Arguments, Task, refused

if TYPE_CHECKING:
    from worker.periodic import Periodic
    from worker.protocol.queue import Queue
    from worker.runtime.worker import Worker
    from worker.task import Result

# a call checked and encoded (encode): args, kwargs, message, limit group
Encoded = tuple[list[Any], dict[str, Any], bytes, str | None]

# Jobs per script call of the async bulk enqueue: small enough that Redis stores one slice
# while the next is built, large enough that a call's fixed cost stays small.
SLICE = 200


class RedisBackend(BaseTaskBackend):
    task_class = Task
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        # Errors are kept for `manage.py check` (worker.checks) and raised at first use.
        self.options_, self.config_errors = config.read(
            alias, params, self.options, frozenset(self.queues)
        )
        self.max_payload_bytes = self.options_.max_payload_bytes
        self.result_ttl = self.options_.result_ttl
        self.lease = self.options_.lease
        self._usable_config = False  # configuration and INSTALLED_APPS found right
        self._valid: dict[tuple[Any, ...], bool] = {}  # (task, backend flags) checked already
        self._last_valid: tuple[Any, ...] | None = None

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        # Configuration errors are raised at first use, not when a task is defined (that
        # would stop `manage.py check` at the import of the tasks modules, before it reports).
        wrong = [Error(why, hint="correct the @task(...) options", obj=task.module_path,
                       id="worker.E008") for task, why in refused(self.alias)]  # fmt: skip
        return [*self.config_errors, *config.app_errors(self.alias, self.options_), *wrong]

    def schedules(self) -> list[Periodic]:
        """The project's periodic jobs whose task is this backend's (Django checked each
        task against it when the task was made), but for tasks refused for their options
        (worker.E008: `manage.py check` names them)."""
        jobs = [job for job in periodic.schedules() if job.task.backend == self.alias]
        return [job for job in jobs if job.task.refusal is None]

    def _configured(self) -> None:
        if self._usable_config:
            return
        # INSTALLED_APPS is asked once the app registry is ready (this runs at first use):
        # Django runs the backends' checks only once django.tasks is imported, which a
        # project without the worker app may not do while `manage.py check` runs.
        errors = [
            *self.config_errors,
            *(config.app_errors(self.alias, self.options_) if apps.ready else []),
        ]
        if errors:
            raise ImproperlyConfigured(
                "; ".join(f"{e.obj}: {e.msg} (HINT: {e.hint})" if e.hint else f"{e.obj}: {e.msg}"
                          for e in errors)
                + " (manage.py check lists every problem)"
            )  # fmt: skip
        self._usable_config = apps.ready

    @cached_property
    def url(self) -> str:
        """The Redis URL; the embedded server's (started on first use) when asked for."""
        self._configured()
        url = self.options_.url
        if url is None or url == config.EMBEDDED:
            folder = self.options_.embedded_dir or Path(settings.BASE_DIR) / "var" / "redis"
            return embedded_url(Path(folder))
        return url

    @cached_property
    def broker(self) -> Broker:
        """The backend's way to Redis (worker/protocol)."""
        options = self.options_
        return Broker(self.url, options.prefix, options.max_connections, options.replication())

    def worker(self, queues: list[str] | None = None, **options: Any) -> Worker:
        """A worker serving ``queues`` (default: all of the backend's) of this backend;
        ``weights`` and ``strict`` default to OPTIONS' queue_weights and strict_order."""
        from worker.runtime.worker import Worker

        chosen = list(queues or sorted(self.queues))
        if not chosen:
            raise ImproperlyConfigured(config.no_queues_error(self.alias))
        for queue in chosen:
            if error := config.queue_name_error(queue):
                raise ImproperlyConfigured(error)
        options.setdefault("weights", self.options_.queue_weights)
        options.setdefault("strict", self.options_.strict_order)
        options.setdefault("loop_lag_threshold", self.options_.loop_lag_threshold)
        if self.options_.outbox:
            from worker.outbox.relay import Relay

            options.setdefault("relay", Relay(self))
        return Worker(
            self.broker,
            chosen,
            periodic=self.schedules(),
            alias=self.alias,
            sender=type(self),
            lease=self.lease,
            result_ttl=self.result_ttl,
            max_payload_bytes=self.max_payload_bytes,
            **options,
        )

    # Tasks of this backend are made by its task_class: ours, with the engine's options.
    def validate_task(self, task: Task) -> None:  # type: ignore[override]
        # Django's checks inspect the function's signature: once per task is enough, for as
        # long as the backend's own flags stay the same (tests patch them). A task is a
        # frozen dataclass; a one-off run_after copy is checked each time.
        key = (task, self.supports_async_task, self.supports_priority, self.supports_defer,
               frozenset(self.queues), settings.USE_TZ)  # fmt: skip
        last = self._last_valid
        if last is not None and last[0] is task and last[1:] == key[1:]:
            return
        if key not in self._valid:
            _defined_after_start.setdefault(task.func, apps.ready)  # see _unknown_to_workers
            # Before Django's own check, whose message names no queue the backend has.
            if error := config.unknown_queues_error(self.alias, [task.queue_name], self.queues):
                raise InvalidTask(error)
            super().validate_task(task)
            if error := config.queue_name_error(task.queue_name):
                raise InvalidTask(error)
            if task.run_after is not None:
                return
            if len(self._valid) < 10_000:
                self._valid[key] = True
        self._last_valid = key

    def _usable(self, task: Task) -> None:
        """Raise unless jobs of ``task`` can be enqueued: the backend's configuration, the
        task as Django checks it, and the engine's options (kept for `check` when wrong)."""
        self._configured()
        self.validate_task(task)
        if task.refusal is not None:
            raise InvalidTask(task.refusal)
        if (unknown := _unknown_to_workers(task)) is not None:
            raise InvalidTask(unknown)

    def prepare(
        self, task: Task, args: Any, kwargs: Any, incoming: Incoming = (False, False)
    ) -> tuple[Result, NewJob]:
        """Check a call of ``task`` and make the job enqueuing it writes, with its result
        (``incoming``: what a workflow adds to the call, worker.protocol.message.encode)."""
        self._usable(task)
        trace = tracing.carrier()
        encoded = encode(task, args, kwargs, self.max_payload_bytes, trace, incoming)
        return self._job_for(task, *encoded)

    def _job_for(
        self, task: Task, args: list[Any], kwargs: dict[str, Any], body: bytes, limit: str | None
    ) -> tuple[Result, NewJob]:
        """The result and the job of a call that ``encode`` accepted."""
        job = new_job(task, args, kwargs, body, limit, now_ms())  # one clock reading for both
        result = make_result(task, job.id, TaskResultStatus.READY, args, kwargs, self.alias,
                             enqueued_at=from_ms(job.enqueued_ms))  # fmt: skip
        return result, job

    @tracing.sends
    def enqueue(self, task: Task, args: Any, kwargs: Any) -> Result:  # type: ignore[override]
        result, job = self.prepare(task, args, kwargs)
        if job.unique is not None and self.options_.outbox:
            from worker.outbox.relay import twin

            if (first_id := twin(self, job)) is not None:
                return self.get_result(first_id)
        if not pending.in_transaction():
            return pending.Send(self, [(result, job)]).one()
        if job.unique is not None:
            if (first := pending.unique_twin(self, job)) is not None:
                return first
            with self.reaching_redis(f"enqueue {task.module_path}"):
                first_id = self.broker.queue(job.queue).stored_twin(job)
            if first_id is not None:
                return self.get_result(first_id)
        self._after_commit([(result, job)])
        return result

    @tracing.asends
    async def aenqueue(self, task: Task, args: Any, kwargs: Any) -> Result:  # type: ignore[override]
        result, job = self.prepare(task, args, kwargs)
        if job.unique is not None and self.options_.outbox:
            from worker.outbox.relay import twin

            if (first_id := await sync_to_async(twin)(self, job)) is not None:
                return await self.aget_result(first_id)
        # The loop thread's own connection is in a transaction only if code on this thread
        # opened one (DJANGO_ALLOW_ASYNC_UNSAFE): a sync atomic() around async_to_sync is
        # another thread's connection. Then wait for its commit.
        if pending.in_transaction():
            if job.unique is not None:
                if (first := pending.unique_twin(self, job)) is not None:
                    return first
                with self.reaching_redis(f"enqueue {task.module_path}"):
                    first_id = await self.broker.queue(job.queue).astored_twin(job)
                if first_id is not None:
                    return await self.aget_result(first_id)
            self._after_commit([(result, job)])
            return result
        with self.reaching_redis(f"enqueue {task.module_path}", keyed=True):
            first_id = await self.broker.queue(job.queue).aenqueue(job)
        if first_id is not None:  # a duplicate of a unique task: the first job stands for it
            return await self.aget_result(first_id)
        if not signals.unheard(task_enqueued, type(self), logging.DEBUG):
            await signals.asend(task_enqueued, type(self), task_result=result)
        return result

    def _after_commit(self, prepared: list[tuple[Result, NewJob]]) -> None:
        """Have prepared jobs sent when the open transaction commits: written to the outbox
        in it (OPTIONS outbox), else kept in memory until then."""
        if self.options_.outbox:
            from worker.outbox import relay

            relay.write(self, prepared)
        else:
            pending.on_commit(pending.Send(self, prepared))

    def send(self, prepared: list[tuple[Result, NewJob]]) -> Result | None:
        """Store prepared jobs (of one task) now; for one unique job whose call is enqueued
        already, the first job's result."""
        task = prepared[0][0].task
        if len(prepared) == 1:
            result, job = prepared[0]
            with self.reaching_redis(f"enqueue {task.module_path}", keyed=True):
                first = self.broker.queue(job.queue).enqueue(job)
            if first is not None:
                return self.get_result(first)
        else:
            results = [result for result, _ in prepared]
            stored: list[Result] = []  # those Redis confirmed, should a later chunk fail
            unconfirmed: list[Result] = []  # a chunk stored that no replica confirmed
            reaching = self.reaching_redis(f"enqueue {task.module_path}", stored, len(prepared),
                                           unconfirmed=unconfirmed)  # fmt: skip
            with reaching:
                try:
                    self.broker.queue(task.queue_name).enqueue_many(
                        [job for _, job in prepared],
                        lambda n: stored.extend(results[len(stored) : n]),
                    )
                except NotReplicated:  # the chunk after those confirmed stops the rest
                    unconfirmed += results[len(stored) : len(stored) + CHUNK]
                    raise
        for result, _ in prepared:
            task_enqueued.send(type(self), task_result=result)
        return None

    # Bulk enqueue: many calls of one task in few round trips. Not Django's API (it has
    # none); reached as task.enqueue_many / task.aenqueue_many (worker.task.Task).

    def _encode_many(self, task: Task, calls: Iterable[Arguments]) -> list[Encoded]:
        """Every call checked and encoded before any is sent: bad input enqueues none."""
        self._usable(task)
        limit = self.max_payload_bytes
        trace = tracing.carrier()  # one enqueue span for them all
        return [encode(task, args, kwargs, limit, trace) for args, kwargs in calls]

    @staticmethod
    def _one_job_per_key(task: Task) -> None:
        if task.idempotency_key is not None:
            raise InvalidTask(
                "an idempotency_key stands for one job: enqueue each call with a key of its own"
            )

    @tracing.sends
    def enqueue_many(self, task: Task, calls: Iterable[Arguments]) -> list[Result]:
        self._one_job_per_key(task)
        if task.unique_for is not None:  # each call must be checked against the others
            return [self.enqueue(task, args, kwargs) for args, kwargs in calls]
        prepared = [self._job_for(task, *call) for call in self._encode_many(task, calls)]
        if prepared:
            if pending.in_transaction():
                self._after_commit(prepared)
            else:
                pending.Send(self, prepared)()
        return [result for result, _ in prepared]

    @tracing.asends
    async def aenqueue_many(self, task: Task, calls: Iterable[Arguments]) -> list[Result]:
        self._one_job_per_key(task)
        if task.unique_for is not None:
            return [await self.aenqueue(task, args, kwargs) for args, kwargs in calls]
        encoded = self._encode_many(task, calls)
        if pending.in_transaction():
            prepared = [self._job_for(task, *call) for call in encoded]
            if prepared:
                self._after_commit(prepared)
            return [result for result, _ in prepared]
        results = await self._build_and_send(task, encoded)
        if not signals.unheard(task_enqueued, type(self), logging.DEBUG):
            for result in results:
                await signals.asend(task_enqueued, type(self), task_result=result)
        return results

    async def _build_and_send(self, task: Task, encoded: list[Encoded]) -> list[Result]:
        """Build the jobs a slice at a time, each slice sent as soon as it is built: Redis
        stores one slice while the next is built. A slice's jobs are let go once sent:
        fewer objects outlive it for the GC to scan."""
        queue = self.broker.queue(task.queue_name)
        slices: list[list[Result]] = []
        sending: list[asyncio.Future[None]] = []
        try:
            for start in range(0, len(encoded), SLICE):
                results, jobs = [], []
                for call in encoded[start : start + SLICE]:
                    result, job = self._job_for(task, *call)
                    results.append(result)
                    jobs.append(job)
                slices.append(results)
                sending.append(asyncio.ensure_future(queue.aenqueue_many(jobs)))
                await asyncio.sleep(0)  # its request goes out before the next slice is built
            outcomes = await asyncio.gather(*sending, return_exceptions=True)
        finally:
            for sent in sending:  # given up (cancelled): none is left to finish unheard
                sent.cancel()
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            ended = list(zip(slices, outcomes, strict=True))
            stored = [r for rs, o in ended if o is None for r in rs]
            unconfirmed = [r for rs, o in ended if isinstance(o, NotReplicated) for r in rs]
            # An error that leaves jobs' fate unknown says more than a replica's silence.
            error = next((e for e in errors if not isinstance(e, NotReplicated)), errors[0])
            with self.reaching_redis(f"enqueue {task.module_path}", stored, len(encoded),
                                     unconfirmed=unconfirmed):  # fmt: skip
                raise error
        return [result for results in slices for result in results]

    def get_result(self, result_id: str) -> Result:
        if (waiting := pending.result(self, result_id)) is not None:
            return waiting
        queue = self._queue_of(result_id)
        with self.reaching_redis(f"get result {result_id}", sends=False):
            fields = queue.job(result_id)
        if not fields and self.options_.outbox:
            from worker.outbox.relay import fields_of

            fields = fields_of(result_id)
            if not fields:  # moved to Redis between the two reads?
                with self.reaching_redis(f"get result {result_id}", sends=False):
                    fields = queue.job(result_id)
        return parse(result_id, fields, self.alias)

    async def aget_result(self, result_id: str) -> Result:
        if pending.in_transaction() and (waiting := pending.result(self, result_id)) is not None:
            return waiting
        queue = self._queue_of(result_id)
        with self.reaching_redis(f"get result {result_id}", sends=False):
            fields = await queue.ajob(result_id)
        if not fields and self.options_.outbox:
            from worker.outbox.relay import afields_of

            fields = await afields_of(result_id)
            if not fields:
                with self.reaching_redis(f"get result {result_id}", sends=False):
                    fields = await queue.ajob(result_id)
        return parse(result_id, fields, self.alias)

    def _queue_of(self, result_id: str) -> Queue:
        try:
            return self.broker.queue_for(result_id)
        except ValueError as e:
            raise TaskResultDoesNotExist(str(e)) from None

    def reaching_redis(
        self, what: str, stored: list[Result] | None = None, of: int = 1, sends: bool = True,
        *, keyed: bool = False, unconfirmed: list[Result] | None = None,
    ) -> _Reaching:  # fmt: skip
        """Turns a lost connection, or Redis refusing writes, into BrokerUnavailable naming
        ``what`` was being done. For an enqueue (``sends``) it says whether Redis may have
        stored the job anyway; for a bulk one cut off midway, ``stored`` are the results of
        the jobs Redis confirmed, out of ``of``, and ``unconfirmed`` those Redis stored but
        no replica confirmed (durability "replicated"). ``keyed``: one job, which an
        idempotency key can make a repeat of store once."""
        unconfirmed = [] if unconfirmed is None else unconfirmed  # the caller fills its own
        return _Reaching(self, what, stored, of, sends, keyed, unconfirmed)


# A task's function -> whether the task was first made after Django had set up (its first
# sight by validate_task, which Django calls as it makes a task; using() copies share it).
_defined_after_start: dict[Any, bool] = {}


def _unknown_to_workers(task: Task) -> str | None:
    """Why a worker would not know ``task``, or None. A worker knows the tasks defined while
    Django sets up: each installed app's ``tasks`` module (imported by the worker app), what
    those import, and what the apps' models and ready() import. It never imports a module a
    job names. A task defined later (in a module only a view, a command or a shell imports)
    would be dead-lettered as unknown. Not asked under Django's test environment, where jobs
    are run by the test's own process, which knows every task it imported."""
    if not _defined_after_start.get(task.func) or _under_tests():
        return None
    module = task.func.__module__
    app = apps.get_containing_app_config(module)
    home = f"{app.name}.tasks" if app else "the tasks module of an app in INSTALLED_APPS"
    return (
        f"{task.module_path} is defined in {module}, which Django does not import as it "
        f"starts: a worker would not know the task. Define it in {home}, or import it "
        "there (workers import each installed app's tasks module at start, never the module "
        "a job names)"
    )


def _under_tests() -> bool:
    """Whether Django's test environment is set up (django.test.utils's own record of it:
    its test runner and pytest-django set it up)."""
    test_utils = sys.modules.get("django.test.utils")
    state = getattr(test_utils, "_TestState", None)
    return getattr(state, "saved_data", None) is not None


class _Reaching:
    """See ``RedisBackend.reaching_redis``. (A class, not a generator: entered on every
    enqueue, where a generator costs a few microseconds.)"""

    __slots__ = ("backend", "keyed", "of", "sends", "stored", "unconfirmed", "what")

    def __init__(
        self, backend: RedisBackend, what: str, stored: list[Result] | None, of: int, sends: bool,
        keyed: bool, unconfirmed: list[Result],
    ) -> None:  # fmt: skip
        self.backend, self.what, self.stored, self.of, self.sends = backend, what, stored, of, sends
        self.keyed, self.unconfirmed = keyed, unconfirmed

    def __enter__(self) -> None:
        forget_tries()

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: Any) -> None:
        if error is None:
            return
        if isinstance(error, NotReplicated):  # stored on the master only: the caller decides
            raise self._not_replicated(error) from error
        if refuses_writes(error):
            where = f"{self.what}: Redis refused it ({error})"
        elif isinstance(error, REDIS_DOWN):
            where = f"{self.what}: {unreachable(self.backend.url, error)}"
        else:
            return
        sure = surely_unstored(error)  # else a request went out: its fate is unknown
        if self.stored is not None:
            self.stored += self.unconfirmed  # (stored on the master, all the same)
        if not self.sends:
            raise BrokerUnavailable(where) from error
        if self.stored is None:
            if sure:
                raise BrokerUnavailable(f"{where}; nothing was stored") from error
            raise BrokerUnavailable(
                f"{where}; no reply came, so Redis may have stored the job: enqueue it again "
                "with the same idempotency_key (task.using(idempotency_key=...)) to be safe",
                maybe_stored=True,
            ) from error
        others = "were not" if sure else "may have been"
        raise BrokerUnavailable(
            f"{where}; {len(self.stored)} of {self.of} jobs were stored (their results are "
            f"the error's .enqueued), the others {others}",
            enqueued=self.stored,
            maybe_stored=not sure,
            unconfirmed=self.unconfirmed,
        ) from error

    def _not_replicated(self, error: NotReplicated) -> BrokerUnavailable:
        if self.keyed:
            return BrokerUnavailable(
                f"{self.what}: {error}; it is stored on the master: do not enqueue it again, "
                "unless with the idempotency_key it was sent with "
                "(task.using(idempotency_key=...)), which stores it once",
                maybe_stored=True,
            )
        stored = [*(self.stored or []), *self.unconfirmed]
        return BrokerUnavailable(
            f"{self.what}: {error}; its jobs are stored on the master (their results are the "
            "error's .enqueued, those no replica confirmed its .unconfirmed): do not send "
            "them again, which would store them twice",
            enqueued=stored,
            maybe_stored=True,
            unconfirmed=self.unconfirmed,
        )
