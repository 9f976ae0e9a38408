"""How the CLI is reached (manage.py jobs, the django-jobs script) and how it fails: one
line on stderr, a non-zero exit status."""

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from django.core.management import ManagementUtility

from tests.cli.conftest import run
from tests.conftest import tasks_setting
from worker.ops import cli


def test_redis_unreachable_is_one_line_with_the_password_hidden(settings, tasks_prefix):
    settings.TASKS = tasks_setting("redis://:secret@127.0.0.1:9/0", tasks_prefix)
    for args in (["status"], ["list", "--json"], ["show", "default:" + "0" * 27]):
        result = run(*args)
        assert result.exit_code == 1, args
        assert result.stderr.startswith("Error: Redis at redis://:***@127.0.0.1:9/0 is "
                                        "unreachable (")  # fmt: skip
        assert result.stderr.count("\n") == 1 and "secret" not in result.stderr
        assert result.stdout == ""


def test_manage_py_jobs_passes_its_arguments_and_exit_status(jobs, capsys):
    utility = ManagementUtility(["manage.py", "jobs", "show", "--json", jobs.successful])
    with pytest.raises(SystemExit) as done:
        utility.execute()
    assert done.value.code == 0
    assert orjson.loads(capsys.readouterr().out)["return_value"] == 5

    with pytest.raises(SystemExit) as failed:
        ManagementUtility(["manage.py", "jobs", "show", "default:0000"]).execute()
    assert failed.value.code == 1
    assert capsys.readouterr().err == "Error: unknown job id default:0000\n"


def test_django_jobs_console_script(jobs, monkeypatch, capsys):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "project.settings")
    monkeypatch.setattr(sys, "argv", ["django-jobs", "list", "--status", "dead", "--json"])
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 0
    assert [j["id"] for j in orjson.loads(capsys.readouterr().out)] == [jobs.dead]


def test_unknown_backend_alias():
    result = run("--backend", "nope", "status")
    assert result.exit_code == 1
    assert result.stderr == "Error: TASKS has no backend 'nope' (it has: default)\n"


def test_django_jobs_without_django_settings_module_says_so(tmp_path):
    # The console script must not fall back on some settings module of its own: it runs in
    # the user's project, whose settings only DJANGO_SETTINGS_MODULE names.
    script = Path(sys.executable).parent / "django-jobs"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([script, "status"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "Error: DJANGO_SETTINGS_MODULE is not set; set it to your project's settings module "
        "(e.g. DJANGO_SETTINGS_MODULE=mysite.settings django-jobs status)\n"
    )
