"""Jobs and transactions under Django's test classes: a TestCase's own transaction does
not hold jobs back (it never commits); the code's own atomic() does, until run_jobs() or
captureOnCommitCallbacks; under TransactionTestCase, jobs go at the real commit. Jobs run
in process see what the test wrote, in its transaction."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.tasks import TaskResultStatus, default_task_backend
from django.test import TestCase, TransactionTestCase, override_settings

from jobs.models import Order
from tests.testing import tasks
from tests.testing.conftest import in_process_setting, redis_setting
from worker.outbox.models import OutboxJob
from worker.testing import JobsTestMixin, run_jobs

SUCCESSFUL, READY = TaskResultStatus.SUCCESSFUL, TaskResultStatus.READY

# Django's test classes take their database from Django; the mark has `./run test` run them
# on PostgreSQL too (it selects the database tests with -m "django_db or postgres").
pytestmark = pytest.mark.django_db


def new_order(external_id: str = "O-1") -> Order:
    # Its post_save enqueues jobs.tasks.notify_new_order (the reference app's receiver).
    return Order.objects.create(external_id=external_id, customer="c", total=Decimal(1))


class Rollback(Exception):
    pass


class Jobs(JobsTestMixin):
    """Fresh backends for each test (JobsTestMixin), and the tasks' record of calls empty:
    under pytest or Django's own runner (test_django_runner.py)."""

    def setUp(self):
        super().setUp()
        tasks.calls.clear()


@override_settings(TASKS=in_process_setting("ImmediateBackend"))
class ImmediateUnderTestCase(Jobs, TestCase):
    def test_a_job_runs_at_enqueue_and_sees_the_tests_data(self):
        new_order()

        async_count = tasks.count_orders.enqueue()
        sync_count = tasks.count_orders_sync.enqueue()

        assert (async_count.status, async_count.return_value) == (SUCCESSFUL, 1)
        assert sync_count.return_value == 1
        [notify] = [r for r in default_task_backend.results if r.task.name == "notify_new_order"]
        assert notify.return_value["notified"] is True  # it found the order too

    def test_a_job_of_the_codes_own_transaction_waits_for_run_jobs(self):
        with transaction.atomic():
            new_order()
            result = tasks.count_orders.enqueue()
        result.refresh()
        assert result.status == READY  # the test's transaction never commits

        assert run_jobs() == 2  # it, and notify_new_order

        result.refresh()
        assert result.return_value == 1
        assert run_jobs() == 0

    def test_a_job_of_a_rolled_back_block_never_runs(self):
        with self.assertRaises(Rollback), transaction.atomic():
            new_order()
            tasks.add.enqueue(1)
            raise Rollback

        assert run_jobs() == 0
        assert tasks.calls == [] and default_task_backend.results == []

    def test_capture_on_commit_callbacks_sends_them_once(self):
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            with transaction.atomic():
                result = tasks.add.enqueue(2, 2)
        assert len(callbacks) == 1

        result.refresh()
        assert (result.status, result.return_value) == (SUCCESSFUL, 4)
        assert run_jobs() == 0  # not sent a second time
        assert tasks.ran("add") == [(2, 2)]

    def test_a_unique_call_waiting_for_the_commit_is_not_enqueued_twice(self):
        with transaction.atomic():
            first = tasks.unique_add.enqueue(1)
            again = tasks.unique_add.enqueue(1)
        assert again.id == first.id

        run_jobs()
        assert tasks.ran("unique_add") == [(1, 0)]

    async def test_an_async_test_runs_them_too(self):
        await Order.objects.acreate(external_id="A-1", customer="c", total=Decimal(1))

        result = await tasks.count_orders.aenqueue()

        assert result.return_value == 1


@override_settings(TASKS=redis_setting())
class RedisUnderTestCase(Jobs, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.class_prefix = default_task_backend.options_.prefix
        new_order("O-class")  # enqueues notify_new_order: under the class's own prefix

    def test_jobs_are_sent_at_once_and_run_by_run_jobs_in_the_tests_transaction(self):
        new_order()
        result = tasks.count_orders.enqueue()
        sync = tasks.count_orders_sync.enqueue()

        assert default_task_backend.get_result(result.id).status == READY  # in Redis
        assert self.run_jobs() == 3  # the two, and notify_new_order

        result.refresh()
        sync.refresh()
        assert (result.status, result.return_value, sync.return_value) == (SUCCESSFUL, 2, 2)
        self.assertEnqueued(tasks.count_orders, count=1)
        self.assertEnqueued("jobs.tasks.notify_new_order", count=1)
        self.assertNothingEnqueued(tasks.add)

    def test_a_job_of_the_codes_own_transaction_is_sent_by_run_jobs(self):
        with transaction.atomic():
            result = tasks.add.enqueue(1, 1)
        self.assertNothingEnqueued()

        assert self.run_jobs() == 1

        result.refresh()
        assert result.return_value == 2

    def test_each_test_and_class_has_a_prefix_of_its_own(self):
        prefix = default_task_backend.options_.prefix
        assert prefix.startswith("tasks-test-") and self.class_prefix.startswith("tasks-test-")
        assert prefix != self.class_prefix
        assert self.run_jobs() == 0  # the class's job is not this test's

    async def test_arun_jobs_from_an_async_test(self):
        await Order.objects.acreate(external_id="A-1", customer="c", total=Decimal(1))
        result = await tasks.count_orders.aenqueue()

        assert await self.arun_jobs() == 2

        await result.arefresh()
        assert result.return_value == 2


@override_settings(TASKS=redis_setting(outbox=True))
class RedisOutboxUnderTestCase(Jobs, TestCase):
    def test_a_job_of_the_codes_own_transaction_waits_in_the_outbox_until_run_jobs(self):
        with transaction.atomic():
            result = tasks.add.enqueue(1, 1)
        assert OutboxJob.objects.get().job_id == result.id
        assert default_task_backend.get_result(result.id).status == READY

        assert self.run_jobs() == 1

        assert not OutboxJob.objects.exists()
        result.refresh()
        assert result.return_value == 2


@override_settings(TASKS=in_process_setting("ImmediateBackend"))
class ImmediateUnderTransactionTestCase(Jobs, TransactionTestCase):
    def test_a_job_runs_at_the_commit_and_sees_what_it_committed(self):
        with transaction.atomic():
            new_order()
            result = tasks.count_orders_sync.enqueue()
            assert result.status == READY

        result.refresh()
        assert result.return_value == 1

    def test_a_job_of_a_rolled_back_transaction_never_runs(self):
        with self.assertRaises(Rollback), transaction.atomic():
            tasks.add.enqueue(1)
            raise Rollback

        assert run_jobs() == 0 and tasks.calls == []


@override_settings(TASKS=redis_setting())
class RedisUnderTransactionTestCase(Jobs, TransactionTestCase):
    def test_a_job_is_sent_at_the_commit_and_run_by_run_jobs(self):
        with transaction.atomic():
            new_order()
            result = tasks.count_orders.enqueue()
            self.assertNothingEnqueued()
        self.assertEnqueued(tasks.count_orders, count=1)

        assert self.run_jobs() == 2

        result.refresh()
        assert result.return_value == 1


@pytest.mark.django_db
def test_pytest_django_db_runs_jobs_in_the_tests_transaction(immediate):
    new_order()

    assert tasks.count_orders.enqueue().return_value == 1


@pytest.mark.django_db
def test_pytest_django_db_and_the_codes_own_atomic(recording):
    with transaction.atomic():
        tasks.add.enqueue(1)
    recording.assert_nothing_enqueued()  # waits for a commit that never comes

    assert run_jobs() == 1
    recording.assert_enqueued(tasks.add, count=1)


class NotIsolated(TestCase):
    """A TestCase whose TASKS no isolation of worker.testing covers: its transaction holds
    the jobs back, as the code's own would (sent at once, they would reach the queues a
    development worker serves)."""

    def test_an_enqueue_waits_for_a_commit_that_never_comes(self):
        from worker import pending

        saved, pending.isolations = pending.isolations, 0
        try:
            self.assertTrue(pending.in_transaction())
        finally:
            pending.isolations = saved
