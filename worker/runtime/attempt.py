"""Running one attempt of a job: its thread, its database connections, its timeout, its
outcome."""

from __future__ import annotations

import asyncio
import inspect
import random
import traceback
import warnings
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextvars import ContextVar, Token, copy_context
from functools import cache, partial
from typing import TYPE_CHECKING, Any, cast

from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from django.db import close_old_connections
from django.tasks import TaskContext, TaskResultStatus
from django.utils.json import normalize_json

from worker.db.pool import explained
from worker.exceptions import PermanentFailure, RateLimited
from worker.protocol.message import Call
from worker.protocol.records import (
    Lease,
    Outcome,
    OutcomeKind,
    class_path,
    error_json,
    json_of,
)
from worker.results import from_ms, make_result

if TYPE_CHECKING:
    from worker.task import Result


def _asgiref_internals_present() -> bool:
    """Whether asgiref still routes thread-sensitive calls by the two class attributes a
    Slot registers with (not public API)."""
    return isinstance(
        getattr(SyncToAsync, "thread_sensitive_context", None), ContextVar
    ) and hasattr(getattr(SyncToAsync, "context_to_thread_executor", None), "__setitem__")


def _context_takes_executor() -> bool:
    # ThreadSensitiveContext(executor=...) is public since asgiref 3.13.
    return "executor" in inspect.signature(ThreadSensitiveContext).parameters


def _choose() -> bool:
    """Whether Slots register with asgiref's internals: if not, says so with a warning."""
    if _asgiref_internals_present():
        return True
    if _takes_executor:
        where = "still in the job's own thread"
    else:
        where = (
            "in a thread asgiref starts per job: database connections are not reused, and "
            "close only when garbage-collected"
        )
    warnings.warn(
        "asgiref's SyncToAsync.thread_sensitive_context or context_to_thread_executor is "
        "missing or changed: each async job runs inside a ThreadSensitiveContext of its own "
        f"(slower), its sync_to_async calls {where}",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


# Decided once: entering a job's context is on every async job's path, and registering once
# makes it one ContextVar.set.
_takes_executor = _context_takes_executor()
_registered = _choose()


def thread_context(executor: Executor) -> ThreadSensitiveContext:
    """asgiref's context manager sending the sync_to_async calls made inside it to
    ``executor`` (one thread), even inside another ThreadSensitiveContext or an async_to_sync
    call. An asgiref before 3.13 cannot: a context of its own then, which takes effect only
    where no other is entered already."""
    if _takes_executor:
        return ThreadSensitiveContext(executor=executor)
    return ThreadSensitiveContext()


class Slot(ThreadPoolExecutor):
    """The thread of one in-flight job. An async job's sync_to_async calls (the async ORM)
    and a sync job's body run here, so every job has its own database connection, as every
    request has under Django's ASGI handler."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="job")
        self.used = False
        self.last: Future[Any] | None = None  # the latest work given to the thread
        # What ThreadSensitiveContext(executor=self) registers with asgiref on each entry,
        # registered once: sync_to_async finds this executor by the context of the job.
        self.context: ThreadSensitiveContext | None = None
        if _registered:
            self.context = ThreadSensitiveContext()
            SyncToAsync.context_to_thread_executor[self.context] = self

    def enter(self) -> Token[ThreadSensitiveContext]:
        """Send the current job's sync_to_async calls here, until the token is reset (the
        job runs in an asyncio task of its own: tasks it starts inherit the slot).
        Registered slots only."""
        assert self.context is not None
        return SyncToAsync.thread_sensitive_context.set(self.context)

    def own_context(self) -> ThreadSensitiveContext:
        """For one async job, when the slot is not registered: asgiref's public context
        manager, sending the job's sync_to_async calls here if this asgiref can."""
        return thread_context(self)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if not self.used:
            # Like request_started: drop connections that went stale since the last job.
            self.used = True
            self.last = super().submit(_after_closing_old_connections, fn, *args, **kwargs)
        else:
            self.last = super().submit(fn, *args, **kwargs)
        return self.last

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run a sync job's body here, in a copy of the job's context (its log fields, its
        trace span), as sync_to_async does."""
        return self.submit(copy_context().run, fn, *args, **kwargs)

    @property
    def busy(self) -> bool:
        """Whether the thread still runs work of a job that is over (timed out, cancelled)."""
        return self.last is not None and not self.last.done()


def _after_closing_old_connections(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    close_old_connections()
    return fn(*args, **kwargs)


class Slots:
    """Idle job threads, reused across jobs (threads start only when a job needs one)."""

    def __init__(self) -> None:
        self._idle: list[Slot] = []

    def take(self) -> Slot:
        return self._idle.pop() if self._idle else Slot()

    async def give_back(self, slot: Slot) -> None:
        if slot.used:
            # Like request_finished: close connections past CONN_MAX_AGE or in a bad state.
            await asyncio.get_running_loop().run_in_executor(slot, close_old_connections)
            slot.used = False
        self._idle.append(slot)

    def give_back_from_thread(
        self, slot: Slot, loop: asyncio.AbstractEventLoop, _: object = None
    ) -> None:
        """For a thread that outlived its job: runs in that thread when it finally ends."""
        close_old_connections()
        slot.used = False
        try:
            loop.call_soon_threadsafe(self._idle.append, slot)
        except RuntimeError:  # the worker has stopped meanwhile
            slot.shutdown(wait=False)

    def shutdown(self) -> None:
        """End the idle threads (at once: they are idle). Busy ones end with their work."""
        for slot in self._idle:
            slot.shutdown(wait=True)
        self._idle.clear()


def failure(
    exc: BaseException, lease: Lease, kind: OutcomeKind = OutcomeKind.FATAL, delay: float = 0.0
) -> Outcome:
    """The outcome of an attempt that raised ``exc``."""
    text = "".join(traceback.format_exception(exc))
    error = error_json(class_path(exc), text)
    return Outcome(lease.id, lease.attempt, kind, error, int(delay * 1000))


def running_result(call: Call, lease: Lease, backend: str) -> Result:
    return make_result(
        call.task,
        lease.id,
        TaskResultStatus.RUNNING,
        call.args,
        call.kwargs,
        backend,
        enqueued_at=from_ms(lease.enqueued_ms),
        started_at=from_ms(lease.started_ms),
        last_attempted_at=from_ms(lease.attempted_ms),
        worker_ids=lease.worker_ids,
    )


async def run(
    call: Call, result: Result | None, slots: Slots, context: TaskContext[Any, Any] | None = None
) -> tuple[Any, BaseException | None]:
    """Run the task once: (return value, None) or (None, the error). ``result`` (or the
    ``context`` made of it) is needed for a task that takes the context. Cancellation (a
    forced shutdown, or an operator's cancel) propagates, for the caller to tell apart."""
    task = call.task
    if task.takes_context:  # the caller built ``result`` for it
        args = [context or TaskContext(task_result=cast("Result", result)), *call.args]
    else:
        args = call.args
    deadline = asyncio.timeout(task.timeout)
    slot = slots.take()
    entered: Token[ThreadSensitiveContext] | None = None
    try:
        if _is_async(task.func):
            if slot.context is None:
                async with slot.own_context(), deadline:
                    return await task.func(*args, **call.kwargs), None
            entered = slot.enter()
            async with deadline:
                return await task.func(*args, **call.kwargs), None
        future = slot.call(task.func, *args, **call.kwargs)
        async with deadline:
            return await asyncio.shield(asyncio.wrap_future(future)), None
    except asyncio.CancelledError:
        raise
    except BaseException as e:
        if isinstance(e, TimeoutError) and deadline.expired():
            error = TimeoutError(f"{task.module_path} ran over its timeout of {task.timeout}s")
            return None, error.with_traceback(e.__traceback__)
        return None, explained(e)  # the database pool's timeout, said plainly
    finally:
        if entered is not None:
            SyncToAsync.thread_sensitive_context.reset(entered)
        if slot.busy:
            # A thread cannot be stopped (a sync job, or an async one's ORM call, over its
            # timeout): it runs on, and the slot is reused once it ends.
            assert slot.last is not None  # busy means it has work
            slot.last.add_done_callback(
                partial(slots.give_back_from_thread, slot, asyncio.get_running_loop())
            )
        else:
            await slots.give_back(slot)


@cache
def _is_async(func: Callable[..., Any]) -> bool:
    """Whether a task's function is a coroutine function (asked once per function: the
    question costs more than the rest of a no-op job's start)."""
    return asyncio.iscoroutinefunction(func)


def outcome_of(
    call: Call, lease: Lease, value: Any, error: BaseException | None
) -> tuple[Outcome, BaseException | None]:
    """What to store for an attempt (its value, or its error with whether to retry), and
    the error it ended with, if any."""
    if error is None:
        try:
            body = b"null" if value is None else json_of(normalize_json(value))
            return Outcome(lease.id, lease.attempt, OutcomeKind.SUCCEEDED, body), None
        except (TypeError, ValueError) as e:
            error = TypeError(f"{call.task.module_path} returned a value JSON cannot hold ({e})")
            return failure(error, lease), error
    if isinstance(error, RateLimited):
        return failure(error, lease, OutcomeKind.DEFERRED, error.retry_after), error
    if isinstance(error, PermanentFailure) or lease.last_attempt:
        return failure(error, lease), error
    delay = call.task.retry_delay(lease.attempt, random.random())
    return failure(error, lease, OutcomeKind.FAILED, delay), error
