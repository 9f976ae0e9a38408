"""Worker processes of the failover tests: the project's settings, plus the job they run
(tests/failover_app)."""

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.failover_app"]  # noqa: F405

# Their database is not migrated: no outbox.
TASKS["default"]["OPTIONS"]["outbox"] = False  # noqa: F405
