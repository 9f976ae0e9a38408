"""The list of workers that heartbeat (P:heartbeats), behind `jobs status`, `jobs health`,
the dashboard and the metrics view: scored by Redis's clock, so that a worker whose own
clock runs fast drops no other worker from it."""

import time

import orjson

from worker.protocol.broker import UNLISTED_AFTER_MS


def heartbeat(worker_id: str) -> bytes:
    return orjson.dumps({"id": worker_id, "queues": ["default"]})


async def listed(broker) -> set[str]:
    return {orjson.loads(beat)["id"] for beat in await broker.live_heartbeats()}


async def test_a_worker_whose_clock_runs_hours_fast_drops_no_other(backend, monkeypatch):
    broker = backend.broker
    await broker.heartbeat("on-time:1:a", heartbeat("on-time:1:a"), 10_000)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 2 * UNLISTED_AFTER_MS / 1000)
    await broker.heartbeat("fast:1:a", heartbeat("fast:1:a"), 10_000)
    monkeypatch.undo()
    assert await listed(broker) == {"on-time:1:a", "fast:1:a"}
    assert set(broker.heartbeats()) == set(await broker.live_heartbeats())  # the sync reader


async def test_a_worker_silent_for_long_leaves_the_list_at_anothers_heartbeat(backend):
    broker = backend.broker
    server_ms = int(await broker.time() * 1000)
    gone = "gone:1:a"
    broker.sync.zadd(broker.keys.heartbeats(), {gone: server_ms - UNLISTED_AFTER_MS - 1000})
    broker.sync.set(broker.keys.heartbeat(gone), heartbeat(gone))  # as if it never expired
    assert await listed(broker) == {gone}
    await broker.heartbeat("live:1:a", heartbeat("live:1:a"), 10_000)
    assert await listed(broker) == {"live:1:a"}
