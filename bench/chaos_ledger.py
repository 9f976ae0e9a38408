"""The chaos soak's ledger: one line per event, appended to files outside Redis.

Every process (worker, web, the soak itself) appends JSON lines to a file of its own in the
directory named by ``CHAOS_LEDGER``, opened ``O_APPEND``, each line with one ``os.write``.
A process killed with SIGKILL loses nothing it wrote (the kernel has the bytes), Redis
faults cannot touch it, and no two processes share a file offset, so lines never interleave.
The analyzer reads every file of the directory.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENV = "CHAOS_LEDGER"

_lock = threading.Lock()
_fds: dict[tuple[int, str | None], int] = {}  # (pid, name) -> fd: a forked child opens its own


def _open(name: str | None = None) -> int | None:
    directory = os.environ.get(ENV)
    if not directory:
        return None
    key = (os.getpid(), name)
    if key not in _fds:
        path = Path(directory) / f"{name or key[0]}.jsonl"
        _fds[key] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    return _fds[key]


def record(event: str, file: str | None = None, /, **fields: Any) -> None:
    """Append one event. ``t`` is wall time, the same clock in every process on this host:
    a worker whose clock the soak skews (libfaketime) is told the skew in ``CHAOS_SKEW`` and
    takes it back out, so its lines line up with everyone else's."""
    now = time.time() - float(os.environ.get("CHAOS_SKEW", "0"))
    line = {"e": event, "t": now, "p": os.getpid(), **fields}
    data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
    with _lock:
        fd = _open(file)
        if fd is not None:
            os.write(fd, data)


def read(directory: Path) -> Iterator[dict[str, Any]]:
    """Every complete line of every ledger file (a line cut short is skipped)."""
    for path in sorted(directory.glob("*.jsonl")):
        with path.open("rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    continue
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue
