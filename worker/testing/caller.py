"""Jobs run in the caller's thread: where a test's own database connection (and, under a
``TestCase``, its transaction) is.

A worker gives each job a thread of its own (runtime/attempt.py's ``Slots``), so that
every job has a database connection of its own, as every request does. A test needs the
opposite: the job must see what the test wrote, in its transaction. ``CallerSlots`` are
slots whose work goes where the caller's own ``sync_to_async`` calls go: a sync task's
body, and an async task's ORM calls, run in the thread that called ``async_to_sync`` (the
test's, in a sync test) or in asgiref's one sync thread (in an async test), as the code
under test's own calls do.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async

from worker.runtime.attempt import Slot, Slots


class _Unchanged(ThreadSensitiveContext):
    """A context that changes nothing: the job's ``sync_to_async`` calls go where the
    caller's go."""

    async def __aenter__(self) -> _Unchanged:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class CallerSlot(Slot):
    """A slot without a thread of its own (see the module's docstring)."""

    def __init__(self) -> None:
        ThreadPoolExecutor.__init__(self, max_workers=1)  # never used: it starts no thread
        self.used = False
        self.last = None
        self.context = None

    def own_context(self) -> ThreadSensitiveContext:
        return _Unchanged()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        done: Future[Any] = Future()
        done.set_running_or_notify_cancel()
        call = asyncio.ensure_future(sync_to_async(fn)(*args, **kwargs))
        call.add_done_callback(lambda ended: _settle(done, ended))
        self.last = done
        return done

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run a sync job's body: ``submit``'s sync_to_async carries the job's context
        there, and hands asgiref's Locals on to the caller's thread with it (Django's
        TASKS backends among them: the job enqueues into the test's backend). Run in a
        copy of the context taken here instead, as a worker's slot does, the Locals would
        be the event loop thread's, which asgiref hides from any other."""
        return self.submit(fn, *args, **kwargs)


def _settle(future: Future[Any], ended: asyncio.Future[Any]) -> None:
    if ended.cancelled():
        future.cancel()
    elif (error := ended.exception()) is not None:
        future.set_exception(error)
    else:
        future.set_result(ended.result())


class CallerSlots(Slots):
    """Slots for a worker (or an in-process backend) that runs jobs in the caller's thread.
    Nothing to give back, nor to close: the caller's connections are the caller's."""

    def take(self) -> Slot:
        return CallerSlot()

    async def give_back(self, slot: Slot) -> None:
        return None

    def give_back_from_thread(
        self, slot: Slot, loop: asyncio.AbstractEventLoop, _: object = None
    ) -> None:
        return None

    def shutdown(self) -> None:
        return None


def run_sync[**P, T](
    function: Callable[P, Coroutine[Any, Any, T]], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run ``function(*args, **kwargs)`` to its end from sync code, its sync work in this
    thread.

    From a thread that runs an event loop (sync code called straight from an async
    function), that loop cannot run it meanwhile: it runs on a loop of its own in another
    thread, with this context (its TASKS backends), and its sync work in asgiref's."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if not running:  # (outside the except: a job's failure must not chain to this error)
        return async_to_sync(function)(*args, **kwargs)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="jobs") as pool:
        return pool.submit(context.run, asyncio.run, function(*args, **kwargs)).result()
