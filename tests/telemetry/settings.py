"""Worker processes of the telemetry tests: the test suite's settings, plus this package's
tasks."""

from tests.e2e_settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.telemetry"]  # noqa: F405
