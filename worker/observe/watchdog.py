"""The event-loop watchdog: how late the worker's loop runs, and which job holds it.

A callback on the loop notes the time every INTERVAL; how late each turn comes is a lag
sample (to the metrics, and the worst of the last minute to the heartbeat). A thread of its
own reads those notes. While the loop is late, it looks every fifth of the threshold at the
asyncio task the loop runs and where the loop thread stands (its innermost frame and the
instruction in it, ``sys._current_frames``). Once the loop is late by the whole threshold,
a task current at every look for half the threshold holds the loop (a sync call inside
``async def``) if the loop thread spent most of that time on the CPU (a computation), or
stood at the same instruction at every look without using the CPU (a blocking call: a
sleep, I/O, a lock) while the process's other threads did not keep a CPU busy, as the
threads' CPU clocks tell (``pthread_getcpuclockid``). The watchdog then logs one WARNING
naming its job and the line of the job's own code where the loop thread stands, and names
that job no more until the loop turns again. While the loop is on time, the thread only
wakes once a turn, to see that it is.

The CPU clocks keep a job that merely waits for the GIL from being named: threads running
CPU-bound code (sync jobs) starve the loop thread of it, so that the loop is late and a
polite job may be current at several looks, even at the same instruction (where the GIL was
taken from it), off the CPU; but those threads are busy on the CPU meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import site
import sys
import sysconfig
import threading
import time
import traceback
from collections import deque
from types import FrameType
from typing import NamedTuple

import worker
from worker.observe import context, metrics
from worker.observe.context import RECORD_ATTRIBUTE, Job

logger = logging.getLogger("worker.watchdog")

# Seconds the loop may be blocked before the job blocking it is named (the default of
# OPTIONS["loop_lag_threshold"] and of runworker --loop-lag-threshold).
THRESHOLD = 0.1
# Seconds between two turns of the loop's callback.
INTERVAL = 0.05
# Seconds over which the heartbeat's worst lag is kept.
WINDOW = 60.0
# The smallest threshold: shorter lateness is the callback's own jitter.
MIN_THRESHOLD = 0.01
# The shares of its time on the CPU that make the loop thread busy with the current task
# (computing), or idle at one spot (blocked: a sleep, I/O, a lock, or waiting for the GIL);
# the other threads, busy so (half a CPU's time or more), may be what holds the GIL.
BUSY = 0.5
IDLE = 0.05


class WorstLag:
    """The worst lag sample of the last WINDOW seconds (the worst of each second kept)."""

    def __init__(self) -> None:
        self._seconds: deque[list[float]] = deque()  # [second, worst lag in it]

    def add(self, now: float, lag: float) -> None:
        second = float(int(now))
        if self._seconds and self._seconds[-1][0] == second:
            self._seconds[-1][1] = max(self._seconds[-1][1], lag)
        else:
            self._seconds.append([second, lag])
            self._forget(now)

    def worst(self, now: float) -> float:
        self._forget(now)
        return max((lag for _, lag in self._seconds), default=0.0)

    def _forget(self, now: float) -> None:
        while self._seconds and self._seconds[0][0] <= now - WINDOW:
            self._seconds.popleft()


class Spot(NamedTuple):
    """Where the loop thread stood at a look: the asyncio task the loop ran, the thread's
    innermost frame and the instruction in it. Equal spots: the thread has not moved (a
    frame compares by identity, and lives on while held here)."""

    task: asyncio.Task[object]
    frame: FrameType
    instruction: int


class Clocks(NamedTuple):
    """CPU seconds used so far: by the loop thread, and by the process's other threads
    (the watchdog's own left out)."""

    loop: float
    others: float


class Held:
    """What the watchdog saw of the loop thread over the looks of one stall: since when
    (and since what CPU times) it was in the same task at every look, and at the same
    spot."""

    def __init__(self, spot: Spot, now: float, clocks: Clocks | None) -> None:
        self.spot = spot
        self.in_task = self.still = (now, clocks)

    def moved(self, spot: Spot, now: float, clocks: Clocks | None) -> None:
        """The look at ``now`` found the loop thread at ``spot``."""
        if spot.task is not self.spot.task:
            self.in_task = (now, clocks)
        if spot != self.spot:
            self.still = (now, clocks)
        self.spot = spot

    def holds(self, now: float, clocks: Clocks | None, window: float) -> bool:
        """Whether the task has held the loop thread for ``window`` seconds: kept it busy on
        the CPU, or blocked it at one spot, off the CPU, while the other threads left the
        GIL free (``clocks``: the CPU times now; None where they cannot be read, and then a
        thread at one spot is blocked).

        A thread waiting for the GIL stands at one spot too (the same one each time, where
        a loop's back edge gives it up), off the CPU: the GIL is then held by other
        threads, busy on the CPU."""
        since, then = self.in_task
        if now - since < window:
            return False
        if clocks is not None and then is not None:
            if clocks.loop - then.loop >= (now - since) * BUSY:
                return True
        since, then = self.still
        spent = now - since
        if spent < window:
            return False
        if clocks is None or then is None:
            return True
        idle = clocks.loop - then.loop <= spent * IDLE
        return idle and clocks.others - then.others < spent * BUSY


class Watchdog:
    """Measures the running loop's lag from ``start()`` to ``stop()``, and names the jobs
    that block it longer than ``threshold`` seconds."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._worst = WorstLag()
        self._beat = 0.0  # when the callback last ran (monotonic)
        self._handle: asyncio.TimerHandle | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._cpu_clock: int | None = None  # the loop thread's CPU clock, where there is one

    def start(self) -> Watchdog:
        """Start watching the running loop (call it on the loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._cpu_clock = _thread_cpu_clock()
        self._beat = time.monotonic()
        self._handle = self._loop.call_later(INTERVAL, self._tick)
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def worst(self) -> float:
        """The worst lag of the last minute (seconds)."""
        return self._worst.worst(time.monotonic())

    def _tick(self) -> None:
        now = time.monotonic()
        lag = max(0.0, now - self._beat - INTERVAL)
        self._beat = now
        self._worst.add(now, lag)
        metrics.observe_loop_lag(lag)
        assert self._loop is not None
        self._handle = self._loop.call_later(INTERVAL, self._tick)

    # The watchdog's thread

    def _watch(self) -> None:
        threshold = self.threshold
        look = threshold / 5
        wait = look
        stall = 0.0  # the beat the loop has not turned since
        named: set[Job | asyncio.Task[object]] = set()  # in this stall
        held: Held | None = None  # what the looks saw of the loop thread in a task
        while not self._stopping.wait(wait):
            beat, now = self._beat, time.monotonic()
            late = now - beat - INTERVAL
            if late < look:  # on time: look again when it would be late
                held, wait = None, beat + INTERVAL + look - now
                continue
            wait = look
            if beat != stall:
                stall, named, held = beat, set(), None
            spot, clocks = self._spot(), self._clocks()
            if spot is None:
                held = None
            elif held is None:
                held = Held(spot, now, clocks)
            else:
                held.moved(spot, now, clocks)
                if late >= threshold and held.holds(now, clocks, threshold / 2):
                    self._name(spot, late, named)
            del spot

    def _spot(self) -> Spot | None:
        """Where the loop thread stands, if in an asyncio task."""
        assert self._loop is not None
        task = asyncio.current_task(self._loop)
        frame = sys._current_frames().get(self._loop_thread)
        if task is None or frame is None or asyncio.current_task(self._loop) is not task:
            return None  # between tasks, or it moved on meanwhile
        return Spot(task, frame, frame.f_lasti)

    def _clocks(self) -> Clocks | None:
        """The CPU times now, where the loop thread's can be read (call it on the
        watchdog's thread)."""
        if self._cpu_clock is None:
            return None
        try:
            loop = time.clock_gettime(self._cpu_clock)
        except OSError:  # the thread is gone: the worker is stopping
            return None
        return Clocks(loop, time.process_time() - loop - time.thread_time())

    def _name(self, spot: Spot, late: float, named: set[Job | asyncio.Task[object]]) -> None:
        """Log the WARNING for the spot's task, unless its job was named in this stall
        already."""
        task = spot.task
        job = context.of(task.get_context())
        if (job or task) in named:
            return
        named.add(job or task)
        frames = _frames_of(task, spot.frame)
        where = _own_code(frames)
        if job is None:
            culprit = f"asyncio task {task.get_name()!r} (no job)"
        else:
            culprit = f"job {job.id} (task {job.task}, queue {job.queue}, attempt {job.attempt})"
        stack = "".join(traceback.StackSummary.extract((f, f.f_lineno) for f in frames).format())
        logger.warning(
            "Event loop blocked for %.2fs so far by %s, at %s:%d in %s: a call that does not "
            "await holds every job of this process. The loop thread's stack (innermost last):"
            "\n%s",
            late, culprit, where.f_code.co_filename, where.f_lineno, where.f_code.co_name,
            stack.rstrip(),
            extra={RECORD_ATTRIBUTE: job},
        )  # fmt: skip


def _thread_cpu_clock() -> int | None:
    """The calling thread's CPU clock (POSIX threads; not on macOS nor Windows)."""
    try:
        return time.pthread_getcpuclockid(threading.get_ident())
    except (AttributeError, OSError):
        return None


def _frames_of(task: asyncio.Task[object], innermost: FrameType) -> list[FrameType]:
    """The loop thread's frames from the task's coroutine inwards (outermost first): those
    of the event loop itself, below it, tell nothing."""
    outer = getattr(task.get_coro(), "cr_frame", None)
    frames: list[FrameType] = []
    frame: FrameType | None = innermost
    while frame is not None:
        frames.append(frame)
        if frame is outer:
            break
        frame = frame.f_back
    frames.reverse()
    return frames


def _library_dirs() -> tuple[str, ...]:
    """Where code that is not the project's lives: the standard library (asyncio
    included), installed packages, and this engine."""
    paths = sysconfig.get_paths()
    dirs = {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]}
    dirs.update(site.getsitepackages())
    dirs.add(os.path.dirname(worker.__file__))
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs)


_LIBRARY = _library_dirs()


def _own_code(frames: list[FrameType]) -> FrameType:
    """The innermost frame of the project's own code (a job calling a library that blocks
    is stuck at its own call), else the innermost frame."""
    for frame in reversed(frames):
        name = frame.f_code.co_filename
        if not name.startswith("<") and not os.path.realpath(name).startswith(_LIBRARY):
            return frame
    return frames[-1]
