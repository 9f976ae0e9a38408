"""Settings for worker processes started by tests: the project's, plus the test suite's own
tasks (tests/engine/tasks.py) and the benchmark workloads (bench/tasks.py) as apps' tasks,
so the worker may run them."""

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.engine", "bench"]  # noqa: F405
