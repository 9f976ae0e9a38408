"""Finding the master through Redis Sentinel: the ``redis+sentinel://`` URL, redis-py's
connection pools that ask the sentinels for the master (sync and asyncio), and the address
the hot path's connection (fastredis.py) connects to.

    redis+sentinel://[user:password@]host[:port][,host[:port]...]/master-name[/db][?query]

Each host is a sentinel (port 26379 unless given); ``master-name`` is the name the
sentinels monitor the master by. ``rediss+sentinel://`` speaks TLS to the master and the
sentinels. The user and password are the master's (an ACL user, or ``:password``); the
query takes what a ``redis://`` URL takes (TLS files, ``socket_keepalive``...), for the
sentinels too but the master's ``username`` and ``password``, and ``sentinel_username`` /
``sentinel_password`` for sentinels that ask for a password of their own (``requirepass``
in sentinel.conf).

A client follows a failover: a connection that is lost, or that finds its server turned
into a replica (READONLY), is opened again to the master the sentinels name then.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as aiosentinel
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.retry import Retry

SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_PORT = 26379
# The query parameters that are the sentinels' own credentials, not the master's.
CREDENTIALS = ("sentinel_username", "sentinel_password")
# The master's credentials when the query gives them: never sent to the sentinels.
MASTERS = ("username", "password")
# A sentinel answers from memory: one silent this long is skipped for the next.
SENTINEL_TIMEOUT = 2.0
USAGE = "redis+sentinel://[user:password@]host:port[,host:port...]/master-name[/db]"


def names_sentinels(url: str) -> bool:
    return url.partition("://")[0] in SCHEMES


@dataclass(frozen=True, slots=True)
class Sentinels:
    """What a ``redis+sentinel://`` URL says: where the sentinels are, the name of the
    master they watch, and redis-py's options for a connection to either (its address
    aside: a sentinel's is in ``addresses``, the master's is asked of them)."""

    addresses: tuple[tuple[str, int], ...]
    service: str
    tls: bool
    # (Out of the repr, which tracebacks' locals show: they hold the passwords.)
    master: dict[str, Any] = field(repr=False)
    sentinel: dict[str, Any] = field(repr=False)

    @property
    def db(self) -> int:
        return int(self.master.get("db") or 0)


def url_parts(url: str, schemes: tuple[str, ...], kind: str) -> tuple[str, str, str, str, str]:
    """The scheme, userinfo, hosts, path and query of a URL of several hosts (a sentinel's,
    a cluster's); ValueError for another scheme. The credentials end at the URL's last
    '@', as redacted() (connection.py) takes them: a password with a '/', '?' or '#' not
    percent-encoded is still all hidden, and read as the password rather than as hosts or
    a query that messages would quote."""
    scheme, _, rest = url.partition("://")
    if scheme not in schemes:
        raise ValueError(f"has scheme {scheme!r}; a {kind} URL's is one of {', '.join(schemes)}")
    userinfo, _, rest = rest.rpartition("@")
    place, _, query = rest.partition("?")
    hosts, _, path = place.partition("/")
    return scheme, userinfo, hosts, path, query


def parse(url: str) -> Sentinels:
    """ValueError naming what is wrong (never the password)."""
    scheme, userinfo, hosts, path, query = url_parts(url, SCHEMES, "sentinel")
    addresses = tuple(address(host) for host in hosts.split(","))
    service, _, db = unquote(path).partition("/")
    if not service:
        raise ValueError(f"names no master (the name the sentinels know it by): {USAGE}")
    if db and not db.isdigit():
        raise ValueError(f"names database {db!r}: give a number (/mymaster/0, /mymaster/1, ...)")
    params = parse_qsl(query, keep_blank_values=True)
    plain = "rediss" if scheme.startswith("rediss") else "redis"
    # redis-py reads the query as it reads a redis:// URL's (the host is a stand-in); the
    # master's credentials, in the userinfo or the query, are the master's only.
    master = redis_options(f"{plain}://sentinel/{db or 0}?{_query(params, CREDENTIALS)}")
    master |= _credentials(userinfo)
    sentinel = redis_options(f"{plain}://sentinel/0?{_query(params, CREDENTIALS + MASTERS)}")
    for name, value in params:
        if name in CREDENTIALS:
            sentinel[name.removeprefix("sentinel_")] = value
    for options in (master, sentinel):
        options.pop("connection_class", None)
        options.pop("host", None)
    sentinel.pop("db", None)
    return Sentinels(addresses, service, plain == "rediss", master, sentinel)


def _query(params: list[tuple[str, str]], leaving_out: tuple[str, ...]) -> str:
    return urlencode([(name, value) for name, value in params if name not in leaving_out])


def _credentials(userinfo: str) -> dict[str, str]:
    """The user and password of ``user:password``, as redis-py reads a URL's (an empty one
    is none)."""
    user, _, password = userinfo.partition(":")
    found = {"username": unquote(user), "password": unquote(password)}
    return {name: value for name, value in found.items() if value}


def sentinel_url(
    sentinels: Iterable[str],
    master: str,
    *,
    username: str | None = None,
    password: str | None = None,
    db: int = 0,
) -> str:
    """The ``redis+sentinel://`` URL of ``master`` (its name) as ``sentinels`` (each
    ``host:port``) know it, its credentials quoted."""
    userinfo = quote(username or "", safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    hosts = ",".join(host.strip() for host in sentinels)
    return (
        f"{SCHEMES[0]}://{userinfo}{'@' if userinfo else ''}{hosts}/{quote(master, safe='')}/{db}"
    )


def address(
    text: str, default_port: int = DEFAULT_PORT, role: str = "sentinel", usage: str = USAGE
) -> tuple[str, int]:
    """``host[:port]`` or ``[IPv6]:port`` of a URL's list of hosts (each a ``role``)."""
    host, port = text, ""
    if text.startswith("["):  # [IPv6]:port
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host:
        raise ValueError(f"names a {role} without a host ({text!r}): {usage}")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"names {role} {text!r}, whose port is not a number of 1-65535")
    return unquote(host), int(port or default_port)


def redis_options(url: str) -> dict[str, Any]:
    try:
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as e:  # its message names the option, not the value
        raise ValueError(f"cannot be used ({e})") from None
    return options


def _sentinel_options(sentinels: Sentinels, retry: type = Retry) -> dict[str, Any]:
    # No retries: a sentinel that does not answer is passed over for the next one.
    return {
        "socket_connect_timeout": SENTINEL_TIMEOUT,
        "socket_timeout": SENTINEL_TIMEOUT,
        **sentinels.sentinel,
        "ssl": sentinels.tls,
        "retry": retry(NoBackoff(), 0),
    }


class _SyncConnection(redis.sentinel.SentinelManagedConnection):
    """A connection to the master that asks the sentinels where it is each time it opens a
    socket: redis-py's retry of a command reopens one past them (``_connect``, not
    ``connect``), to the master of before, which may hang for SOCKET_TIMEOUT a try."""

    def _connect_retry(self) -> None:
        if not self._sock:  # (the pools of this module are the master's only)
            self.connect_check_health(
                check_health=self.connection_pool.check_connection, retry_socket_connect=False
            )

    def _connect(self) -> Any:
        self.host, self.port = self.connection_pool.get_master_address()
        return super()._connect()  # type: ignore[no-untyped-call]


class _SyncTLSConnection(_SyncConnection, redis.SSLConnection):
    pass


class _AsyncConnection(aiosentinel.SentinelManagedConnection):
    """The same for redis.asyncio."""

    async def _connect_retry(self) -> None:
        if not self._reader:
            await self.connect_check_health(
                check_health=self.connection_pool.check_connection, retry_socket_connect=False
            )

    async def _connect(self) -> None:
        self.host, self.port = await self.connection_pool.get_master_address()
        await super()._connect()  # type: ignore[no-untyped-call]


class _AsyncTLSConnection(_AsyncConnection, aioredis.SSLConnection):
    pass


class _SyncPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's pool, blocking as the engine's other pools: callers beyond its size wait
    for a connection."""


class _AsyncPool(aiosentinel.SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The same for redis.asyncio."""


def sync_pool(sentinels: Sentinels, **options: Any) -> redis.ConnectionPool:
    """A pool of connections to the master, which ask the sentinels where it is whenever
    they connect. ``options`` are redis-py's pool and connection options."""
    manager = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(sentinels.addresses), sentinel_kwargs=_sentinel_options(sentinels)
    )
    connection = _SyncTLSConnection if sentinels.tls else _SyncConnection
    return _SyncPool(  # type: ignore[no-untyped-call]
        sentinels.service, manager, ssl=sentinels.tls, connection_class=connection,
        **{**options, **sentinels.master},
    )  # fmt: skip


def async_pool(sentinels: Sentinels, **options: Any) -> aioredis.ConnectionPool:
    manager = aiosentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(sentinels.addresses), sentinel_kwargs=_sentinel_options(sentinels, AsyncRetry)
    )
    connection = _AsyncTLSConnection if sentinels.tls else _AsyncConnection
    return _AsyncPool(  # type: ignore[no-untyped-call]
        sentinels.service, manager, ssl=sentinels.tls, connection_class=connection,
        **{**options, **sentinels.master},
    )  # fmt: skip


async def master_address(sentinels: Sentinels) -> tuple[str, int]:
    """Where the sentinels say the master is now (one that none of them takes for down);
    ``redis.ConnectionError`` (MasterNotFoundError) naming each sentinel's answer if none
    can say. Asked afresh each time: the hot path asks only as it (re)connects."""
    manager = aiosentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(sentinels.addresses), sentinel_kwargs=_sentinel_options(sentinels, AsyncRetry)
    )
    try:
        host, port = await manager.discover_master(sentinels.service)
        return str(host), int(port)
    finally:
        await manager.aclose()


def survey(sentinels: Sentinels) -> list[str]:
    """What is wrong with the sentinels of the URL, for ``check --deploy``: each one that
    does not answer or does not watch the master, and a master they know no live replica
    of (a failover would have nothing to promote)."""
    found = []
    replicas = None
    for host, port in sentinels.addresses:
        client = redis.Redis(host, port, **_sentinel_options(sentinels))
        where = f"sentinel {host}:{port}"
        try:
            client.sentinel_master(sentinels.service)
            views = client.sentinel_slaves(sentinels.service)
        except redis.ResponseError as e:
            found.append(f"{where} does not watch a master named {sentinels.service!r} ({e})")
        except (redis.RedisError, OSError) as e:
            found.append(f"{where} does not answer ({e})")
        else:
            replicas = max(replicas or 0, sum(map(_up, views)))
        finally:
            client.close()
    if replicas == 0:
        found.append(f"the sentinels know no replica of {sentinels.service!r} that is up: a "
                     "failover would have nothing to promote")  # fmt: skip
    return found


def _up(replica: dict[str, Any]) -> bool:
    # (A master's num-slaves counts replicas the sentinels take for down too.)
    return not (replica["is_sdown"] or replica["is_odown"] or replica["is_disconnected"])
