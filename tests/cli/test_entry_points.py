"""How the CLI is reached (manage.py jobs, the django-jobs script) and how it fails: one
line on stderr, a non-zero exit status."""

import os
import subprocess
import sys
from pathlib import Path

import click
import orjson
import pytest
from django.core.management import ManagementUtility

from tests.cli.conftest import run
from tests.conftest import tasks_setting
from tests.processes import ROOT, project_env
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


def test_unknown_backend_alias_is_a_usage_error():
    result = run("--backend", "nope", "status")
    assert result.exit_code == 2
    assert result.stderr.endswith(
        "Error: Invalid value for '--backend': TASKS has no backend 'nope' (it has: default)\n"
    )


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
        "(e.g. DJANGO_SETTINGS_MODULE=mysite.settings django-jobs status, or django-jobs "
        "--settings mysite.settings status)\n"
    )


# Django's standard options, as every manage.py command takes them: anywhere on the line.


def other_settings(tmp_path: Path) -> Path:
    """A settings module only --settings and --pythonpath can find: the project's with a
    queue of its own, which status lists when (and only when) these settings are used."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "other_settings.py").write_text(
        "from project.settings import *\n"
        'TASKS["default"] = {**TASKS["default"], "QUEUES": ["default", "elsewhere", "reports"]}\n'
    )
    return folder


def jobs_command(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "jobs", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_manage_py_jobs_takes_djangos_standard_options_anywhere(tmp_path, redis_url, tasks_prefix):
    env = project_env(REDIS_URL=redis_url, TASKS_PREFIX=tasks_prefix)
    folder = other_settings(tmp_path)
    for args in (
        ["--settings", "other_settings", "--pythonpath", str(folder), "status", "--json"],
        ["status", "--json", "--settings=other_settings", f"--pythonpath={folder}",
         "--verbosity", "2", "--no-color", "--traceback"],
        ["-v0", "--force-color", "status", "--settings", "other_settings", "--json",
         "--pythonpath", str(folder)],
    ):  # fmt: skip
        done = jobs_command(args, env)
        assert done.returncode == 0, (args, done.stderr)
        queues = [q["queue"] for q in orjson.loads(done.stdout)["queues"]]
        assert queues == ["default", "elsewhere", "reports"], args

    plain = jobs_command(["status", "--no-color"], env)
    coloured = jobs_command(["status", "--force-color"], env)
    # Piped, so no colours by default.
    assert "\x1b[" not in plain.stdout and "\x1b[" in coloured.stdout
    assert click.unstyle(coloured.stdout).splitlines()[:3] == plain.stdout.splitlines()[:3]


def test_traceback_shows_the_error_behind_the_one_line_message(settings, tasks_prefix):
    settings.TASKS = tasks_setting("redis://:secret@127.0.0.1:9/0", tasks_prefix)
    plain = run("status")
    assert plain.stderr.count("\n") == 1
    traced = run("--traceback", "status")
    assert traced.exit_code == 1
    assert traced.stderr.startswith("Traceback (most recent call last):")
    assert "redis.exceptions.ConnectionError" in traced.stderr
    assert traced.stderr.endswith(plain.stderr)  # the same line, last


def test_django_jobs_takes_settings_and_pythonpath(tmp_path, redis_url, tasks_prefix):
    script = Path(sys.executable).parent / "django-jobs"
    env = project_env(REDIS_URL=redis_url, TASKS_PREFIX=tasks_prefix)
    del env["DJANGO_SETTINGS_MODULE"]
    folder = other_settings(tmp_path)
    done = subprocess.run(
        [script, "status", "--json", "--settings", "other_settings", "--pythonpath", folder],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    queues = [q["queue"] for q in orjson.loads(done.stdout)["queues"]]
    assert queues == ["default", "elsewhere", "reports"]
