"""Where a task must be defined for workers to know it: a worker imports each installed
app's ``tasks`` module as it starts (and never a module a job names), so an enqueue of a
task defined anywhere else is refused at the call site, naming the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT, project_env
from worker.ops.api import Ops

pytestmark = pytest.mark.e2e

SERVICES = "from django.tasks import task\n\n@task()\ndef notify(n: int) -> int:\n    return n\n"


@pytest.fixture
def project(tmp_path, redis_url, tasks_prefix) -> Path:
    """An installed app ``lateapp`` with an empty tasks module and a task in its
    ``services`` module; a module ``loose`` outside every app with another."""
    app = tmp_path / "lateapp"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "tasks.py").write_text("")
    (app / "services.py").write_text(SERVICES)
    (tmp_path / "loose.py").write_text(SERVICES)
    (tmp_path / "late_settings.py").write_text(
        'from project.settings import *\nINSTALLED_APPS = [*INSTALLED_APPS, "lateapp"]\n'
    )
    return tmp_path


def manage(project: Path, redis_url: str, prefix: str, *args: str) -> subprocess.CompletedProcess:
    env = project_env(DJANGO_SETTINGS_MODULE="late_settings", PYTHONPATH=str(project),
                      REDIS_URL=redis_url, TASKS_PREFIX=prefix)  # fmt: skip
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def enqueue(project: Path, redis_url: str, prefix: str, module: str) -> subprocess.CompletedProcess:
    code = f"from {module} import notify; print(notify.enqueue(7).id)"
    return manage(project, redis_url, prefix, "shell", "-c", code)


def test_a_task_defined_outside_the_tasks_module_is_refused_naming_the_fix(
    project, redis_url, tasks_prefix, backend
):
    done = enqueue(project, redis_url, tasks_prefix, "lateapp.services")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "django.tasks.exceptions.InvalidTask: lateapp.services.notify is defined in "
        "lateapp.services, which Django does not import as it starts: a worker would not "
        "know the task. Define it in lateapp.tasks, or import it there (workers import each "
        "installed app's tasks module at start, never the module a job names)"
    )
    loose = enqueue(project, redis_url, tasks_prefix, "loose")
    assert loose.returncode == 1
    assert "Define it in the tasks module of an app in INSTALLED_APPS" in loose.stderr
    assert Ops(backend).stats("default").ready == 0  # nothing was sent


def test_imported_by_the_apps_tasks_module_it_is_enqueued_and_run(
    project, redis_url, tasks_prefix, backend
):
    (project / "lateapp" / "tasks.py").write_text("from lateapp.services import notify  # noqa\n")
    done = enqueue(project, redis_url, tasks_prefix, "lateapp.services")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip().splitlines()[-1]
    ran = manage(project, redis_url, tasks_prefix, "runworker", "--burst", "--no-scheduler")
    assert ran.returncode == 0, ran.stderr
    record = Ops(backend).job(job_id)
    assert (record.status, record.return_value) == ("SUCCESSFUL", 7)
