"""The dashboard in a real browser: Debian's chromium driven by Playwright (its own browser
download is not reachable here: chromium is launched by its path), against real uvicorn and
runworker processes, a real Redis and a database of the test's own.

Without chromium the tests skip, saying how to get it; under CI=true they fail instead
(.ci/run installs it with apt-get)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.conftest import IN_CI
from tests.processes import ROOT, runworker, start, stop, wait_until, worker_env
from worker.protocol.servers import free_port

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def procfile_web_options() -> list[str]:
    """uvicorn's options in the Procfile's web line, but where it listens (--host, --port):
    the site runs with them."""
    line = (ROOT / "Procfile").read_text().partition("web:")[2].partition("\n")[0]
    words = shlex.split(line)[2:]  # after "uvicorn <app>"
    options = []
    while words:
        word = words.pop(0)
        if word in ("--host", "--port"):
            words.pop(0)
        else:
            options.append(word)
    return options


BOSS = ("boss", "boss-password-1")  # a superuser
CLERK = ("clerk", "clerk-password-1")  # signed in, not staff

# Run in the site's environment before it starts: the database, the two users, and a session
# for each (printed, "session <name> <key>" a line), so that a test can be signed in without
# the login form.
SETUP = f"""
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command

call_command("migrate", verbosity=0, interactive=False)
# What the migrations enqueued (a backfill's plan) goes: the tests count the jobs they make.
from django.tasks import default_task_backend
from worker.ops import Ops
ops = Ops(default_task_backend)
for queue in ops.queues():
    ops.purge(queue)
users = [User.objects.create_superuser("{BOSS[0]}", "boss@example.com", "{BOSS[1]}"),
         User.objects.create_user("{CLERK[0]}", password="{CLERK[1]}")]
for user in users:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    print("session", user.username, session.session_key)
"""


@pytest.fixture(scope="session")
def chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        reason = (f"the browser tests need Debian's chromium at {CHROMIUM} "
                  "(apt-get install chromium; .ci/run installs it)")  # fmt: skip
        if IN_CI:
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)
    return CHROMIUM


# pytest-playwright's fixtures, for this folder only: its own are session-wide, and while
# Playwright's sync API runs it keeps an event loop running in the main thread, which the
# rest of the suite (asyncio tests, Django's async-unsafe checks) must not meet. These end
# with the module.


@pytest.fixture(scope="module")
def playwright(chromium) -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium: str) -> Iterator[Browser]:
    launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    opened = browser.new_context()
    yield opened
    opened.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@dataclass
class Site:
    """The site and a worker, running; what a test needs to reach them."""

    url: str
    sessions: dict[str, str]
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def worker(self, name: str, *options: str) -> subprocess.Popen:
        """Start another worker process."""
        log = self.logs / f"{name}.log"
        process = runworker(self.env, log, "--no-scheduler", *options)
        self.processes[name] = process
        return process

    def sign_in(self, context, who: str = BOSS[0]) -> None:
        """Sign the browser context in as ``who``, as a login would."""
        context.add_cookies([{"name": "sessionid", "value": self.sessions[who],
                              "url": self.url}])  # fmt: skip


@pytest.fixture
def site(redis_url, tasks_prefix, process_database, tmp_path) -> Iterator[Site]:
    """uvicorn serving the project (the dashboard at /tasks/) and one runworker process,
    on this test's Redis keys and database. The test suite's tasks are registered in both."""
    port = free_port()
    env = worker_env(redis_url, tasks_prefix, DATABASE_URL=process_database.url,
                     DJANGO_DEBUG="1", FAKE_SERVICES="0", DB_POOL_MAX_SIZE="0")  # fmt: skip
    setup = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SETUP],
        cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr
    lines = [line.split() for line in setup.stdout.splitlines()]
    sessions = {line[1]: line[2] for line in lines if line[:1] == ["session"]}
    running = Site(f"http://127.0.0.1:{port}", sessions, env, tmp_path)
    try:
        command = ["-m", "uvicorn", "project.asgi:application", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--lifespan", "off", *procfile_web_options()]
        running.processes["site"] = start(command, env, tmp_path / "site.log")
        running.worker("worker", "--concurrency", "10")

        def up() -> bool:
            for name, process in running.processes.items():
                assert process.poll() is None, f"{name} exited with {process.returncode}"
            try:
                return httpx.get(f"{running.url}/admin/login/", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, 30, "the site to answer")
        yield running
    finally:
        for process in running.processes.values():
            try:
                stop(process, timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in sorted(tmp_path.glob("*.log")):
            print(f"\n===== {log.name} =====\n{log.read_text(errors='replace')}")
