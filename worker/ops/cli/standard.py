"""Django's standard command options (``--settings``, ``--pythonpath``, ``--traceback``,
``--no-color``, ``--force-color``, ``--verbosity``), which ``jobs`` takes as every
``manage.py`` command does: anywhere on the line. The ``jobs`` group declares them (its
options come before the command, as click parses them); ``hoisted`` moves those given
after the command to the front."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

VALUED = ("--settings", "--pythonpath", "--verbosity", "-v")
FLAGS = ("--traceback", "--no-color", "--force-color")


def hoisted(args: list[str]) -> list[str]:
    """``args`` with Django's standard options, and their values, moved to the front."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":  # what follows is arguments, whatever they look like
            rest += args[i:]
            break
        if arg in FLAGS:
            front.append(arg)
        elif arg in VALUED:
            front += args[i : i + 2]
            i += 1
        elif arg.split("=", 1)[0] in VALUED or (arg.startswith("-v") and arg[2:].isdigit()):
            front.append(arg)  # --settings=mysite.settings, -v2
        else:
            rest.append(arg)
        i += 1
    return front + rest


def apply_paths(args: list[str]) -> None:
    """Apply ``--settings`` and ``--pythonpath`` of ``args`` before Django sets up, as
    manage.py does (django.core.management.base.handle_default_options)."""
    front = hoisted(args)
    for i, arg in enumerate(front):
        name, _, value = arg.partition("=")
        if name not in ("--settings", "--pythonpath"):
            continue
        if not value and i + 1 < len(front):
            value = front[i + 1]
        if name == "--settings":
            os.environ["DJANGO_SETTINGS_MODULE"] = value
        else:
            sys.path.insert(0, value)


_OPTIONS = [
    click.option(
        "--settings", metavar="MODULE", expose_value=False,
        help="Django's settings module (as DJANGO_SETTINGS_MODULE); taken before Django starts.",
    ),
    click.option(
        "--pythonpath", metavar="PATH", expose_value=False,
        help="A folder to add to the Python path; taken before Django starts.",
    ),
    click.option(
        "--traceback", is_flag=True,
        help="On an error, print its traceback before the one-line message.",
    ),
    click.option("--no-color", "color", flag_value=False, default=None,
                 help="No colours, even on a terminal."),
    click.option("--force-color", "color", flag_value=True,
                 help="Colours, even when not on a terminal."),
    click.option(
        "--verbosity", "-v", type=click.IntRange(0, 3), default=1, expose_value=False,
        help="Accepted, as by every manage.py command; the output is the same at every level.",
    ),
]  # fmt: skip


def standard_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Declare the standard options on the ``jobs`` group's function (see the module's
    docstring): ``traceback`` and ``color`` reach it; the others are taken elsewhere."""
    for option in reversed(_OPTIONS):  # decorators apply bottom-up
        f = option(f)
    return f
