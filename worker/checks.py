"""System checks of the Redis the backends use (``manage.py check --deploy``; ``runworker``
logs the same warnings at start). Every id is listed in docs/configuration.md.

The configuration itself (OPTIONS, QUEUES, INSTALLED_APPS: ``worker.E0xx``) is checked by
each backend's own ``check()`` (worker/config.py), which Django runs for every TASKS entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.checks import CheckMessage, register
from django.core.checks import Warning as CheckWarning
from django.tasks import task_backends

from worker.backend import RedisBackend
from worker.protocol.connection import REDIS_ERRORS, redacted, unreachable

OLDEST = (6, 2)  # the oldest Redis the Lua scripts and commands are written for


@register("worker", deploy=True)
def check_redis(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """Connects to the Redis of every RedisBackend whose configuration is valid (the
    invalid ones are reported by ``manage.py check`` already)."""
    found: list[CheckMessage] = []
    for backend in task_backends.all():
        if isinstance(backend, RedisBackend) and not backend.config_errors:
            found += redis_warnings(backend)
    return found


def redis_warnings(backend: RedisBackend) -> list[CheckMessage]:
    """What is wrong with the Redis server of ``backend`` for keeping jobs."""
    where = f"TASKS[{backend.alias!r}]"

    def warning(msg: str, hint: str, id: str) -> CheckWarning:
        return CheckWarning(msg, hint=hint, obj=where, id=id)

    try:
        info = backend.broker.info()
        save = backend.broker.save_points()
    except REDIS_ERRORS as e:
        hint = "start it, or correct OPTIONS['url']; workers wait for it and enqueues fail"
        return [warning(unreachable(backend.url, e), hint, "worker.W001")]
    server = f"Redis at {redacted(backend.url)}"
    found: list[CheckMessage] = []
    policy = info.get("maxmemory_policy", "noeviction")
    if policy != "noeviction":
        found.append(warning(
            f"{server} has maxmemory-policy {policy}: an evicting Redis silently drops jobs "
            "(and their results) when it runs out of memory",
            "set maxmemory-policy noeviction: a full Redis then refuses new jobs, and "
            "enqueue raises, instead of losing queued ones",
            "worker.W002",
        ))  # fmt: skip
    version = str(info.get("redis_version", "0"))
    if _version(version) < OLDEST:
        found.append(warning(
            f"{server} is Redis {version}, older than {'.'.join(map(str, OLDEST))}",
            "upgrade Redis: the engine's scripts and commands need 6.2 or newer",
            "worker.W003",
        ))  # fmt: skip
    if not info.get("aof_enabled") and save == "":
        found.append(warning(
            f"{server} keeps nothing on disk (no append-only file, no RDB save points): "
            "a restart loses every queued job",
            "turn on appendonly yes (appendfsync everysec), or at least RDB save points",
            "worker.W004",
        ))  # fmt: skip
    return found


def _version(text: str) -> tuple[int, ...]:
    numbers = []
    for part in text.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        numbers.append(int(digits or 0))
    return tuple(numbers)
