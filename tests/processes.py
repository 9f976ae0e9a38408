"""Starting the project's real processes (runworker, uvicorn) for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def project_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "project.settings"}
    env.update(extra)
    return env


def worker_env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """Environment of worker processes started by tests: this test's Redis and keys, the
    test suite's tasks (tests/engine/tasks.py) registered."""
    return project_env(
        REDIS_URL=redis_url,
        TASKS_PREFIX=prefix,
        DJANGO_SETTINGS_MODULE="tests.e2e_settings",
        **extra,
    )


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process of this project (``manage.py`` arguments or a module run with -m)."""
    out = open(log, "ab")
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
    )


def runworker(env: dict[str, str], log: Path, *options: str) -> subprocess.Popen:
    return start(["manage.py", "runworker", *options], env, log)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        if value := condition():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout)
