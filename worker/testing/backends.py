"""The in-process TASKS backends for tests: every option of ``@task(...)`` works, no Redis
is needed, and jobs run in the test's own thread (its database connection, its
transaction).

    TASKS = {"default": {"BACKEND": "worker.testing.ImmediateBackend",
                         "QUEUES": ["default", "reports"]}}

See docs/testing.md.
"""

from __future__ import annotations

from typing import ClassVar

from worker.testing.local import InProcessBackend


class ImmediateBackend(InProcessBackend):
    """Runs each job as it is enqueued (inside the code's own ``transaction.atomic()``: as
    it commits; never if it rolls back), with the engine's retries, timeout and
    uniqueness: ``enqueue`` returns once the job has ended, its result final. A job
    deferred with ``run_after`` waits for ``run_jobs()``."""

    runs_at_enqueue: ClassVar[bool] = True


class RecordingBackend(InProcessBackend):
    """Keeps the jobs it is given, unrun, for a test to look at (``results``,
    ``assert_enqueued``), like Django's DummyBackend; ``run_jobs()`` runs them then, as a
    worker would."""

    runs_at_enqueue: ClassVar[bool] = False
