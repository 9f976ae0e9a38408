"""Redis clients of the backend (redis-py, for all but the hot path: see fastredis.py), and
what the engine says of the errors they meet.

A URL names one Redis server (``redis://``, ``rediss://``, ``unix://``), a master found
through Redis Sentinel (``redis+sentinel://``, sentinel.py) or the nodes of a Redis Cluster
(``redis+cluster://``, cluster.py); every client takes any of them.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, cast
from urllib.parse import unquote_plus

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import MasterNotFoundError as AsyncMasterNotFoundError
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError

from worker.protocol import cluster, sentinel
from worker.protocol.durability import Durability, ReplicatedRedis

# What the worker rides out with backoff: a lost or refused connection, and errors Redis
# answers with for a while (OOM, READONLY during a failover, LOADING after a restart).
REDIS_ERRORS = (redis.RedisError, OSError)
# Redis could not be reached at all (as opposed to an error it answered with).
REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
# Error replies of a Redis that takes no writes for now (out of memory, a read-only replica,
# loading its data after a restart): the command was refused, nothing was stored.
REFUSALS = (redis.OutOfMemoryError, redis.ReadOnlyError, redis.BusyLoadingError)


def refuses_writes(error: BaseException) -> bool:
    """Whether ``error`` is Redis refusing writes for now: ``REFUSALS``, MISCONF (it cannot
    save to disk and is set to stop writes then), or one of those met by a script (Redis
    wraps it: "Error running script ... -OOM command not allowed ...")."""
    if isinstance(error, REFUSALS):
        return True
    if not isinstance(error, redis.ResponseError):
        return False
    text = str(error)
    return text.startswith("MISCONF") or any(f"-{word} " in text for word in _REFUSED_WORDS)


_REFUSED_WORDS = ("OOM", "READONLY", "LOADING", "MISCONF", "NOREPLICAS")


def never_connected(error: BaseException) -> bool:
    """Whether a command failed because no connection could be opened (so it was never
    sent), as opposed to a connection lost or silent after the command went out."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError | FileNotFoundError | socket.gaierror):
            return True
        if isinstance(seen, MasterNotFoundError | AsyncMasterNotFoundError):
            return True  # no sentinel named a master to send it to
        seen = seen.__cause__ or seen.__context__
    return False


def surely_unstored(error: BaseException) -> bool:
    """Whether a write that failed with ``error`` certainly stored nothing: this thread's
    redis-py client saw every try of it refused or never connected (it retries a command
    on a lost connection, so a first try whose reply was lost may have run)."""
    return all(refuses_writes(e) or never_connected(e) for e in [*_tries().errors, error])


def forget_tries() -> None:
    """Start noting the tries of a new command in this thread (see ``surely_unstored``)."""
    _tries().errors = []


_noted = threading.local()


def _tries() -> Any:
    if not hasattr(_noted, "errors"):
        _noted.errors = []
    return _noted


class _NotingRetry(Retry):
    """redis-py's Retry, noting in this thread the error of every failed try."""

    def call_with_retry(self, do: Any, fail: Any, *args: Any, **kwargs: Any) -> Any:
        def noted(error: Exception, *count: int) -> Any:
            _tries().errors.append(error)
            return fail(error, *count)

        return super().call_with_retry(do, noted, *args, **kwargs)


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


def sync_client(
    url: str, max_connections: int, durability: Durability | None = None
) -> redis.Redis:
    """redis-py's blocking client of the Redis at ``url``; with ``durability``, the scripts
    that wait for a replica do (durability.py)."""
    if cluster.names_cluster(url):
        if durability is not None:
            raise ValueError("durability 'replicated' is not supported on a Redis Cluster yet")
        options = _client_options(url, _NotingRetry) | {"max_connections": max_connections}
        # It answers every command the engine sends as redis.Redis does, each to its slot.
        return cast("redis.Redis", cluster.sync_client(cluster.parse(url), **options))
    pool = _pool(url, max_connections, _NotingRetry, redis.BlockingConnectionPool,
                 sentinel.sync_pool)  # fmt: skip
    if durability is None:
        return redis.Redis(connection_pool=pool)
    where = f"Redis at {redacted(url)}"
    return ReplicatedRedis(connection_pool=pool, durability=durability, where=where)


def async_client(url: str, max_connections: int) -> aioredis.Redis:
    from redis.asyncio.retry import Retry

    if cluster.names_cluster(url):
        options = _client_options(url, Retry) | {"max_connections": max_connections}
        return cast("aioredis.Redis", cluster.async_client(cluster.parse(url), **options))
    pool = _pool(url, max_connections, Retry, aioredis.BlockingConnectionPool,
                 sentinel.async_pool)  # fmt: skip
    return aioredis.Redis(connection_pool=pool)


def _pool(
    url: str, max_connections: int, retry_class: type, plain: Any, through_sentinels: Any
) -> Any:
    """A pool of ``max_connections`` (callers beyond wait up to POOL_TIMEOUT for one) to
    the server of the URL, or to the master its sentinels name."""
    options = _client_options(url, retry_class)
    options |= {"max_connections": max_connections, "timeout": POOL_TIMEOUT}
    if sentinel.names_sentinels(url):
        return through_sentinels(sentinel.parse(url), **options)
    return plain.from_url(url, **options)


# Query parameters redis-py reads a secret from (a unix:// URL's password, a key's).
SECRET_PARAMETERS = ("password", "ssl_password", "sentinel_password")


def redacted(url: str) -> str:
    """The URL with its passwords hidden, for messages; whatever the URL (one that does not
    parse included: its password may be what breaks it)."""
    scheme, sep, rest = url.partition("://")
    if not sep:  # not a URL that parses: hide all between its scheme and its last @
        scheme, sep, rest = url.partition(":")
        if "@" in rest:
            rest = "***@" + rest.rpartition("@")[2]
        return f"{scheme}{sep}{rest}"
    if "@" in rest:
        userinfo, _, after = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        if colon:
            rest = f"{user}:***@{after}"
    address, mark, query = rest.partition("?")
    # Names as redis-py reads them (percent-decoded): ``pass%77ord=`` is a password too.
    query = "&".join(
        f"{name}=***" if unquote_plus(name) in SECRET_PARAMETERS else pair
        for pair in query.split("&")
        for name in [pair.partition("=")[0]]
    )
    return f"{scheme}{sep}{address}{mark}{query}"


def unreachable(url: str, error: BaseException) -> str:
    """The one way to say that Redis could not be reached, without its password. A URL
    naming a database the server does not have is said as such: no retry mends it."""
    if wrong_database(error):
        return (f"Redis at {redacted(url)} has no database {database_of(url)} (DB index is "
                "out of range: its databases are 0 to `databases` - 1 of its configuration, "
                "0-15 by default)")  # fmt: skip
    return f"Redis at {redacted(url)} is unreachable ({describe(error)})"


def failing(url: str, error: BaseException) -> str:
    """What an error met talking to the Redis at ``url`` says of it, without its password:
    the error it answered with (out of memory, read-only, loading), or that it is
    unreachable."""
    if isinstance(error, redis.ResponseError) and not wrong_database(error):
        return f"Redis at {redacted(url)} answered with an error ({describe(error)})"
    return unreachable(url, error)


def describe(error: BaseException) -> str:
    """An error's own message (redis-py's repr is only its category, such as
    ``network:ConnectionError``), or its class's name when it has none."""
    if (unfound := _master_not_found(error)) is not None:
        # redis-py's message goes on with each sentinel's client, by its repr (pages of it),
        # and its error by category: only a refused login says what to mend.
        head, _, answers = str(unfound).partition(" : ")
        if _REFUSED_LOGIN in answers:
            return (f"{head}: the sentinels refused the URL's login to them (invalid "
                    "username-password pair, or none given where they ask for one): check "
                    "its sentinel_username and sentinel_password")  # fmt: skip
        return (f"{head}: no sentinel of the URL answered with a "
                "master it takes for up (they are unreachable, a failover is under way, or "
                "they know the master by another name; `manage.py check --deploy` asks each "
                "one)")  # fmt: skip
    return str(error) or type(error).__name__


# How redis-py's MasterNotFoundError names a sentinel's refusal of its login (by category).
_REFUSED_LOGIN = "AuthenticationError"


def _master_not_found(error: BaseException) -> BaseException | None:
    """The MasterNotFoundError that ``error`` is or was raised from (redis.asyncio's client
    wraps it in a ConnectionError of the same message), or None."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, MasterNotFoundError | AsyncMasterNotFoundError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def wrong_database(error: BaseException) -> bool:
    """Whether ``error`` (or one it was raised from) is Redis refusing the database number
    of the URL (``SELECT``: "DB index is out of range")."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, redis.RedisError) and "DB index is out of range" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def database_of(url: str) -> str:
    """The database number a Redis URL selects ("0" unless it names one)."""
    try:
        if sentinel.names_sentinels(url):
            return str(sentinel.parse(url).db)
        return str(parse_url(url).get("db") or 0)  # type: ignore[no-untyped-call]
    except ValueError:
        return "?"
