"""A Redis key prefix of a test's own: its jobs are invisible to a development worker
running on the same Redis (and to other tests, and other pytest-xdist workers), and are
deleted after it.

Every RedisBackend entry of TASKS keeps its keys under ``OPTIONS["prefix"]``: inside
``isolated_tasks()`` each runs under ``<prefix>-test-<xdist worker>-<random>`` instead,
which a worker serving the development prefix never reads (its keys all begin
``<prefix>:``). The other entries are copied as they are: every backend is made anew, so
an in-process backend starts empty too.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.tasks import task_backends
from django.test.utils import override_settings
from django.utils.module_loading import import_string

from worker import pending
from worker.backend import RedisBackend
from worker.protocol.connection import REDIS_ERRORS

logger = logging.getLogger("worker")


def test_prefix(prefix: str) -> str:
    """A prefix of a test's own, after ``prefix`` (the backend's)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}-test-{worker}-{uuid.uuid4().hex[:12]}"


def isolated(tasks: dict[str, Any], prefix: str | None = None) -> dict[str, Any]:
    """A copy of the TASKS setting ``tasks`` whose Redis backends keep their keys under
    ``prefix`` (default: ``test_prefix`` of each one's own)."""
    copied = {}
    for alias, entry in tasks.items():
        entry = dict(entry)
        if _is_redis(entry.get("BACKEND")):
            options = dict(entry.get("OPTIONS") or {})
            options["prefix"] = prefix or test_prefix(str(options.get("prefix", "tasks")))
            entry["OPTIONS"] = options
        copied[alias] = entry
    return copied


@contextmanager
def isolated_tasks(prefix: str | None = None) -> Iterator[dict[str, Any]]:
    """Run the code inside with TASKS ``isolated``; yields that setting. On the way out,
    each Redis backend that reached Redis meanwhile has its keys deleted."""
    tasks = isolated(getattr(settings, "TASKS", {}), prefix)
    pending.isolations += 1
    with override_settings(TASKS=tasks):
        # Made now, in this context: made later in a copy of it (an async test's task),
        # a backend would be that copy's alone, and not found here at the end.
        for alias, entry in tasks.items():
            if _is_redis(entry.get("BACKEND")):
                task_backends[alias]
        try:
            yield tasks
        finally:
            pending.isolations -= 1
            for backend in task_backends.all(initialized_only=True):
                if isinstance(backend, RedisBackend) and "broker" in vars(backend):
                    _drop(backend)


def _drop(backend: RedisBackend) -> None:
    try:
        backend.broker.drop_keys()
    except REDIS_ERRORS as e:
        logger.warning("Could not delete the test's keys under %r: %s",
                       backend.options_.prefix, e)  # fmt: skip
    finally:
        backend.broker.close()


def _is_redis(path: object) -> bool:
    if not isinstance(path, str):
        return False
    try:
        backend = import_string(path)
    except ImportError:
        return False
    return isinstance(backend, type) and issubclass(backend, RedisBackend)
