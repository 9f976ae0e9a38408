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
from worker.protocol import sentinel
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
        return [warning(unreachable(backend.url, e), hint, "worker.W001"),
                *_sentinel_warnings(backend, warning)]  # fmt: skip
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
    found += _results_warnings(backend, info, server, warning)
    found += _durability_warnings(backend, info, server, warning)
    found += _sentinel_warnings(backend, warning)
    if not info.get("aof_enabled") and save == "":
        found.append(warning(
            f"{server} keeps nothing on disk (no append-only file, no RDB save points): "
            "a restart loses every queued job",
            "turn on appendonly yes (appendfsync everysec), or at least RDB save points",
            "worker.W004",
        ))  # fmt: skip
    return found


def _results_warnings(
    backend: RedisBackend, info: dict[str, Any], server: str, warning: Any
) -> list[CheckMessage]:
    """W005: the results kept at the rate jobs succeed lately would take more than
    OPTIONS['result_memory_share'] of Redis's memory (maxmemory, else the host's)."""
    limit = int(info.get("maxmemory") or 0) or int(info.get("total_system_memory") or 0)
    share = backend.options_.result_memory_share
    found = []
    for name in sorted(backend.queues):
        kept = backend.broker.queue(name).kept_results()
        if limit and kept is not None and kept.bytes_kept > share * limit:
            found.append(warning(
                f"{server}: queue {name!r} keeps results of ~{kept.per_second:,.0f} jobs/s "
                f"for {kept.seconds_kept / 3600:,.1f} h at ~{kept.bytes_each:,.0f} bytes each: "
                f"~{kept.bytes_kept / 2**30:,.1f} GiB, over {share:.0%} of the "
                f"{limit / 2**30:,.1f} GiB Redis may use",
                "keep results for less time (@task(result_ttl=...), 0 keeps none, or "
                "OPTIONS['result_ttl'] for every task), or give Redis more memory",
                "worker.W005",
            ))  # fmt: skip
    return found


def _durability_warnings(
    backend: RedisBackend, info: dict[str, Any], server: str, warning: Any
) -> list[CheckMessage]:
    """W006: durability "replicated" with no replica to confirm writes."""
    durability = backend.options_.replication()
    if durability is None or int(info.get("connected_slaves") or 0) >= durability.replicas:
        return []
    return [
        warning(
            f"{server} has no replica connected, and OPTIONS['durability'] is 'replicated': "
            "every enqueue fails (stored on the master, unconfirmed) and every ack waits "
            f"{durability.timeout_ms} ms for a replica",
            "attach a replica (replicaof), or set OPTIONS['durability'] to 'async'",
            "worker.W006",
        )
    ]


def _sentinel_warnings(backend: RedisBackend, warning: Any) -> list[CheckMessage]:
    """W007: sentinels of the URL that do not answer or do not watch its master, or no
    replica for them to promote."""
    if not sentinel.names_sentinels(backend.url):
        return []
    hint = ("list every sentinel in the URL, with the name they monitor the master by "
            "(sentinel monitor <name> ... in sentinel.conf)")  # fmt: skip
    return [
        warning(f"Redis at {redacted(backend.url)}: {problem}", hint, "worker.W007")
        for problem in sentinel.survey(sentinel.parse(backend.url))
    ]


def _version(text: str) -> tuple[int, ...]:
    numbers = []
    for part in text.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        numbers.append(int(digits or 0))
    return tuple(numbers)
