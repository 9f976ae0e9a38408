"""Worker processes with the periodic jobs of tests/periodic_app."""

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.periodic_app"]  # noqa: F405
