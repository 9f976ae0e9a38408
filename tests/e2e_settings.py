"""Settings for worker processes started by tests (and by bench/faults.py): the project's,
plus the test suite's own tasks (tests/engine/tasks.py) as an app's tasks, so the worker may
run them."""

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.engine"]  # noqa: F405

# Their database is not migrated (they run the suite's jobs, not the site): no outbox.
TASKS["default"]["OPTIONS"]["outbox"] = False  # noqa: F405
