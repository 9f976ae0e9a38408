"""Fixtures every test may use: a real Redis, TASKS pointed at it under a prefix of the
test's own, and an in-process worker."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import redis
from django.db import connection
from django.tasks import task_backends
from django.test import SimpleTestCase

from tests.databases import process_database  # noqa: F401 - a fixture for every test
from worker.protocol.servers import RedisServer

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture
def tasks_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def tasks_setting(url: str, prefix: str, **options) -> dict:
    return {
        "default": {
            "BACKEND": "worker.backend.RedisBackend",
            "QUEUES": ["default", "reports", "other"],
            "OPTIONS": {"url": url, "prefix": prefix, **options},
        }
    }


@pytest.fixture(autouse=True)
def tasks_on_redis(request, settings, redis_url, tasks_prefix) -> Iterator[None]:
    """Every test's jobs go to the real Redis, under keys of its own, removed afterwards.
    Django's test classes (tests/testing) choose their TASKS themselves, as a project's
    own tests do."""
    if isinstance(request.instance, SimpleTestCase):
        yield
        return
    settings.TASKS = tasks_setting(redis_url, tasks_prefix)
    yield
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{tasks_prefix}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def backend():
    return task_backends["default"]


@pytest.fixture
def run_worker(backend):
    """``async with run_worker(concurrency=...) as worker:`` runs a worker on this loop."""
    from worker.runtime.worker import Worker

    @asynccontextmanager
    async def running(**options) -> AsyncIterator[Worker]:
        options.setdefault("poll", 0.2)
        options.setdefault("scheduler", False)  # the project's periodic jobs would add jobs
        worker = backend.worker(options.pop("queues", None), **options)
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)

    return running


@pytest.fixture(autouse=True)
def _postgres_required(request) -> None:
    """Tests marked ``postgres`` skip with a reason when DATABASE_URL is not PostgreSQL;
    under CI=true a missing service is a failure, not a skip."""
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        reason = "needs DATABASE_URL naming a PostgreSQL database"
        if IN_CI:
            pytest.fail(f"CI: {reason}")
        pytest.skip(reason)


@pytest.fixture
def private_redis(tmp_path, settings, tasks_prefix) -> Iterator[redis.Redis]:
    """A Redis of the test's own (the test changes its configuration), TASKS pointed at it;
    a client of it."""
    server = RedisServer(tmp_path / "redis").start()
    settings.TASKS = tasks_setting(server.url, tasks_prefix)
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()
    server.stop()


def out_of_memory(client: redis.Redis) -> None:
    """From now on, the Redis of ``client`` refuses every write that may grow its memory."""
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) // 2)


@pytest.fixture
def full_redis(private_redis) -> redis.Redis:
    """A private Redis that is out of memory."""
    out_of_memory(private_redis)
    return private_redis


@pytest.fixture
def fetches(monkeypatch) -> list[int]:
    """One entry per FETCH any worker of this process sends, from now on."""
    from worker.protocol.queue import Queue

    sent: list[int] = []
    real = Queue.fetch

    async def counted(self, *args, **kwargs):
        sent.append(1)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(Queue, "fetch", counted)
    return sent
