"""A Redis Cluster for tests: three masters and a replica of each, child processes on
127.0.0.1 free ports from the ``redis-server`` binary, joined by ``redis-cli --cluster
create``; and moving a slot from one master to another while clients use it."""

from __future__ import annotations

import functools
import re
import shutil
import socket
import subprocess
from pathlib import Path

import redis
from redis.crc import key_slot

from tests.processes import wait_until
from tests.sentinel import needed_redis_binary
from worker.protocol.servers import RedisServer, free_port

# A node takes another for failed after this long without an answer (ms): small, so that a
# test's failover takes seconds.
NODE_TIMEOUT_MS = 2000


@functools.cache
def _supports_cluster(binary: str) -> bool:
    """Whether ``binary`` can run a cluster that ``redis-cli`` joins: Redis 5 and newer
    (``redis-cli --cluster create``), with a redis-cli at hand."""
    if shutil.which("redis-cli") is None:
        return False
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    found = re.search(r"v=(\d+)\.", version.stdout)
    return found is not None and int(found[1]) >= 5


def needed_cluster_binary() -> str:
    """For a test: a redis-server that can run a cluster, or a skip saying what is missing
    (a failure under CI=true)."""
    import pytest

    from tests.conftest import IN_CI

    binary = needed_redis_binary()
    if _supports_cluster(binary):
        return binary
    reason = "needs a redis-server with cluster support and redis-cli (apt-get install redis)"
    if IN_CI:
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def _node_port() -> int:
    """A free port for a node whose cluster bus port (10000 above it, where Redis 6.2 puts
    it) is free too."""
    while True:
        port = free_port()
        if port + 10_000 <= 65_535:
            try:
                with socket.socket() as bus:
                    bus.bind(("127.0.0.1", port + 10_000))
                return port
            except OSError:
                continue


class RedisCluster:
    """``masters`` masters, each with ``replicas`` replicas; ``start`` returns once every
    node sees every slot served (``cluster_state:ok``)."""

    def __init__(self, directory: Path, binary: str, masters: int = 3, replicas: int = 1,
                 password: str | None = None) -> None:  # fmt: skip
        self.password = password
        self.replicas = replicas
        args = ["--cluster-enabled", "yes", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                *(["--masterauth", password] if password else [])]  # fmt: skip
        self.nodes = [
            RedisServer(directory / f"node-{n}", binary=binary, password=password, args=args)
            for n in range(masters * (1 + replicas))
        ]
        for node in self.nodes:
            node.port = _node_port()

    def url(self) -> str:
        """The engine's ``redis+cluster://`` URL, every node a seed, with the password."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis+cluster://{auth}" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, socket_timeout=5,
                           decode_responses=True)  # fmt: skip

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        subprocess.run(
            ["redis-cli", *(["-a", self.password, "--no-auth-warning"] if self.password else []),
             "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_until(self._settled, 30, "every node of the cluster to see every slot served")
        return self

    def _settled(self) -> bool:
        for node in self.nodes:
            with self.client(node.port) as client:
                if client.cluster("info")["cluster_state"] != "ok":
                    return False
                # Replicas known to each node: a failover then has one to promote.
                known = client.cluster("nodes")
                if (
                    sum("slave" in n["flags"] for n in known.values())
                    != len(self.nodes) // (1 + self.replicas) * self.replicas
                ):
                    return False
        return True

    def master_of(self, slot: int) -> int:
        """The port of the master serving ``slot``, as the first node that answers says."""
        with self.client(self.nodes[0].port) as client:
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    return int(master[1])
        raise AssertionError(f"no master serves slot {slot}")

    def masters(self) -> list[int]:
        with self.client(self.nodes[0].port) as client:
            return sorted({int(r[2][1]) for r in client.execute_command("CLUSTER", "SLOTS")})

    def migrate_slot(self, slot: int, target: int, batch: int = 10) -> None:
        """Move ``slot`` to the master on port ``target`` as ``redis-cli --cluster reshard``
        does, ``batch`` keys at a time: clients meanwhile meet ASK for the keys already
        moved, then MOVED once the slot is the target's."""
        source = self.master_of(slot)
        with self.client(source) as src, self.client(target) as dst:
            src_id, dst_id = (
                src.execute_command("CLUSTER", "MYID"),
                dst.execute_command("CLUSTER", "MYID"),
            )
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
                auth = ["AUTH", self.password] if self.password else []
                src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, *auth,
                                    "KEYS", *keys)  # fmt: skip
            for client in (dst, src):
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            for node in self.nodes:  # tell every node at once rather than wait for gossip
                with self.client(node.port) as client:
                    if node.port not in (source, target):
                        try:
                            client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
                        except redis.ResponseError:
                            pass  # a replica takes no SETSLOT: it learns from its master

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def queues_on_masters(cluster: RedisCluster) -> list[str]:
    """A queue name per master, each served by a different one (the slot of queue Q is the
    slot of its hash tag, ``{Q}``)."""
    found: dict[int, str] = {}
    names = (f"q{n}" for n in range(10_000))
    while len(found) < len(cluster.masters()):
        name = next(names)
        found.setdefault(cluster.master_of(key_slot(name.encode())), name)
    return list(found.values())
