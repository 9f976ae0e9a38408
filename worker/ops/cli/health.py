"""The health probe for orchestrators: ``jobs health`` (and ``runworker --check``, which
prints the same). Exit status 0 when healthy, 1 otherwise, with a one-line reason."""

from __future__ import annotations

import click

from worker.ops.api import Health, Ops
from worker.ops.cli.app import known_queues, pass_ops
from worker.ops.cli.output import emit_json


def report(health: Health, as_json: bool) -> int:
    """Print ``health`` (one line, or JSON) on stdout; the exit status it calls for."""
    if as_json:
        emit_json(health)
    else:
        click.echo(f"{'ok' if health.ok else 'unhealthy'}: {health.reason}")
    return 0 if health.ok else 1


@click.command()
@click.option(
    "--queue", "-q", "queues", multiple=True, metavar="NAME", callback=known_queues,
    help="Queue that must be served (repeatable); default: every queue of the backend.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ops
@click.pass_context
def health(ctx: click.Context, ops: Ops, queues: tuple[str, ...], as_json: bool) -> None:
    """Exit 0 if Redis answers and a live worker serves each queue, else 1 (for probes)."""
    ctx.exit(report(ops.health(list(queues)), as_json))
