"""The private parts of Django and asgiref that worker.testing, worker/pending.py and the
runtime read, pinned down: if an upgrade changes one, these fail before a user's tests
start sending a TestCase's jobs to the development queues, or stop finding jobs that wait
for a commit. (Each use falls back to a safe, slower behaviour when the part is missing;
these say which fallback a new version would fall into.)"""

import sys
from contextvars import ContextVar

import pytest
from asgiref.sync import SyncToAsync
from django.db import connection, transaction
from django.test import TestCase

from worker.runtime import attempt

pytestmark = pytest.mark.django_db


class TestCaseBlocks(TestCase):
    calls: list[str] = []

    @classmethod
    def _enter_atomics(cls):
        # JobsTestMixin isolates TASKS here: once the class's settings are on, before
        # setUpTestData; `cls_atomics` is set only after this call returns.
        cls.calls.append("class" if "cls_atomics" not in vars(cls) else "test")
        return super()._enter_atomics()

    @classmethod
    def setUpTestData(cls):
        cls.calls.append("setUpTestData")

    def test_the_blocks_a_testcase_opens_are_marked_and_the_codes_own_are_not(self):
        # worker/pending.py: an enqueue inside only a TestCase's blocks is sent at once.
        blocks = connection.atomic_blocks
        assert blocks and all(block._from_testcase for block in blocks)
        with transaction.atomic():
            assert not connection.atomic_blocks[-1]._from_testcase

    def test_on_commit_callbacks_are_a_list_of_savepoints_callback_robust(self):
        # worker/pending.py finds the jobs waiting for a commit, and takes them off, there.
        def callback():
            pass

        with transaction.atomic():
            transaction.on_commit(callback, robust=False)
            [entry] = connection.run_on_commit
        assert isinstance(connection.run_on_commit, list)
        assert entry[1] is callback and entry[2] is False

    def test_enter_atomics_is_called_for_the_class_before_its_test_data(self):
        assert self.calls[:2] == ["class", "setUpTestData"]


def test_the_test_environment_keeps_its_saved_state():
    # backend._under_tests: the test environment pytest-django (and Django's runner) set up.
    state = sys.modules["django.test.utils"]._TestState
    assert state.saved_data is not None


def test_asgirefs_thread_routing_is_the_one_slots_register_with():
    # runtime/attempt.py: each job's sync_to_async calls go to the job's own thread.
    assert isinstance(SyncToAsync.thread_sensitive_context, ContextVar)
    assert hasattr(SyncToAsync.context_to_thread_executor, "__setitem__")
    assert attempt._registered
