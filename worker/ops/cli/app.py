"""The ``jobs`` command group: the backend it works on, Django's standard options, checks
of the queues named on the command line, and errors as one line on stderr."""

from __future__ import annotations

import sys
import traceback
from typing import Any, NoReturn, cast

import click
import redis
from django.core.exceptions import ImproperlyConfigured
from django.tasks import task_backends
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist

from worker.backend import RedisBackend
from worker.config import unknown_queues_error
from worker.exceptions import BrokerUnavailable
from worker.ops.api import Ops
from worker.ops.cli.standard import standard_options
from worker.protocol.connection import REDIS_DOWN, unreachable, wrong_database
from worker.workflows import WorkflowDoesNotExist

pass_ops = click.make_pass_decorator(Ops)


class JobsGroup(click.Group):
    """Errors an operator meets (Redis down, an unknown job id, a task's own checks) end the
    command with one line on stderr and exit status 1, not a traceback (with --traceback,
    the traceback comes first)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (*REDIS_DOWN, redis.ResponseError) as e:
            ops = cast(Ops, ctx.find_object(Ops))  # set by cli(), which sends no command
            url = ops.broker.url
            if wrong_database(e):  # a setting to correct, not an outage
                fail(ctx, f"TASKS[{ops.backend.alias!r}]['OPTIONS']['url']: "
                          f"{unreachable(url, e)}", e)  # fmt: skip
            if isinstance(e, redis.ResponseError):
                raise
            fail(ctx, unreachable(url, e), e)
        except TaskResultDoesNotExist as e:
            fail(ctx, f"unknown job id {e}", e)
        except WorkflowDoesNotExist as e:
            fail(ctx, f"unknown workflow id {e} (or it ended and is kept no longer)", e)
        # Bad arguments, an unknown task or queue, a misconfigured backend.
        except (InvalidTask, BrokerUnavailable, ImproperlyConfigured) as e:
            fail(ctx, str(e), e)


def fail(ctx: click.Context, message: str, error: BaseException) -> NoReturn:
    """End the command with ``message`` (exit status 1); with --traceback, ``error``'s
    traceback first."""
    if ctx.meta.get("jobs.traceback"):
        traceback.print_exception(error, file=sys.stderr)
    raise click.ClickException(message) from error


def known_queues(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Callback of a ``--queue`` option (one name or several): each must be one of the
    backend's QUEUES (any name, with an empty QUEUES); else a usage error (exit 2)."""
    ops = ctx.find_object(Ops)
    names = [value] if isinstance(value, str) else list(value or ())
    if ops is not None and (error := unknown_queues_error(ops.backend.alias, names,
                                                          ops.backend.queues)):  # fmt: skip
        raise click.BadParameter(error, ctx, param)
    return value


@click.group(cls=JobsGroup)
@click.option(
    "--backend", "alias", default="default", show_default=True, help="The TASKS alias to use."
)
@standard_options
@click.pass_context
def cli(ctx: click.Context, alias: str, traceback: bool, color: bool | None) -> None:
    """See and steer the queues, workers and jobs of a Redis TASKS backend."""
    ctx.meta["jobs.traceback"] = traceback
    if color is not None:
        ctx.color = color
    try:
        backend = task_backends[alias]
    except InvalidTaskBackend:
        known = ", ".join(task_backends.settings)
        raise click.BadParameter(
            f"TASKS has no backend {alias!r} (it has: {known})", ctx, param_hint="'--backend'"
        ) from None
    if not isinstance(backend, RedisBackend):
        kind = type(backend).__name__
        raise click.ClickException(f"TASKS[{alias!r}] is a {kind}, not a RedisBackend")
    ctx.obj = Ops(backend)
