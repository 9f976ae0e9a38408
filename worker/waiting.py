"""Waiting for jobs to end, woken by Redis as their outcome is stored: no polling.

    result = await send_report.aenqueue(report.pk)
    await afinished(result, timeout=30)        # or finished(...) from sync code
    result.status, result.return_value

    done = await aall_finished(results, timeout=60)   # every one, or TimeoutError
    first = await afirst_finished(results, timeout=60)  # the first to end

The results given are refreshed in place (as ``refresh()`` does) and returned. A wait that
outlasts ``timeout`` seconds raises ``TimeoutError``; the jobs go on. Waiters on one event
loop share one Redis connection (worker/protocol/listener.py). See docs/waiting.md.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from worker.exceptions import BrokerUnavailable
from worker.protocol.listener import AGAIN

if TYPE_CHECKING:
    from worker.backend import RedisBackend
    from worker.task import Result

# Seconds before a waiter reads again after a read that failed (Redis unreachable): the
# listener also says when it is back, this covers a read that failed on its own.
READ_AGAIN_AFTER = 0.5


async def afinished(result: Result, timeout: float) -> Result:
    """Wait until the job of ``result`` has ended (SUCCESSFUL or FAILED)."""
    await _wait([result], timeout, every=True)
    return result


async def aall_finished(results: Iterable[Result], timeout: float) -> list[Result]:
    """Wait until every job of ``results`` has ended."""
    results = list(results)
    await _wait(results, timeout, every=True)
    return results


async def afirst_finished(results: Iterable[Result], timeout: float) -> Result:
    """Wait until one job of ``results`` has ended; that job's result (the first given,
    of those ended when the wait ends)."""
    results = list(results)
    await _wait(results, timeout, every=False)
    return next(result for result in results if result.is_finished)


def finished(result: Result, timeout: float) -> Result:
    """``afinished`` from sync code."""
    _on_own_loop([result], timeout, True)
    return result


def all_finished(results: Iterable[Result], timeout: float) -> list[Result]:
    results = list(results)
    _on_own_loop(results, timeout, True)
    return results


def first_finished(results: Iterable[Result], timeout: float) -> Result:
    results = list(results)
    _on_own_loop(results, timeout, False)
    return next(result for result in results if result.is_finished)


def _on_own_loop(results: list[Result], timeout: float, every: bool) -> None:
    on_own_loop(lambda: _wait(results, timeout, every), _backend(results) if results else None)


def on_own_loop[T](wait: Callable[[], Awaitable[T]], backend: RedisBackend | None) -> T:
    """``wait()`` on an event loop of its own, in a thread of its own (this thread may run
    a loop already), whose connections to ``backend``'s Redis close with it."""

    async def closing() -> T:
        try:
            return await wait()
        finally:
            if backend is not None:
                await backend.broker.close_loop()

    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="waiting") as pool:
        return pool.submit(context.run, asyncio.run, closing()).result()


async def _wait(results: list[Result], timeout: float, every: bool) -> None:
    if not results:
        return
    if _ended(results, every):
        return
    backend = _backend(results)
    if backend is None:  # an in-process backend (worker.testing): its jobs end at run_jobs
        await _read(results)
        if not _ended(results, every):
            raise TimeoutError(_not_ended(results, timeout))
        return
    listener = backend.broker.loop().listener
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            async with listener.watching({r.id for r in results}) as events:
                todo = [r for r in results if not r.is_finished]
                while True:
                    if not await _read(todo):
                        loop.call_later(READ_AGAIN_AFTER, events.put_nowait, AGAIN)
                    if _ended(results, every):
                        return
                    kind, job_id = await events.get()
                    if kind == "end":
                        todo = [r for r in results if r.id == job_id]
                    elif kind == AGAIN[0]:
                        todo = [r for r in results if not r.is_finished]
                    else:  # progress: not what this waits for
                        todo = []
    except TimeoutError:
        raise TimeoutError(_not_ended(results, timeout)) from None


async def _read(results: list[Result]) -> bool:
    """Refresh ``results``; False if Redis could not be read (they are read again)."""
    try:
        for result in results:
            await result.arefresh()
    except BrokerUnavailable:
        return False
    return True


def _ended(results: list[Result], every: bool) -> bool:
    ended = [result.is_finished for result in results]
    return all(ended) if every else any(ended)


def _backend(results: list[Result]) -> RedisBackend | None:
    from worker.backend import RedisBackend

    backends = {result.backend for result in results}
    if len(backends) > 1:
        raise ValueError(f"results of several backends ({', '.join(sorted(backends))}): wait "
                         "for each backend's apart")  # fmt: skip
    backend = results[0].task.get_backend()
    return backend if isinstance(backend, RedisBackend) else None


def _not_ended(results: list[Result], timeout: float) -> str:
    open_ = [result.id for result in results if not result.is_finished]
    shown = ", ".join(open_[:5]) + (f" and {len(open_) - 5} more" if len(open_) > 5 else "")
    return f"{len(open_)} job(s) not finished after {timeout}s: {shown}"
