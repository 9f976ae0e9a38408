"""Commands that change things: ``retry``, ``cancel``, ``purge`` and ``enqueue``. The bulk
ones (``retry --dead``, ``purge``) ask first unless ``--yes`` (and, with no terminal to
answer on, refuse to run without it) and work in batches."""

from __future__ import annotations

import os
import socket
from typing import Any

import click
import orjson

from worker.ops.api import Ops
from worker.ops.cli.app import known_queues, pass_ops
from worker.ops.cli.output import confirm, progress

yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


@click.command()
@click.argument("job_ids", nargs=-1)
@click.option("--dead", "every_dead", is_flag=True, help="Every dead letter (of --queue, --task).")
@click.option("--queue", "-q", "queues", multiple=True, callback=known_queues,
              help="With --dead; default: every queue.")  # fmt: skip
@click.option("--task", help="With --dead: only dead letters of this task (its module path).")
@yes_option
@pass_ops
def retry(
    ops: Ops,
    job_ids: tuple[str, ...],
    every_dead: bool,
    queues: tuple[str, ...],
    task: str | None,
    yes: bool,
) -> None:
    """Send dead letters back with a fresh set of attempts.

    The JOB_IDS given, or with --dead all of them (of --queue, of --task)."""
    if bool(job_ids) == every_dead:
        raise click.UsageError("give job ids or --dead (not both)")
    if (queues or task) and not every_dead:
        raise click.UsageError("--queue and --task go with --dead")
    if every_dead:
        retry_every_dead(ops, list(queues) or ops.queues(), task, yes)
        return
    records = [ops.job(job_id) for job_id in job_ids]  # an unknown id stops it all
    skipped = {r.id: state for r in records if (state := ops.place(r).state) != "dead"}
    sent = ops.retry(*(r.id for r in records if r.id not in skipped))
    click.echo(f"sent back {sent} job(s)")
    for job_id, state in skipped.items():
        click.echo(f"{job_id} is {state}, not a dead letter: skipped", err=True)
    if skipped:
        raise SystemExit(1)


def retry_every_dead(ops: Ops, queues: list[str], task: str | None, yes: bool) -> None:
    counts = {queue: ops.dead_count(queue) for queue in queues}
    total = sum(counts.values())
    if not total:
        click.echo("no dead letters")
        return
    which = f" of task {task}" if task else ""
    if not yes:
        confirm(f"Send back {total} dead letter(s){which} ({_per_queue(counts)})?")
    sent = 0
    with progress(total, "retrying") as advance:
        for queue in queues:
            sent += ops.retry_dead(queue, task=task, progress=advance)
    click.echo(f"sent back {sent} dead letter(s){which}")


@click.command()
@click.argument("job_ids", nargs=-1, required=True)
@pass_ops
def cancel(ops: Ops, job_ids: tuple[str, ...]) -> None:
    """Cancel jobs: queued ones never run, running ones are told to stop.

    A queued (ready or delayed) job is taken off its queue and marked FAILED with a
    worker.exceptions.Cancelled error. For a running one, a cancel request is left for its
    worker."""
    who = f"{os.environ.get('USER', 'someone')}@{socket.gethostname()}"
    reason = f"Cancelled by {who} with `jobs cancel`."
    finished = False
    for job_id in job_ids:
        outcome = ops.cancel(job_id, reason)
        if outcome == "cancelled":
            click.echo(f"{job_id}: cancelled")
        elif outcome == "requested":
            click.echo(f"{job_id}: running, cancellation requested")
        else:
            click.echo(f"{job_id}: already {outcome}, nothing to cancel", err=True)
            finished = True
    if finished:
        raise SystemExit(1)


@click.command()
@click.argument("queue", callback=known_queues)
@click.option("--dead", is_flag=True, help="Purge the dead letters too.")
@yes_option
@pass_ops
def purge(ops: Ops, queue: str, dead: bool, yes: bool) -> None:
    """Remove the queued jobs of QUEUE for good.

    Every ready, held and delayed job (with --dead, the dead letters too); running jobs
    finish."""
    if queue not in ops.queues():  # with an empty QUEUES, those found in Redis
        raise click.BadParameter(f"no queue {queue!r} (queues: {', '.join(ops.queues())})",
                                 param_hint="QUEUE")  # fmt: skip
    counts = ops.purge_counts(queue)
    if not dead:
        del counts["dead"]
    total = sum(counts.values())
    if not total:
        click.echo(f"nothing to purge in {queue}")
        return
    if not yes:
        what = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
        confirm(f"Remove {what} job(s) of queue {queue} for good?")
    with progress(total, "purging") as advance:
        removed = ops.purge(queue, dead=dead, progress=advance)
    click.echo(f"purged {removed} job(s) from {queue}")


@click.command()
@click.argument("task_path", metavar="TASK")
@click.option("--args", "args_json", default="[]", help="A JSON list.", show_default=True)
@click.option("--kwargs", "kwargs_json", default="{}", help="A JSON object.", show_default=True)
@click.option("--queue", "-q", callback=known_queues, help="Default: the task's.")
@click.option("--priority", type=int, help="Default: the task's.")
@click.option("--delay", type=click.FloatRange(min=0), help="Seconds before it may run.")
@pass_ops
def enqueue(
    ops: Ops,
    task_path: str,
    args_json: str,
    kwargs_json: str,
    queue: str | None,
    priority: int | None,
    delay: float | None,
) -> None:
    """Enqueue a run of a registered TASK; prints the job's id.

    TASK is the task's module path (e.g. jobs.tasks.sync_orders)."""
    args = parse_json("--args", args_json, list)
    kwargs = parse_json("--kwargs", kwargs_json, dict)
    result = ops.enqueue(task_path, args, kwargs, queue=queue, priority=priority, delay=delay)
    click.echo(result.id)


def parse_json(option: str, text: str, kind: type) -> Any:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise click.BadParameter(f"not valid JSON ({e})", param_hint=option) from None
    if not isinstance(value, kind):
        wanted = "list" if kind is list else "object"
        raise click.BadParameter(f"must be a JSON {wanted}, not {text!r}", param_hint=option)
    return value


def _per_queue(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} in {queue}" for queue, n in counts.items() if n)


COMMANDS = (retry, cancel, purge, enqueue)
