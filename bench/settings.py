"""Settings of the processes a benchmark starts: the project's, plus the bench app's tasks."""

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]  # noqa: F405
