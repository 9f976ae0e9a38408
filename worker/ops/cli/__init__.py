"""The ops CLI: ``python manage.py jobs ...`` or the ``django-jobs`` console script.

See docs/operations.md. Each module holds one kind of command: ``look`` (status, list,
show), ``steer`` (retry, cancel, purge, enqueue), ``control`` (pause, resume, quiet, stop,
schedule), ``limits`` (limits, limit), ``workflows`` (workflow), ``watch``, ``health``
(the probe); ``app`` the group and its error handling, ``output`` tables, colours and JSON.
"""

from __future__ import annotations

import os
import sys

from worker.ops.cli import control, health, limits, look, steer, watch, workflows
from worker.ops.cli.app import cli
from worker.ops.cli.standard import apply_paths, hoisted

for group in (look.COMMANDS, steer.COMMANDS, control.COMMANDS, limits.COMMANDS):
    for command in group:
        cli.add_command(command)
cli.add_command(workflows.workflow)
cli.add_command(watch.watch)
cli.add_command(health.health)


def main() -> None:
    """The ``django-jobs`` console script: the same commands, run from a project's folder."""
    import django

    args = hoisted(sys.argv[1:])
    sys.path.insert(0, os.getcwd())  # where the settings module lives, as with manage.py
    apply_paths(args)  # --settings, --pythonpath
    name = os.environ.get("DJANGO_SETTINGS_MODULE")
    if not name:
        sys.stderr.write(
            "Error: DJANGO_SETTINGS_MODULE is not set; set it to your project's settings "
            "module (e.g. DJANGO_SETTINGS_MODULE=mysite.settings django-jobs status, or "
            "django-jobs --settings mysite.settings status)\n"
        )
        sys.exit(2)
    try:
        django.setup()
    except ImportError as e:
        sys.exit(f"Error: cannot load Django settings {name!r} ({e}); set DJANGO_SETTINGS_MODULE")
    cli(args=args, prog_name="django-jobs")


__all__ = ["cli", "main"]
