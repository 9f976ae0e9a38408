"""Fixtures of the jobs tests; TASKS on a real Redis comes from tests/conftest.py, and
``enqueued_jobs`` (what a test enqueued) from the package's pytest plugin
(worker/testing/pytest_plugin.py)."""

from collections.abc import AsyncIterator, Iterator

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from tests.jobs.servers import LocalServer, OrderService, WebhookReceiver


@pytest.fixture(autouse=True)
async def close_orm_thread_connections() -> AsyncIterator[None]:
    """The async ORM runs queries in asgiref's sync thread, whose connections pytest-django
    never closes; left open, PostgreSQL refuses to drop the test database at the end."""
    yield
    await sync_to_async(connections.close_all)()


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
