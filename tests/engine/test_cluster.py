"""Redis Cluster (``redis+cluster://``): the URL and what ``manage.py check`` says of it;
enqueues (single and bulk) landing on the master of each queue's slot; a worker waiting on
queues of several slots at once; a real ``runworker`` draining queues that live on
different masters; jobs flowing while a queue's slot moves to another master. Against a
real cluster of three masters and three replicas (tests/cluster.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.checks import Error
from django.tasks import TaskResultStatus, task_backends
from redis.crc import key_slot

from tests.cluster import RedisCluster, needed_cluster_binary, queues_on_masters
from tests.conftest import tasks_setting
from tests.engine import tasks
from tests.engine.helpers import finished
from tests.processes import runworker, stop, wait_until, worker_env
from worker import config
from worker.protocol.cluster import parse


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[RedisCluster]:
    started = RedisCluster(tmp_path_factory.mktemp("cluster"), needed_cluster_binary()).start()
    yield started
    started.stop()


@pytest.fixture
def queues(cluster) -> list[str]:
    return queues_on_masters(cluster)


@pytest.fixture
def on_cluster(cluster, settings, tasks_prefix, queues) -> RedisCluster:
    """TASKS on the cluster, allowed a queue per master besides those of the project."""
    settings.TASKS = tasks_setting(cluster.url(), tasks_prefix)
    settings.TASKS["default"]["QUEUES"] += queues
    yield cluster
    task_backends["default"].broker.close()


def url_errors(url: str) -> list[str]:
    _, errors = config.read("default", {"OPTIONS": {"url": url}}, {"url": url}, frozenset())
    return [f"{e.msg} [{e.id}]" for e in errors if isinstance(e, Error)]


# The URL


def test_the_url_names_the_seeds_and_the_nodes_credentials():
    seeds = parse("rediss+cluster://jobs:p%40ss@10.0.0.1:7000,[::1]:7001,node3?ssl_cert_reqs=none")
    assert seeds.addresses == (("10.0.0.1", 7000), ("::1", 7001), ("node3", 6379))
    assert seeds.tls
    assert (seeds.options["username"], seeds.options["password"]) == ("jobs", "p@ss")
    assert seeds.options["ssl_cert_reqs"] == "none"
    assert seeds.node_url("::1", 7001) == "rediss://jobs:p%40ss@[::1]:7001/0?ssl_cert_reqs=none"
    assert url_errors("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/0") == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://:secret@h:7000/1", "names database '1': a Redis Cluster has database 0"),
        ("redis+cluster://:secret@h:70000", "names node 'h:70000', whose port is not a number"),
        ("redis+cluster://:secret@,h:7000", "names a node without a host"),
        ("redis+cluster://:secret@h:7000?frobnicate=1", "its nodes' "),
        # a password with a '?' or a '/' not percent-encoded is read whole
        ("redis+cluster://:se?cret@h:7000/1", "names database '1'"),
        ("redis+cluster://:se/cret@h:70000", "names node 'h:70000'"),
    ],
)
def test_a_bad_cluster_url_is_named_by_the_check_without_its_password(url, problem):
    [message] = url_errors(url)
    assert problem in message and message.endswith("[worker.E003]"), message
    assert "secret" not in message and "cret" not in message


def test_replicated_durability_is_refused_on_a_cluster_for_now(on_cluster, settings):
    settings.TASKS["default"]["OPTIONS"]["durability"] = "replicated"
    with pytest.raises(ValueError, match="not supported on a Redis Cluster"):
        task_backends["default"].broker.sync.ping()


# The engine on a cluster


def keys_on(cluster: RedisCluster, port: int, prefix: str) -> list[str]:
    with cluster.client(port) as client:
        return list(client.scan_iter(f"{prefix}:*", count=1000))


async def test_enqueues_single_and_bulk_land_on_the_master_of_each_queue(
    on_cluster, queues, tasks_prefix, run_worker
):
    single = [await tasks.add.using(queue_name=q).aenqueue(1, i) for i, q in enumerate(queues)]
    bulk = [
        r for q in queues for r in await tasks.add.using(queue_name=q).aenqueue_many(
            [((i, i), {}) for i in range(50)]
        )
    ]  # fmt: skip
    synced = await asyncio.to_thread(tasks.add.using(queue_name=queues[-1]).enqueue, 2, 2)
    for queue in queues:
        master = on_cluster.master_of(key_slot(queue.encode()))
        mine = keys_on(on_cluster, master, tasks_prefix)
        assert any(f"{{{queue}}}" in key for key in mine), (queue, mine)
        assert all(f"{{{queue}}}" in key or "{" not in key for key in mine if queue in key)
    async with run_worker(queues=queues, concurrency=20):
        for result in [*single, *bulk, synced]:
            await finished(result, timeout=30)
    assert {r.status for r in [*single, *bulk, synced]} == {TaskResultStatus.SUCCESSFUL}
    assert [r.return_value for r in bulk[:50]] == [2 * i for i in range(50)]


async def test_a_worker_waits_on_queues_of_several_slots_and_loses_no_wake_up(on_cluster, queues):
    broker = task_backends["default"].broker
    connection = broker.waiting_connection()
    try:
        assert len({key_slot(q.encode()) for q in queues}) == len(queues) > 1
        assert await broker.wait_for_work(connection, queues, 0.2) is None
        waiting = asyncio.ensure_future(broker.wait_for_work(connection, queues, 30))
        await asyncio.sleep(0)  # the waits are sent
        await tasks.add.using(queue_name=queues[1]).aenqueue(1, 1)
        assert await asyncio.wait_for(waiting, 10) == queues[1]
        # Tokens of two queues at once: the second is the next wait's, not lost.
        for queue in (queues[0], queues[2]):
            await tasks.add.using(queue_name=queue).aenqueue(1, 1)
        woken = {await broker.wait_for_work(connection, queues, 30) for _ in range(2)}
        assert woken == {queues[0], queues[2]}
    finally:
        connection.close()


def test_runworker_drains_queues_that_live_on_different_masters(
    on_cluster, tasks_prefix, tmp_path: Path
):
    # The project's own queues: its runworker serves those of its settings.
    served = ["default", "reports"]
    assert len({on_cluster.master_of(key_slot(q.encode())) for q in served}) == 2
    results = [
        r for q in served for r in tasks.add.using(queue_name=q).enqueue_many(
            [((i, 1), {}) for i in range(100)]
        )
    ]  # fmt: skip
    log = tmp_path / "worker.log"
    worker = runworker(worker_env(on_cluster.url(), tasks_prefix), log,
                       *(f"--queue={q}" for q in served), "--concurrency=20")  # fmt: skip
    try:

        def all_done() -> bool:
            for result in results:
                result.refresh()
            return all(r.status == TaskResultStatus.SUCCESSFUL for r in results)

        wait_until(all_done, 60, f"the worker to run every job (log: {log})")
        late = tasks.add.using(queue_name="reports").enqueue(5, 5)  # wakes the idle worker
        wait_until(lambda: late.refresh() or late.status == TaskResultStatus.SUCCESSFUL, 20,
                   f"the idle worker to run a job enqueued later (log: {log})")  # fmt: skip
    finally:
        assert stop(worker) == 0, log.read_text()[-3000:]
    assert [r.return_value for r in results[:100]] == [i + 1 for i in range(100)]
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


async def test_jobs_flow_while_a_queue_slot_moves_to_another_master(on_cluster, queues, run_worker):
    queue = queues[0]
    slot = key_slot(queue.encode())
    target = next(m for m in on_cluster.masters() if m != on_cluster.master_of(slot))
    results = []
    moving = None
    during = 0  # enqueues sent while the slot moved (its keys 5 at a time)
    async with run_worker(queues=[queue], concurrency=10):
        while moving is None or not moving.done() or len(results) < 300:
            results.append(await tasks.add.using(queue_name=queue).aenqueue(len(results), 0))
            if len(results) == 100:
                moving = asyncio.ensure_future(
                    asyncio.to_thread(on_cluster.migrate_slot, slot, target, 5)
                )
            during += moving is not None and not moving.done()
        await moving
        for result in results:
            await finished(result, timeout=60)
    assert during > 0
    assert on_cluster.master_of(slot) == target
    assert {r.status for r in results} == {TaskResultStatus.SUCCESSFUL}
    assert [r.return_value for r in results] == list(range(len(results)))


async def test_a_workflow_on_one_queue_runs_and_one_across_slots_is_refused(
    on_cluster, queues, run_worker
):
    from worker.workflows import WorkflowStatus, chain, step

    queue = queues[0]
    flow = chain(
        step(tasks.add.using(queue_name=queue), 1, 2), step(tasks.add.using(queue_name=queue), 3, 4)
    )
    workflow = await flow.aenqueue()
    async with run_worker(queues=[queue], concurrency=4):
        assert (await workflow.afinished(10)).status == WorkflowStatus.SUCCEEDED
    across = chain(
        step(tasks.add.using(queue_name=queues[0]), 1, 2),
        step(tasks.add.using(queue_name=queues[1]), 3, 4),
    )
    with pytest.raises(ValueError, match="other slots"):
        await across.aenqueue()
