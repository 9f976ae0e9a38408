"""Which event loop a process runs: uvloop when it is installed, as uvicorn chooses.

On this engine's hot paths (a job's round trips, one enqueue) the loop's own work is a
large share of the time, and uvloop does it in C: see docs/performance.md for the figures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

CHOICES = ("auto", "uvloop", "asyncio")


def loop_factory(choice: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """For ``asyncio.run(..., loop_factory=...)``: uvloop's loop, or None for asyncio's.
    "auto" takes uvloop if it can be imported; "uvloop" insists on it."""
    if choice not in CHOICES:
        raise ValueError(f"event loop {choice!r}: expected one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ValueError("event loop 'uvloop': uvloop is not installed") from None
        return None
    return uvloop.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
