"""What a job is told when the database connection pool (psycopg 3's, through Django's
``DATABASES[...]["OPTIONS"]["pool"]``) has no connection for it within its timeout.

Each running job holds the connection its first query took until the job ends (as a
request holds one until its response): a worker whose ``--concurrency`` is above the
pool's ``max_size`` runs at most ``max_size`` jobs' database work at once, the others
waiting up to the pool's ``timeout``. One that waits longer fails that attempt with
DatabasePoolExhausted, which says so and what to change; it is retried as any failure.
"""

from __future__ import annotations

import sys
from typing import Any, cast

from django.conf import settings

from worker.exceptions import DatabasePoolExhausted


def explained(error: BaseException) -> BaseException:
    """``error``, or DatabasePoolExhausted (caused by it, with its traceback) when it comes
    from the pool's timeout: psycopg_pool.PoolTimeout, bare or as Django's OperationalError."""
    timeout = _pool_timeout_in(error)
    if timeout is None:
        return error
    explanation = DatabasePoolExhausted(
        f"no database connection within the pool's timeout ({timeout}; {_pools()}). A job "
        "holds its connection from its first query to its end, so at most max_size jobs of "
        "a worker process use the database at once: raise the pool's max_size (within "
        "PostgreSQL's max_connections, for every process), run fewer jobs at once "
        "(runworker --concurrency), or keep jobs' database work short. The job is retried "
        "as any failure."
    )
    explanation.__cause__ = error
    return explanation.with_traceback(error.__traceback__)


def _pool_timeout_in(error: BaseException) -> BaseException | None:
    pool_module = sys.modules.get("psycopg_pool")
    if pool_module is None:  # never imported: no pool in this process
        return None
    timeout: type[BaseException] = pool_module.PoolTimeout
    seen: BaseException | None = error
    for _ in range(5):  # Django wraps the driver's error once; a user's code may again
        if seen is None:
            return None
        if isinstance(seen, timeout):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _pools() -> str:
    """The pools the settings declare, as "DATABASES['default'] pool max_size 10, timeout
    10s" (psycopg's defaults where a size or timeout is not set)."""
    found = []
    for alias, conf in settings.DATABASES.items():
        options = cast("dict[str, Any]", conf.get("OPTIONS") or {})
        pool = options.get("pool")
        if pool:
            sizes = pool if isinstance(pool, dict) else {}  # True: psycopg's defaults
            size = sizes.get("max_size") or sizes.get("min_size", 4)
            timeout = sizes.get("timeout", 30.0)
            found.append(f"DATABASES[{alias!r}] pool max_size {size}, timeout {timeout:g}s")
    return "; ".join(found) or "no pool in DATABASES"
