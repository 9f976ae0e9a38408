"""Fixtures of the tests of worker/testing: TASKS on an in-process backend (the root
conftest puts it on a real Redis, under a prefix of the test's own, first)."""

import os
from collections.abc import Iterator

import pytest
from django.tasks import task_backends

from tests.jobs.conftest import close_orm_thread_connections  # noqa: F401 (autouse)
from tests.testing import tasks
from worker.testing import ImmediateBackend, RecordingBackend

QUEUES = ["default", "reports", "other"]


def in_process_setting(backend: str, **options: object) -> dict:
    return {
        "default": {
            "BACKEND": f"worker.testing.{backend}",
            "QUEUES": QUEUES,
            "OPTIONS": options,
        }
    }


@pytest.fixture(autouse=True)
def clear_calls() -> Iterator[None]:
    tasks.calls.clear()
    yield
    tasks.calls.clear()


@pytest.fixture
def immediate(settings) -> ImmediateBackend:
    settings.TASKS = in_process_setting("ImmediateBackend")
    return task_backends["default"]


@pytest.fixture
def recording(settings) -> RecordingBackend:
    settings.TASKS = in_process_setting("RecordingBackend")
    return task_backends["default"]


def redis_setting(**options: object) -> dict:
    """TASKS on the test Redis (REDIS_URL, else the embedded one), as a project's own test
    settings would say, for Django's test classes; the pytest plugin (or JobsTestMixin)
    gives each test a prefix of its own."""
    url = os.environ.get("REDIS_URL") or "embedded"
    return {
        "default": {
            "BACKEND": "worker.backend.RedisBackend",
            "QUEUES": QUEUES,
            "OPTIONS": {"url": url, "prefix": "tasks", **options},
        }
    }
