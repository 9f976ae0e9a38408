"""Testing a project's own tasks: in-process backends, running the jobs waiting, assertions
on what was enqueued, a Redis prefix of each test's own. See docs/testing.md.

    from worker.testing import run_jobs, assert_enqueued

The names below are imported on first use (``worker.testing.ImmediateBackend`` in TASKS
imports only what it needs; the pytest plugin, loaded by every pytest run, nothing).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.testing.backends import ImmediateBackend, RecordingBackend
    from worker.testing.commit import send_waiting_jobs
    from worker.testing.enqueued import EnqueuedJobs, assert_enqueued, assert_nothing_enqueued
    from worker.testing.isolation import isolated, isolated_tasks
    from worker.testing.local import InProcessBackend
    from worker.testing.running import arun_jobs, run_jobs
    from worker.testing.settings import in_process
    from worker.testing.testcase import JobsTestMixin

_WHERE = {
    "ImmediateBackend": "backends",
    "RecordingBackend": "backends",
    "InProcessBackend": "local",
    "run_jobs": "running",
    "arun_jobs": "running",
    "EnqueuedJobs": "enqueued",
    "assert_enqueued": "enqueued",
    "assert_nothing_enqueued": "enqueued",
    "send_waiting_jobs": "commit",
    "isolated": "isolation",
    "isolated_tasks": "isolation",
    "in_process": "settings",
    "JobsTestMixin": "testcase",
}

__all__ = [
    "EnqueuedJobs",
    "ImmediateBackend",
    "InProcessBackend",
    "JobsTestMixin",
    "RecordingBackend",
    "arun_jobs",
    "assert_enqueued",
    "assert_nothing_enqueued",
    "in_process",
    "isolated",
    "isolated_tasks",
    "run_jobs",
    "send_waiting_jobs",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'worker.testing' has no attribute {name!r}")
    return getattr(import_module(f"worker.testing.{module}"), name)
