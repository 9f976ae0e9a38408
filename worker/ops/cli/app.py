"""The ``jobs`` command group: the backend it works on, and errors as one line on stderr."""

from __future__ import annotations

from typing import Any, cast

import click
from django.core.exceptions import ImproperlyConfigured
from django.tasks import task_backends
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist

from worker.backend import RedisBackend
from worker.exceptions import BrokerUnavailable
from worker.ops.api import Ops
from worker.protocol.connection import REDIS_DOWN, unreachable

pass_ops = click.make_pass_decorator(Ops)


class JobsGroup(click.Group):
    """Errors an operator meets (Redis down, an unknown job id, a task's own checks) end the
    command with one line on stderr and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except REDIS_DOWN as e:
            ops = cast(Ops, ctx.find_object(Ops))  # set by cli(), which sends no command
            raise click.ClickException(unreachable(ops.backend.url, e)) from e
        except TaskResultDoesNotExist as e:
            raise click.ClickException(f"unknown job id {e}") from e
        # Bad arguments, an unknown task or queue, a misconfigured backend.
        except (InvalidTask, BrokerUnavailable, ImproperlyConfigured) as e:
            raise click.ClickException(str(e)) from e


@click.group(cls=JobsGroup)
@click.option(
    "--backend", "alias", default="default", show_default=True, help="The TASKS alias to use."
)
@click.pass_context
def cli(ctx: click.Context, alias: str) -> None:
    """See and steer the queues, workers and jobs of a Redis TASKS backend."""
    try:
        backend = task_backends[alias]
    except InvalidTaskBackend:
        known = ", ".join(task_backends.settings)
        raise click.ClickException(f"TASKS has no backend {alias!r} (it has: {known})") from None
    if not isinstance(backend, RedisBackend):
        kind = type(backend).__name__
        raise click.ClickException(f"TASKS[{alias!r}] is a {kind}, not a RedisBackend")
    ctx.obj = Ops(backend)
