"""Commands that steer queues, workers and schedules without touching jobs: ``pause`` and
``resume`` a queue, ``quiet`` or ``stop`` a worker (through Redis, wherever it runs), and
``schedule`` to run, pause or resume a periodic job."""

from __future__ import annotations

import click

from worker.ops.api import Ops
from worker.ops.cli.app import known_queues, pass_ops


@click.command()
@click.argument("queues", nargs=-1, required=True, callback=known_queues)
@pass_ops
def pause(ops: Ops, queues: tuple[str, ...]) -> None:
    """Pause QUEUES: workers start none of their jobs until resumed.

    Jobs are still enqueued, and the running ones finish. Workers stop fetching within their
    poll interval (1 s)."""
    for queue in queues:
        changed = ops.pause(queue)
        click.echo(f"{queue}: {'paused' if changed else 'paused already'}")


@click.command()
@click.argument("queues", nargs=-1, required=True, callback=known_queues)
@pass_ops
def resume(ops: Ops, queues: tuple[str, ...]) -> None:
    """Resume paused QUEUES: their jobs start again at once."""
    for queue in queues:
        changed = ops.resume(queue)
        click.echo(f"{queue}: {'resumed' if changed else 'not paused'}")


def _order(ops: Ops, worker_id: str, give: str) -> None:
    try:
        if give == "quiet":
            ops.quiet(worker_id)
        else:
            ops.stop_worker(worker_id)
    except LookupError as e:
        known = ", ".join(w.id for w in ops.workers()) or "none"
        raise click.BadParameter(f"{e} (live workers: {known})", param_hint="WORKER") from None


@click.command()
@click.argument("worker_id", metavar="WORKER")
@pass_ops
def quiet(ops: Ops, worker_id: str) -> None:
    """Tell WORKER (its id, as `status` lists it) to start no more jobs.

    It finishes those it runs and lives on until stopped."""
    _order(ops, worker_id, "quiet")
    click.echo(f"{worker_id}: told to go quiet")


@click.command("stop")
@click.argument("worker_id", metavar="WORKER")
@pass_ops
def stop_worker(ops: Ops, worker_id: str) -> None:
    """Tell WORKER to stop as on SIGTERM, wherever it runs.

    It starts no more jobs, lets those running finish within its grace period, and exits.
    Under `runworker --processes`, the supervisor starts another in its place."""
    _order(ops, worker_id, "stop")
    click.echo(f"{worker_id}: told to stop")


@click.command()
@click.argument("action", type=click.Choice(["run", "pause", "resume"]))
@click.argument("name")
@pass_ops
def schedule(ops: Ops, action: str, name: str) -> None:
    """Run a periodic schedule's job now, or pause or resume the schedule.

    NAME is the schedule's name (`status` lists them). A paused schedule's fire times pass
    without a job, and are not caught up when it is resumed."""
    try:
        if action == "run":
            click.echo(ops.run_schedule(name).id)
        elif action == "pause":
            click.echo(f"{name}: {'paused' if ops.pause_schedule(name) else 'paused already'}")
        else:
            click.echo(f"{name}: {'resumed' if ops.resume_schedule(name) else 'not paused'}")
    except LookupError as e:
        raise click.BadParameter(str(e), param_hint="NAME") from None


COMMANDS = (pause, resume, quiet, stop_worker, schedule)
