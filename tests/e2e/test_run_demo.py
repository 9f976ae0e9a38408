"""``./run demo`` piped (``./run demo 2>&1 | tee demo.log``) and stopped with Ctrl-C: the
terminal's SIGINT ends the reader too, and the script must still stop the site and the
worker it started, though it can no longer print."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.processes import ROOT, wait_until
from worker.protocol.servers import free_port

pytestmark = pytest.mark.e2e


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def checkout(tmp_path: Path) -> Path:
    """The project as ``./run`` sees it, in a folder of the test's own: its script, code and
    the installed .venv, with a pyproject.toml older than the install (so that ``run`` does
    not reinstall), and a database of its own."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(ROOT / "run", folder / "run")
    for name in ("manage.py", "project", "jobs", "worker", ".venv"):
        (folder / name).symlink_to(ROOT / name)
    (folder / "pyproject.toml").write_text("")
    os.utime(folder / "pyproject.toml", (0, 0))
    return folder


def read_until(stream, pattern: str, timeout: float) -> re.Match[str]:
    """Read ``stream`` (a pipe) until a line matches ``pattern``."""
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], deadline - time.monotonic())
        if not ready:
            break
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            break
        seen += chunk
        if match := re.search(pattern, seen.decode(errors="replace")):
            return match
    raise AssertionError(f"no line matching {pattern!r} in:\n{seen.decode(errors='replace')}")


def test_ctrl_c_stops_the_site_and_the_worker_when_the_output_pipe_is_gone(
    tmp_path, redis_url, tasks_prefix
):
    folder = checkout(tmp_path)
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "REDIS_URL": redis_url,
        "TASKS_PREFIX": tasks_prefix,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    # A session of its own: the process group a terminal would signal (the script and the
    # reader of its pipe); the script puts the site and the worker in groups of their own.
    script = subprocess.Popen(
        ["bash", "run", "demo"], cwd=folder, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    pids: list[int] = []
    try:
        started = read_until(script.stdout, r"site \S+ \(pid (\d+)\), worker \(pid (\d+)\)", 90)
        pids = [int(started[1]), int(started[2])]
        script.stdout.close()  # the reader (tee) is gone: every later write breaks the pipe
        os.killpg(script.pid, signal.SIGINT)  # Ctrl-C

        script.wait(60)
        wait_until(lambda: not any(map(alive, pids)), 60, "the site and the worker to stop")
        assert script.returncode == 0
    finally:
        for pid in [*pids, script.pid]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
