"""Fixtures of the jobs tests; TASKS on a real Redis comes from tests/conftest.py, and
``enqueued_jobs`` (what a test enqueued) from the package's pytest plugin
(worker/testing/pytest_plugin.py)."""

from collections.abc import AsyncIterator, Iterator

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.tasks import TaskResultStatus

from jobs.tasks import sync_orders
from tests.jobs.servers import LocalServer, OrderService, WebhookReceiver
from worker.context import JobContext, Progress
from worker.results import make_result


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


class Reported(list):
    """A Reporter (worker/context.py) that keeps each progress report: (done, total,
    note), in order."""

    def report(self, job_id: str, progress: bytes | None, metadata: bytes | None) -> None:
        if progress is not None:
            reported = Progress.from_json(progress)
            self.append((reported.done, reported.total, reported.note))


@pytest.fixture
def context() -> JobContext:
    """The context a worker gives sync_orders, for calling it directly; its ``reporter``
    lists the progress it reported."""
    result = make_result(sync_orders, "default:" + "0" * 27, TaskResultStatus.RUNNING, [], {},
                         "default")  # fmt: skip
    return JobContext(task_result=result, reporter=Reported())
