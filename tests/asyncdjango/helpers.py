"""Running ``manage.py`` as a real process with the settings of tests/asyncdjango (the app
``shop`` installed), on a database of the test's own (tests/databases.py) if given."""

from __future__ import annotations

import subprocess
import sys

from tests.processes import ROOT, project_env

SETTINGS = "tests.asyncdjango.settings"


def env(database=None, **extra: str) -> dict[str, str]:
    if database is not None:
        extra["DATABASE_URL"] = database.url
    return project_env(DJANGO_SETTINGS_MODULE=SETTINGS, **extra)


def worker_env(database, redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    """For runworker processes: this test's database, Redis and key prefix."""
    return env(database, REDIS_URL=redis_url, TASKS_PREFIX=prefix, **extra)


def manage(*args: str, database=None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env(database, **extra),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def migrate(database, app: str, target: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return manage("migrate", app, target, "--no-input", database=database, **extra)
