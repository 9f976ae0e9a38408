"""The pytest plugin of django-redis-worker, registered by the package's ``pytest11``
entry point: on wherever the package is installed, and inert unless pytest-django runs
with Django configured. ``-p no:django_redis_worker`` turns it off; the ini option
``worker_isolation = false`` keeps TASKS as the settings give it.

- Every test (and the session, for what class and session fixtures enqueue) runs with
  TASKS isolated: each Redis backend under a key prefix of its own (with the pytest-xdist
  worker's name), deleted after it, so that a development worker on the same Redis never
  runs a test's job; in-process backends are made anew for each test.
- ``enqueued_jobs``: what the test enqueued, with ``assert_enqueued(...)``.

``run_jobs`` / ``arun_jobs`` and the rest are imported from ``worker.testing``. Loaded by
every pytest run in the environment, this module imports nothing of the engine's (beyond
the package's ``__init__``) until a fixture needs it, and changes nothing where pytest-django
does not run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from worker.testing.enqueued import EnqueuedJobs


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "worker_isolation",
        type="bool",
        default=True,
        help="django-redis-worker: run each test with its Redis keys under a prefix of its "
        "own (default: true)",
    )


def _isolating(config: pytest.Config) -> bool:
    if not config.getini("worker_isolation") or not config.pluginmanager.hasplugin("django"):
        return False
    from django.conf import settings

    return settings.configured


@pytest.fixture(scope="session", autouse=True)
def _worker_isolated_session(request: pytest.FixtureRequest) -> Iterator[None]:
    if not _isolating(request.config):
        yield
        return
    from worker.testing.isolation import isolated_tasks

    with isolated_tasks():
        yield


@pytest.fixture(autouse=True)
def _worker_isolated(request: pytest.FixtureRequest) -> Iterator[None]:
    if not _isolating(request.config):
        yield
        return
    from worker.testing.isolation import isolated_tasks

    with isolated_tasks():
        yield


@pytest.fixture
def enqueued_jobs() -> Iterator[EnqueuedJobs]:
    """The jobs the test enqueues (sent: not those still waiting for a commit), with
    ``assert_enqueued(task, args=..., kwargs=..., count=...)``."""
    from worker.testing.enqueued import EnqueuedJobs

    with EnqueuedJobs() as jobs:
        yield jobs
