"""System checks of the dashboard: its setting, and the apps and middleware it needs."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.tasks import task_backends

from worker.dashboard import conf

NEEDED_APPS = ("django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
               "django.contrib.staticfiles")  # fmt: skip
# (The dashboard checks CSRF tokens itself: CsrfViewMiddleware is not needed.)
NEEDED_MIDDLEWARE = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
)


@register()
def dashboard_setup(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    found: list[CheckMessage] = [Error(line, id="worker.E101") for line in conf.errors()]
    for name in NEEDED_APPS:
        if not apps.is_installed(name):
            found.append(Error(f"worker.dashboard needs {name!r} in INSTALLED_APPS",
                               id="worker.E102"))  # fmt: skip
    for name in NEEDED_MIDDLEWARE:
        if name not in settings.MIDDLEWARE:
            found.append(Error(f"worker.dashboard needs {name!r} in MIDDLEWARE",
                               id="worker.E103"))  # fmt: skip
    # A backend of another kind is let be: test settings often swap TASKS for an in-process
    # backend with the dashboard still installed (its pages then say what is wrong).
    alias = conf.config().backend if not found else None
    if alias is not None and alias not in task_backends.settings:
        known = ", ".join(task_backends.settings) or "none"
        found.append(Error(f"TASKS_DASHBOARD['backend']: TASKS has no backend {alias!r} "
                           f"(it has: {known})", id="worker.E104"))  # fmt: skip
    return found
