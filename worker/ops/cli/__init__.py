"""The ops CLI: ``python manage.py jobs ...`` or the ``django-jobs`` console script.

See docs/operations.md. Each module holds one kind of command: ``look`` (status, list,
show), ``steer`` (retry, cancel, purge, enqueue), ``watch``; ``app`` the group and its
error handling, ``output`` tables, colours and JSON.
"""

from __future__ import annotations

import os
import sys

from worker.ops.cli import look, steer, watch
from worker.ops.cli.app import cli

for command in (*look.COMMANDS, *steer.COMMANDS, watch.watch):
    cli.add_command(command)


def main() -> None:
    """The ``django-jobs`` console script: the same commands, run from a project's folder."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    sys.path.insert(0, os.getcwd())  # where the settings module lives, as with manage.py
    try:
        django.setup()
    except ImportError as e:
        name = os.environ["DJANGO_SETTINGS_MODULE"]
        sys.exit(f"Error: cannot load Django settings {name!r} ({e}); set DJANGO_SETTINGS_MODULE")
    cli(prog_name="django-jobs")


__all__ = ["cli", "main"]
