"""Redis Sentinel failover under load: a master, its replica and three sentinels; a real
``runworker`` and the test's enqueues find the master through the sentinels
(``redis+sentinel://``). The master is killed (SIGKILL) while its replica lags behind; the
sentinels promote the replica, and the worker and the enqueues carry on with it, neither
restarted. Counted: the jobs whose enqueue was acknowledged that never ran (lost), with
Redis's asynchronous replication and with ``durability = "replicated"``."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import tasks_setting
from tests.engine.helpers import eventually
from tests.processes import project_env, runworker, stop
from tests.sentinel import SentinelRedis, needed_redis_binary
from worker.exceptions import BrokerUnavailable

pytestmark = pytest.mark.e2e

# A job of ~3 KB: a burst of them outgrows what the kernel's socket buffers hold for a
# replica that does not read, and the rest waits in the master's memory, which dies with it.
PAD = "x" * 3000
WAIT_TIMEOUT = 0.2  # OPTIONS durability_timeout, seconds


@pytest.fixture
def topology(tmp_path) -> Iterator[SentinelRedis]:
    started = SentinelRedis(tmp_path / "redis", needed_redis_binary()).start()
    yield started
    started.stop()


class Enqueues:
    """What the test's enqueues were told: acknowledged, or not (maybe stored, or not)."""

    def __init__(self) -> None:
        self.acked: set[str] = set()
        self.unacked = 0
        self.not_replicated = 0  # of the unacked, those Redis stored but no replica confirmed

    async def one(self, label: str) -> bool:
        from tests.failover_app.tasks import record

        try:
            await record.aenqueue(label)
        except BrokerUnavailable:
            self.unacked += 1
            return False
        self.acked.add(label)
        return True

    async def bulk(self, labels: list[str]) -> bool:
        """Whether every job was acknowledged."""
        from tests.failover_app.tasks import record

        try:
            await record.aenqueue_many([((label, PAD), {}) for label in labels])
        except BrokerUnavailable as e:
            confirmed = {result.args[0] for result in e.enqueued}
            self.acked |= confirmed
            self.unacked += len(labels) - len(confirmed)
            self.not_replicated += "no replica confirmed" in str(e)
            return False
        self.acked.update(labels)
        return True


@pytest.fixture(params=["async", "replicated"])
def durability(request, topology, settings, tasks_prefix) -> str:
    """TASKS on the sentinels' master, with OPTIONS durability as given; set before
    ``backend`` is made."""
    settings.TASKS = tasks_setting(topology.url(), tasks_prefix, durability=request.param,
                                   durability_timeout=WAIT_TIMEOUT)  # fmt: skip
    return str(request.param)


def ran(ledger: Path) -> Counter[str]:
    return Counter(ledger.read_text().split()) if ledger.exists() else Counter()


def drained(backend) -> bool:
    """Nothing left in the queue of the master of the moment: no job ready, delayed, held
    or leased (a lease the worker forgot is put back, and runs, in time)."""
    queue = backend.broker.queue("default")
    return sum(queue.sizes("ready", "delayed", "held")) == 0 and not queue.running_ids()


async def test_the_worker_and_enqueues_ride_out_a_failover(
    durability, topology, tasks_prefix, tmp_path, backend
):
    url = topology.url()
    ledger, log = tmp_path / "ledger", tmp_path / "worker.log"
    env = project_env(
        REDIS_URL=url, TASKS_PREFIX=tasks_prefix, FAILOVER_LEDGER=str(ledger),
        DJANGO_SETTINGS_MODULE="tests.failover_settings",
        TASKS_DURABILITY=durability, TASKS_DURABILITY_TIMEOUT=str(WAIT_TIMEOUT),
    )  # fmt: skip
    worker = runworker(env, log, "--no-scheduler", "--concurrency", "50")
    enqueues = Enqueues()
    try:
        for n in range(300):  # jobs flowing, the replica in step
            assert await enqueues.one(f"before-{n}")
        await eventually(lambda: len(ran(ledger)) >= 100, 30, "the worker to run jobs")

        # The replica stops reading (as one that lags behind) while a burst of jobs comes,
        # until an enqueue is not acknowledged; the master dies with what it could not send.
        replica = topology.pair.replica.process
        replica.send_signal(signal.SIGSTOP)
        for chunk in range(4):
            if not await enqueues.bulk([f"burst-{chunk}-{n}" for n in range(1000)]):
                break
        topology.pair.master.process.kill()
        topology.pair.master.process.wait()
        replica.send_signal(signal.SIGCONT)
        killed = time.monotonic()

        # Enqueues fail until the sentinels promote the replica. The dead master is started
        # again, as the new master's replica: with durability "replicated", enqueues are
        # acknowledged again only then.
        after, back_after, restarted = 0, None, False
        while after < 300:
            assert time.monotonic() < killed + 60, "enqueues did not carry on after the failover"
            if not restarted and topology.master_port() == topology.pair.replica.port:
                topology.pair.rejoin()
                restarted = True
            if await enqueues.one(f"after-{after}"):
                after += 1
                back_after = back_after or time.monotonic() - killed
            else:
                await asyncio.sleep(0.05)  # a failover takes seconds: no need to spin
        await eventually(lambda: enqueues.acked <= set(ran(ledger)) or drained(backend), 90,
                         "every job left to run")  # fmt: skip
        assert worker.poll() is None, "the worker died"
    finally:
        code = stop(worker)
    runs = ran(ledger)
    lost = enqueues.acked - set(runs)
    print(
        f"\ndurability={durability}: {len(enqueues.acked)} enqueues acknowledged, "
        f"{len(lost)} of them lost; {enqueues.unacked} not acknowledged "
        f"({enqueues.not_replicated} calls told no replica confirmed); "
        f"{sum(n - 1 for n in runs.values())} runs repeated; enqueues carried on "
        f"{back_after:.1f} s after the kill"
    )
    said = log.read_text()
    assert code == 0, said
    assert "Redis is back" in said, said
    assert {f"after-{n}" for n in range(300)} - set(runs) == set()  # the worker carried on
    if durability == "replicated":
        assert lost == set()
        assert enqueues.not_replicated > 0  # the lagging replica was waited for
    else:
        assert lost, "the burst should outgrow what reached the replica"
