"""Redis clients of the backend (redis-py, for all but the hot path: see fastredis.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff

# What the worker rides out with backoff: a lost or refused connection, and errors Redis
# answers with for a while (OOM, READONLY during a failover, LOADING after a restart).
REDIS_ERRORS = (redis.RedisError, OSError)
# Redis could not be reached at all (as opposed to an error it answered with).
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)

# Commands wait at most this long on a silent socket; blocking reads stay well below it.
SOCKET_TIMEOUT = 10.0


def _client_options(url: str, retry_class: type) -> dict[str, Any]:
    options = {
        "socket_connect_timeout": 5,
        "socket_timeout": SOCKET_TIMEOUT,
        "health_check_interval": 30,
        "retry": retry_class(ExponentialBackoff(cap=0.5, base=0.02), 3),
    }
    if not url.startswith("unix:"):
        options["socket_keepalive"] = True  # TCP only: unix sockets do not take it
    return options


# Callers beyond the pool's size wait this long for a connection before it is an error; a
# burst of enqueues from a busy site queues up rather than failing ("Too many connections").
POOL_TIMEOUT = 10.0


def sync_client(url: str, max_connections: int) -> redis.Redis:
    from redis.retry import Retry

    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=POOL_TIMEOUT, **_client_options(url, Retry)
    )
    return redis.Redis(connection_pool=pool)


def async_client(url: str, max_connections: int) -> aioredis.Redis:
    from redis.asyncio.retry import Retry

    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=POOL_TIMEOUT, **_client_options(url, Retry)
    )
    return aioredis.Redis(connection_pool=pool)


# Query parameters redis-py reads a secret from (a unix:// URL's password, a key's).
SECRET_PARAMETERS = ("password", "ssl_password")


def redacted(url: str) -> str:
    """The URL with its passwords hidden, for messages."""
    address, mark, query = url.partition("?")
    password = urlsplit(address).password
    if password is not None:
        address = address.replace(f":{password}@", ":***@", 1)
    query = "&".join(
        f"{name}=***" if name in SECRET_PARAMETERS else pair
        for pair in query.split("&")
        for name in [pair.partition("=")[0]]
    )
    return address + mark + query


def unreachable(url: str, error: BaseException) -> str:
    """The one way to say that Redis could not be reached, without its password."""
    return f"Redis at {redacted(url)} is unreachable ({error})"
