"""Management commands whose ``handle`` is ``async def``.

    from worker.commands import AsyncCommand

    class Command(AsyncCommand):
        async def handle(self, *args, **options):
            async for order in Order.objects.filter(...):
                ...

``AsyncCommand`` keeps everything of Django's ``BaseCommand`` (arguments, ``--verbosity``,
system checks, ``CommandError`` and its exit status, ``call_command``) and adds ``--loop``.
From the command line, or ``call_command`` in sync code, its coroutine runs on an event
loop of its own, of the kind the worker uses (uvloop unless ``--loop asyncio``); SIGINT and
SIGTERM cancel it (exit status 130 and 143) and the database connections its ORM calls
opened are closed at its end. From async code, ``await acall_command(...)`` runs it on the
caller's loop. ``run`` is the loop-and-signals part, shared with ``runworker``.
See docs/async-django.md.
"""

from __future__ import annotations

import asyncio
import contextvars
import signal
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, cast

from asgiref.sync import async_to_sync, sync_to_async
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from worker.runtime.attempt import thread_context
from worker.runtime.loops import CHOICES, loop_factory

__all__ = ["AsyncCommand", "Interrupted", "acall_command", "run"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Set by acall_command: the command's coroutine runs on the caller's event loop.
_on_callers_loop: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "worker_on_callers_loop", default=False
)


class Interrupted(CommandError):
    """SIGINT or SIGTERM cancelled the command's coroutine. Its exit status is 128 plus the
    signal's number (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a process a
    signal stopped."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(f"{name}: the command was cancelled", returncode=128 + signum)


def run[T](
    main: Coroutine[Any, Any, T],
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    on_signal: Callable[[], object] | None = None,
) -> T:
    """Run ``main`` on a new event loop made by ``factory`` (None: asyncio's; see
    worker.runtime.loops.loop_factory) and return what it returns. In the main thread,
    SIGINT and SIGTERM call ``on_signal`` each time they come; without one, the first
    cancels ``main`` (Interrupted is raised when it has ended) and a second acts as if
    nothing handled it (Ctrl-C twice stops a command stuck in its cleanup)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_watching_signals(main, on_signal))


async def _watching_signals[T](
    main: Coroutine[Any, Any, T], on_signal: Callable[[], object] | None
) -> T:
    if threading.current_thread() is not threading.main_thread():
        return await main  # signals reach the main thread only
    loop = asyncio.get_running_loop()
    this = asyncio.current_task()
    received: list[int] = []

    def cancel(signum: int) -> None:
        received.append(signum)
        _remove_handlers(loop)
        assert this is not None  # a coroutine the runner runs has its task
        this.cancel()

    for signum in STOP_SIGNALS:
        if on_signal is None:
            loop.add_signal_handler(signum, cancel, signum)
        else:
            loop.add_signal_handler(signum, on_signal)
    try:
        result = await main
    except asyncio.CancelledError:
        if received:
            raise Interrupted(received[0]) from None
        raise
    finally:
        _remove_handlers(loop)
    if received:  # the coroutine swallowed its cancellation: stopped by a signal all the same
        raise Interrupted(received[0])
    return result


def _remove_handlers(loop: asyncio.AbstractEventLoop) -> None:
    for signum in STOP_SIGNALS:
        loop.remove_signal_handler(signum)


class AsyncCommand(BaseCommand):
    """A management command whose ``handle`` is a coroutine function (see the module's
    docstring). Its coroutine's return value, a string or None, is written to stdout as
    BaseCommand writes ``handle``'s."""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument(
            "--loop", choices=CHOICES, default="auto",
            help="event loop: uvloop if installed (auto, the default), uvloop or asyncio",
        )  # fmt: skip
        return parser

    def execute(self, *args: Any, **options: Any) -> Any:
        # BaseCommand.execute (colours, stdout and stderr, checks, writing the output) calls
        # self.handle for a value: for the length of this call, that name is the function
        # that runs the coroutine and returns its value.
        coroutine_function = cast("Callable[..., Coroutine[Any, Any, Any]]", self.handle)
        self.__dict__["handle"] = partial(
            self._run_handle, coroutine_function, options.get("loop", "auto")
        )
        try:
            return super().execute(*args, **options)
        finally:
            del self.__dict__["handle"]

    def _run_handle(
        self,
        coroutine_function: Callable[..., Coroutine[Any, Any, Any]],
        loop: str,
        /,
        *args: Any,
        **options: Any,
    ) -> Any:
        if _loop_running_here():
            raise CommandError(
                f"{type(self).__module__} is an AsyncCommand called with call_command() from "
                "a running event loop, which it would block: use "
                "`await worker.commands.acall_command(...)` in async code"
            )
        if _on_callers_loop.get():
            # asgiref runs it on the loop that awaits acall_command; its ORM calls come back
            # to this thread, where the caller's own sync_to_async calls run.
            return async_to_sync(coroutine_function)(*args, **options)
        try:
            factory = loop_factory(loop)
        except ValueError as e:
            raise CommandError(f"--loop: {e}") from None
        return run(_closing_connections(coroutine_function(*args, **options)), factory)


async def _closing_connections[T](main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` with its sync_to_async calls (the async ORM) in a thread of its own, and
    close the database connections they opened when it ends, however it ends.

    The thread is the command's even when call_command runs inside another thread-sensitive
    context (a sync view under ASGI, ``sync_to_async(call_command)``, a command calling
    another): that context's thread is the one blocked here, running this loop, and the
    calls sent to it would wait for ever."""
    thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="command")
    try:
        async with thread_context(thread):
            try:
                return await main
            finally:
                await sync_to_async(connections.close_all)()
    finally:
        # Not waited for: after a second Ctrl-C, the call it runs may be one that hangs.
        thread.shutdown(wait=False)


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def acall_command(command_name: str | BaseCommand, *args: Any, **options: Any) -> Any:
    """``call_command`` for async code. An AsyncCommand's coroutine runs on this event loop
    (its ``--loop`` is not used, its signals are the caller's), its ORM calls on the
    connections this code's own sync_to_async calls use; its parsing and checks, or a
    plain command's whole ``handle``, run in a thread (sync_to_async)."""
    token = _on_callers_loop.set(True)
    try:
        return await sync_to_async(call_command)(command_name, *args, **options)
    finally:
        _on_callers_loop.reset(token)
