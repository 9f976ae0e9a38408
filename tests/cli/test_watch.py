"""``watch`` in a real terminal: a pseudo-terminal, Ctrl-C typed into it."""

import os
import pty
import select
import sys
import time

import pytest

from tests.engine import tasks
from tests.processes import ROOT, project_env

TITLE = b"jobs watch \xc2\xb7"  # "jobs watch ·", the first line of every frame


def read_until(fd: int, done, timeout: float) -> bytes:
    screen, deadline = b"", time.monotonic() + timeout
    while not done(screen) and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                screen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
    return screen


# The child only execs: it takes none of the locks other threads may hold at the fork.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_watch_refreshes_until_ctrl_c(redis_url, tasks_prefix):
    tasks.add.enqueue(1, 2)
    env = project_env(REDIS_URL=redis_url, TASKS_PREFIX=tasks_prefix, COLUMNS="120")
    args = [sys.executable, "-m", "django", "jobs", "watch", "--interval", "0.2"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        os.chdir(ROOT)
        os.execve(sys.executable, args, env)
    try:
        screen = read_until(fd, lambda s: s.count(TITLE) >= 3, timeout=20)
        os.write(fd, b"\x03")  # Ctrl-C, as typed: the terminal sends SIGINT
        screen += read_until(fd, lambda s: False, timeout=1)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    text = screen.decode(errors="replace")
    assert screen.count(TITLE) >= 3, text
    assert "\x1b[2J" in text  # the screen is cleared between frames
    assert "default" in text and "reports" in text and "DONE/S" in text
    assert os.waitstatus_to_exitcode(status) == 0, text
