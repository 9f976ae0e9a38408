"""JobsTestMixin needs no pytest: Django's own test runner (`manage.py test`) runs the test
classes of test_on_commit.py, the mixin isolating TASKS and recording what is enqueued."""

import subprocess
import sys

from tests.processes import ROOT, project_env


def test_manage_py_test_runs_the_test_classes(redis_url):
    # On SQLite: pytest-django's own test database (on PostgreSQL, with DATABASE_URL) has
    # the name Django's runner would give its own.
    env = project_env(REDIS_URL=redis_url)
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "test", "tests.testing.test_on_commit", "-v", "2",
         "--noinput"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert "Ran 15 tests" in done.stderr and "OK" in done.stderr
