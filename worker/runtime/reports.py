"""A worker's buffer of the progress and metadata its running jobs report
(worker/context.py): the latest of each job's reports, written to Redis at most every
INTERVAL, all of a queue's in one script call, and before any outcome (a job's last
metadata is stored before its end is).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import TYPE_CHECKING

from worker.protocol.connection import REDIS_ERRORS
from worker.protocol.keys import by_queue

if TYPE_CHECKING:
    from worker.protocol.broker import Broker

logger = logging.getLogger("worker")

# Seconds between two writes of the reports: a handler reporting in a tight loop costs
# Redis a few commands a second, not one per report.
INTERVAL = 0.25

Report = tuple[bytes | None, bytes | None]  # (progress JSON, metadata JSON); None: unchanged


class Reports:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._loop: asyncio.AbstractEventLoop | None = None  # the worker's, once it runs
        self._lock = threading.Lock()  # handlers of sync jobs report from their threads
        self._pending: dict[str, Report] = {}
        self._armed = False  # a write is due within INTERVAL
        self._writing: asyncio.Task[None] | None = None
        # One write at a time: an outcome's flush waits for a timed write in flight, whose
        # reports may be the job's last (they go before its end).
        self._write_lock = asyncio.Lock()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def report(self, job_id: str, progress: bytes | None, metadata: bytes | None) -> None:
        with self._lock:
            before = self._pending.get(job_id, (None, None))
            self._pending[job_id] = (progress or before[0], metadata or before[1])
            if self._armed or self._loop is None:
                return
            self._armed = True
        if _on_loop(self._loop):
            self._arm()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed: the worker is gone
                self._loop.call_soon_threadsafe(self._arm)

    def of_attempt(self, job_id: str) -> AttemptReports:
        """The reporter of one attempt, closed when the attempt ends."""
        return AttemptReports(self, job_id)

    def _arm(self) -> None:
        assert self._loop is not None
        self._loop.call_later(INTERVAL, self._write_soon)

    def _write_soon(self) -> None:
        assert self._loop is not None
        self._writing = self._loop.create_task(self._write_quietly())

    async def _write_quietly(self) -> None:
        try:
            await self.write()
        except REDIS_ERRORS as e:  # kept for the next write (the outcomes' at the latest)
            logger.debug("Progress reports not written yet: %s", e)

    async def write(self) -> None:
        """Write what waits now; on a Redis error it waits for the next write, newer
        reports of the same jobs taking its place."""
        async with self._write_lock:
            await self._write()

    async def _write(self) -> None:
        with self._lock:
            taken, self._pending = self._pending, {}
            self._armed = False
        if not taken:
            return
        try:
            for queue, ids in by_queue(taken).items():
                reports = [(i, taken[i][0] or b"", taken[i][1] or b"") for i in ids]
                await self._broker.queue(queue).report(reports)
        except BaseException:
            with self._lock:
                for job_id, (progress, metadata) in taken.items():
                    newer = self._pending.get(job_id, (None, None))
                    self._pending[job_id] = (newer[0] or progress, newer[1] or metadata)
            raise


class AttemptReports:
    """One attempt's reporter (a worker.context.Reporter): what a sync handler that ran over
    its timeout, its thread still running, reports after the attempt ended is dropped, not
    written over the job's outcome or its next attempt."""

    __slots__ = ("_job_id", "_reports", "closed")

    def __init__(self, reports: Reports, job_id: str) -> None:
        self._reports, self._job_id, self.closed = reports, job_id, False

    def report(self, job_id: str, progress: bytes | None, metadata: bytes | None) -> None:
        if not self.closed:
            self._reports.report(self._job_id, progress, metadata)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
