import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from asgiref.sync import sync_to_async
from django.db import connections
from django.tasks import TaskResult
from django.tasks.signals import task_enqueued

from tests.jobs.servers import LocalServer, OrderService, WebhookReceiver

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(autouse=True)
def tasks_on_redis(settings) -> Iterator[None]:
    """TASKS on the real Redis under a prefix of this test's own, removed afterwards."""
    prefix = f"test-jobs-{uuid.uuid4().hex[:12]}"
    settings.TASKS = {
        "default": {
            "BACKEND": "worker.backend.RedisBackend",
            "QUEUES": ["default", "reports"],
            "OPTIONS": {"url": REDIS_URL, "prefix": prefix},
        }
    }
    yield
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture(autouse=True)
async def close_orm_thread_connections() -> AsyncIterator[None]:
    """The async ORM runs queries in asgiref's sync thread, whose connections pytest-django
    never closes; left open, PostgreSQL refuses to drop the test database at the end."""
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def enqueued() -> Iterator[list[TaskResult]]:
    """Every job sent to the broker during the test (sent, not merely requested: a job
    deferred to a commit that never comes does not appear)."""
    sent: list[TaskResult] = []

    def record(sender: object, task_result: TaskResult, **kwargs: object) -> None:
        sent.append(task_result)

    task_enqueued.connect(record, dispatch_uid="tests.jobs.enqueued")
    yield sent
    task_enqueued.disconnect(dispatch_uid="tests.jobs.enqueued")


@pytest.fixture
def order_service(settings) -> Iterator[OrderService]:
    service = OrderService()
    with LocalServer(service) as server:
        settings.ORDER_SERVICE_URL = f"{server.base_url}/orders"
        # Short, so a stalled page fails the attempt quickly.
        settings.ORDER_SERVICE_TIMEOUT = 0.3
        yield service


@pytest.fixture
def webhook(settings) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    with LocalServer(receiver) as server:
        settings.REPORT_WEBHOOK_URL = f"{server.base_url}/webhook"
        settings.REPORT_WEBHOOK_TIMEOUT = 0.3
        yield receiver
