"""Helpers for Django's test classes (``TestCase``, ``TransactionTestCase``,
``SimpleTestCase``), with or without pytest."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from worker.testing.enqueued import EnqueuedJobs
from worker.testing.isolation import isolated_tasks
from worker.testing.running import arun_jobs, run_jobs

if TYPE_CHECKING:
    from django.test import SimpleTestCase

    from worker.task import Result, Task

    _Base = SimpleTestCase
else:
    _Base = object


class JobsTestMixin(_Base):
    """Put it before Django's class::

        class ReportTests(JobsTestMixin, TestCase):
            def test_a_report_is_delivered(self):
                self.client.post("/reports/")
                self.assertEnqueued(send_report, count=1)
                self.run_jobs()

    Each test class, and each test, runs with TASKS isolated (worker/testing/isolation.py:
    a Redis key prefix of its own, deleted after it; in-process backends made anew), and
    each test records what it enqueues in ``self.enqueued_jobs``. Set ``isolate_tasks =
    False`` to keep TASKS as it is."""

    isolate_tasks: ClassVar[bool] = True
    enqueued_jobs: EnqueuedJobs

    @classmethod
    def setUpClass(cls) -> None:
        if cls.isolate_tasks:  # for what the class's own setUpClass enqueues
            cls.enterClassContext(isolated_tasks())
        super().setUpClass()

    @classmethod
    def _enter_atomics(cls) -> Any:
        # TestCase calls this once the class's own override_settings (which may name TASKS)
        # are on, and before setUpTestData, which may enqueue. (Django's private hook:
        # without it, the isolation of setUpClass stands.)
        # Called again before each test (for the test's own atomics): the class is
        # isolated once, as its atomics are entered (cls_atomics is set after this call).
        if cls.isolate_tasks and "cls_atomics" not in vars(cls):
            cls.enterClassContext(isolated_tasks())
        return super()._enter_atomics()  # type: ignore[misc]

    def setUp(self) -> None:
        super().setUp()
        if self.isolate_tasks:
            self.enterContext(isolated_tasks())
        self.enqueued_jobs = self.enterContext(EnqueuedJobs())

    def run_jobs(self, backend: str | None = None, **options: Any) -> int:
        """``worker.testing.run_jobs``: run every job waiting, until none is left."""
        return run_jobs(backend, **options)

    async def arun_jobs(self, backend: str | None = None, **options: Any) -> int:
        return await arun_jobs(backend, **options)

    def assertEnqueued(
        self,
        task: Task | str,
        *,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        count: int | None = None,
        queue_name: str | None = None,
    ) -> list[Result]:
        """The jobs of ``task`` this test enqueued (with these arguments, into this queue);
        a failure unless there are ``count`` of them (by default: at least one)."""
        return self.enqueued_jobs.assert_enqueued(
            task, args=args, kwargs=kwargs, count=count, queue_name=queue_name
        )

    def assertNothingEnqueued(self, task: Task | str | None = None) -> None:
        self.enqueued_jobs.assert_nothing_enqueued(task)
