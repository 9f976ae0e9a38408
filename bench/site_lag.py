"""The event-loop delay of the site's process, measured inside it (bench/site_load.py).

A middleware starts, at a process's first request, a coroutine on its event loop that
sleeps 10 ms again and again and notes how late each wake-up is: the time any ready
callback (a request's next step) waits for the loop. Once a second it appends its notes,
``"<epoch seconds> <lag ms>"``, to a Redis list the load test reads, whatever the number of
uvicorn processes."""

from __future__ import annotations

import asyncio
import os
import time

from asgiref.sync import markcoroutinefunction
from django.conf import settings

from bench import body

TICK = 0.01
# The sampler of this process, by pid (uvicorn's worker processes are forked or spawned).
_samplers: dict[int, asyncio.Task[None]] = {}


def lag_key() -> str:
    return f"{os.environ.get('TASKS_PREFIX', 'tasks')}:bench:site-lag"


async def _sample() -> None:
    loop = asyncio.get_running_loop()
    notes: list[str] = []
    flushed = loop.time()
    while True:
        before = loop.time()
        await asyncio.sleep(TICK)
        now = loop.time()
        notes.append(f"{time.time():.3f} {max(0.0, now - before - TICK) * 1000:.3f}")
        if now - flushed >= 1.0:
            await body.client(settings.REDIS_URL).rpush(lag_key(), *notes)
            notes.clear()
            flushed = now


class LoopLagMiddleware:
    async_capable = True
    sync_capable = False

    def __init__(self, get_response):
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request):
        if os.getpid() not in _samplers:
            _samplers[os.getpid()] = asyncio.get_running_loop().create_task(_sample())
        return await self.get_response(request)
