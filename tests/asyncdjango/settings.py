"""Settings of the processes the async-Django tests start (manage.py commands, migrate,
runworker): the test suite's (tests/e2e_settings.py) plus the app ``shop``, whose commands,
models, migrations and tasks those tests use."""

from tests.e2e_settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.asyncdjango.shop"]  # noqa: F405
