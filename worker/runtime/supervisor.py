"""``runworker --processes N``: one parent keeping N worker processes alive.

Children run in their own session so a terminal's Ctrl-C reaches them once, forwarded by the
parent; each child stops by itself if the parent disappears (see runworker).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from worker.observe import multiprocess

logger = logging.getLogger("worker")

PARENT_ENV = "WORKER_PARENT_PID"


def child_command(options: list[str]) -> list[str]:
    script = sys.argv[0]
    if os.path.basename(script) == "manage.py":
        return [sys.executable, script, "runworker", *options]
    return [sys.executable, "-m", "django", "runworker", *options]


def supervise(
    processes: int, options: list[str], metrics: multiprocess.Children | None = None
) -> int:
    """Keep ``processes`` children running ``options``, until a stop signal. With
    ``metrics``, the children write their metrics where it sums them (one port serves
    them all), and the counts of a child that exits are kept."""
    command = child_command(options)
    env = {**os.environ, PARENT_ENV: str(os.getpid())}
    if metrics is not None:
        env[multiprocess.DIR_ENV] = metrics.directory
    children: dict[int, subprocess.Popen[bytes]] = {}
    started: dict[int, float] = {}
    signals: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        signals.append(signum)
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    def spawn(slot: int) -> None:
        if signals:  # stopping: a child started now would never hear the signal
            return
        children[slot] = subprocess.Popen(command, env=env, start_new_session=True)
        started[slot] = time.monotonic()

    for slot in range(processes):
        spawn(slot)
    logger.info("Supervising %d worker processes", processes)
    while children:
        time.sleep(0.2)
        for slot, child in list(children.items()):
            code = child.poll()
            if code is None:
                continue
            if metrics is not None:
                metrics.exited(child.pid)
            if signals:
                del children[slot]
            elif time.monotonic() - started[slot] < 1.0:
                # Dying at once again and again is a setup error, not a crash: slow down.
                logger.error("Worker process %d exited with %s right after start", child.pid, code)
                time.sleep(1.0)
                spawn(slot)  # or, if a stop came meanwhile, the slot goes at the next look
            else:
                logger.error("Worker process %d exited with %s; starting another", child.pid, code)
                spawn(slot)
    return 0
