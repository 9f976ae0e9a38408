"""Metrics under ``runworker --processes N``: one port serves every child's together.

Each child writes a snapshot of its metrics (worker/observe/metrics.py) to a file of its own,
``<pid>.json``, in a directory the supervisor owns, every ``FLUSH_EVERY`` seconds and as it
stops; the supervisor's scrape sums the files. When a child exits, its counters and
histograms are folded into the supervisor's totals of exited children and its file goes, so
that a restart never sends a counter back (its gauges, of jobs no longer running, go with
it). A child killed outright loses what it counted since its last write: at most
``FLUSH_EVERY`` seconds of it, never what a scrape has already seen.

The directory is a temporary one, named with the supervisor's pid and removed as it stops;
one left by a supervisor killed outright (SIGKILL) is removed by the next supervisor to
start on the machine, once no process has that pid.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from worker.observe.metrics import FAMILIES

if TYPE_CHECKING:
    from worker.observe.metrics import Meter, Snapshot

logger = logging.getLogger("worker")

# Where a child writes its snapshots: set by the supervisor in its children's environment.
DIR_ENV = "WORKER_METRICS_DIR"
# The start of the name of a supervisor's directory: then its pid, "-", and a random part.
PREFIX = "worker-metrics-"
FLUSH_EVERY = 1.0
_GAUGES = frozenset(f.name for f in FAMILIES if f.kind == "gauge")


def add(into: Snapshot, snapshot: Snapshot, gauges: bool = True) -> None:
    """Add ``snapshot``'s values to ``into`` (its gauges only with ``gauges``)."""
    for name, values in snapshot.items():
        if name in _GAUGES and not gauges:
            continue
        found = into.setdefault(name, {})
        for labels, value in values.items():
            had = found.get(labels)
            if had is None:
                found[labels] = list(value) if isinstance(value, list) else value
            elif isinstance(had, list) and isinstance(value, list):
                found[labels] = [a + b for a, b in zip(had, value, strict=True)]
            elif isinstance(had, float) and isinstance(value, float):
                found[labels] = had + value


def dumps(snapshot: Snapshot) -> bytes:
    return orjson.dumps(
        {name: [[list(k), v] for k, v in vs.items()] for name, vs in snapshot.items()}
    )


def loads(data: bytes) -> Snapshot:
    return {name: {tuple(k): v for k, v in rows} for name, rows in orjson.loads(data).items()}


class Flusher:
    """A child's side: writes its meter's snapshot to ``directory`` from a thread of its own."""

    def __init__(self, meter: Meter, directory: str) -> None:
        self.meter = meter
        self.path = Path(directory, f"{os.getpid()}.json")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-flush", daemon=True)

    def start(self) -> None:
        self.write()  # the supervisor counts this child's concurrency from its start
        self._thread.start()

    def stop(self) -> None:
        """Stop and write a last time: what the child counted until its end."""
        self._stop.set()
        self._thread.join()
        self.write()

    def write(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(dumps(self.meter.snapshot()))
        temporary.replace(self.path)  # a scrape reads the old file or the new, whole

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            try:
                self.write()
            except OSError as e:  # the supervisor's directory gone: it is stopping
                logger.debug("Metrics not written: %s", e)


class Children:
    """The supervisor's side: the directory its children write to, and their sum."""

    def __init__(self) -> None:
        _sweep()
        self.directory = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
        self._exited: Snapshot = {}  # counters and histograms of the children gone
        self._lock = threading.Lock()  # between scrapes (a thread) and exits (the main one)

    def snapshot(self) -> Snapshot:
        with self._lock:
            found: Snapshot = {}
            add(found, self._exited)
            for path in Path(self.directory).glob("*.json"):
                if (read := _read(path)) is not None:
                    add(found, read)
            return found

    def exited(self, pid: int) -> None:
        """Child ``pid`` is gone: what it counted joins the totals of exited children."""
        path = Path(self.directory, f"{pid}.json")
        with self._lock:
            if (read := _read(path)) is not None:
                add(self._exited, read, gauges=False)
            path.unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _sweep() -> None:
    """Remove the directories of supervisors that are gone without removing theirs."""
    if os.name != "posix":  # no kill(pid, 0) to ask whether a process lives
        return
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        pid = path.name.removeprefix(PREFIX).partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)  # another user's: left alone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _read(path: Path) -> Snapshot | None:
    try:
        return loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValueError as e:  # cannot be: files are replaced whole; said rather than raised
        logger.warning("Metrics file %s unreadable: %s", path, e)
        return None
