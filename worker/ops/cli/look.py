"""Read commands: ``status``, ``list`` and ``show``; each takes ``--json``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import click
import orjson

from worker.ops.api import COUNTERS, STATES, Ops, QueueStats, WorkerInfo
from worker.ops.cli.app import known_queues, pass_ops
from worker.ops.cli.backfills import backfill_json, backfill_table
from worker.ops.cli.output import COLOURS, ago, at, duration, emit_json, heading, moment, table
from worker.periodic import schedules
from worker.results import JobRecord

as_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command()
@as_json
@pass_ops
def status(ops: Ops, as_json: bool) -> None:
    """Queues, live workers, periodic schedules and backfills.

    Per queue: jobs ready, held by a rate or concurrency limit, running, delayed (of which
    retrying after a failure) and dead, and the outcome counters since the queue began."""
    queues = [ops.stats(q) for q in ops.queues()]
    workers = ops.workers()
    periodic = periodic_schedules(datetime.now(UTC))
    backfills = ops.backfills()
    if as_json:
        emit_json({"queues": queues, "workers": [worker_json(w) for w in workers],
                   "periodic": periodic,
                   "backfills": [backfill_json(b) for b in backfills]})  # fmt: skip
        return
    click.echo(heading("Queues"))
    click.echo(queue_table(queues))
    click.echo("\n" + heading("Workers"))
    click.echo(worker_table(workers) if workers else "no live workers")
    click.echo("\n" + heading("Periodic jobs"))
    click.echo(periodic_table(periodic) if periodic else "no periodic jobs")
    if backfills:  # worker/backfill: shown once one was planned
        click.echo("\n" + heading("Backfills"))
        click.echo(backfill_table(backfills))


def queue_table(queues: list[QueueStats]) -> str:
    headers = ["QUEUE", "READY", "HELD", "RUNNING", "DELAYED", "RETRYING", "DEAD"]
    headers += map(str.upper, COUNTERS)
    rows = [
        [q.queue, q.ready, q.held, q.running, q.delayed, _or_dash(q.retrying), q.dead]
        + [q.counters[name] for name in COUNTERS]
        for q in queues
    ]

    def paint(header: str, cell: str) -> str | None:
        return "red" if header in ("DEAD", "FAILED", "LOST") and cell != "0" else None

    return table(headers, rows, paint)


def _or_dash(value: object) -> object:
    return "-" if value is None else value


def _served(w: WorkerInfo) -> str:
    """Its queues as --queue takes them: "default:3,reports", or "default>reports" when
    strict."""
    if w.strict:
        return ">".join(w.queues)
    return ",".join(q if w.weights.get(q, 1) == 1 else f"{q}:{w.weights[q]}" for q in w.queues)


def worker_json(w: WorkerInfo) -> dict[str, Any]:
    """A worker as ``status --json`` writes it: its times as every time of the JSON."""
    return {**dataclasses.asdict(w), "started_at": at(w.started_at), "seen_at": at(w.seen_at)}


def worker_table(workers: list[WorkerInfo]) -> str:
    now = datetime.now(UTC).timestamp()
    headers = ["HOST", "PID", "QUEUES", "CONCURRENCY", "IN FLIGHT", "PROCESSED", "LOOP LAG"]
    headers += ["UPTIME", "HEARTBEAT", "ID"]
    rows = [
        [
            *(w.host, w.pid, _served(w), w.concurrency, w.in_flight, w.processed, _lag(w)),
            *(duration(now - w.started_at), f"{duration(now - w.seen_at)} ago", w.id),
        ]
        for w in workers
    ]
    return table(headers, rows)


def _lag(w: WorkerInfo) -> str:
    """Its loop's worst lag of the last minute, in ms; "-" when it measures none."""
    return "-" if w.loop_lag is None else f"{w.loop_lag * 1000:.0f}ms"


def periodic_schedules(now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "task": p.task.module_path,
            "queue": p.task.queue_name,
            "schedule": p.describe(),
            "next_fire": p.next_fire(now),
        }
        for p in schedules()
    ]


def periodic_table(periodic: list[dict[str, Any]]) -> str:
    headers = ["NAME", "TASK", "QUEUE", "SCHEDULE", "NEXT"]
    rows = [
        [p["name"], p["task"], p["queue"], p["schedule"], moment(p["next_fire"])] for p in periodic
    ]
    return table(headers, rows)


@click.command("list")
@click.option("--queue", "-q", "queues", multiple=True, callback=known_queues,
              help="Repeatable; default: every queue.")  # fmt: skip
@click.option(
    "--status",
    "-s",
    "states",
    type=click.Choice(STATES),
    multiple=True,
    help="Repeatable; default: every state, in the order shown.",
)
@click.option("--task", help="Only jobs of this task (its module path).")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True)
@as_json
@pass_ops
def list_jobs(
    ops: Ops,
    queues: tuple[str, ...],
    states: tuple[str, ...],
    task: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List jobs by queue, state and task.

    Running, ready and delayed jobs come in the order they will run, dead and successful
    ones newest first."""
    found: list[tuple[str, JobRecord]] = []
    for queue in queues or ops.queues():
        for state in states or STATES:
            if len(found) < limit:
                records = ops.jobs(queue, state, task=task, limit=limit - len(found))
                found += [(state, r) for r in records]
    if as_json:
        emit_json([{**dataclasses.asdict(r), "state": state} for state, r in found])
        return
    if not found:
        click.echo("no jobs")
        return
    headers = ["ID", "TASK", "STATE", "ATTEMPTS", "ENQUEUED", "LAST ERROR"]
    rows = [
        [
            *(r.id, r.task_path or "(unreadable)", state, f"{r.attempts}/{r.max_attempts}"),
            *(ago(r.enqueued_at), r.errors[-1].exception_class_path if r.errors else ""),
        ]
        for state, r in found
    ]
    if any(r.workflow for _, r in found):  # a column only where some job belongs to one
        headers.append("WORKFLOW")
        for row, (_, r) in zip(rows, found, strict=True):
            row.append(r.workflow or "")
    click.echo(table(headers, rows, lambda h, cell: COLOURS.get(cell) if h == "STATE" else None))


@click.command()
@click.argument("job_id")
@as_json
@pass_ops
def show(ops: Ops, job_id: str, as_json: bool) -> None:
    """Everything about one job.

    Its arguments, state, attempts with each error and its traceback, times, workers and
    return value."""
    record = ops.job(job_id)
    place = ops.place(record)
    if as_json:
        emit_json({**dataclasses.asdict(record), **dataclasses.asdict(place)})
        return
    state = click.style(place.state, fg=COLOURS.get(place.state), bold=True)
    if place.due:
        state += f", due {moment(place.due)}"
    if place.cancel_requested:
        state += f", cancel requested {moment(place.cancel_requested)}"
    if place.state == "waiting":
        state += " for the steps before it in its workflow"
    fields = [
        ("id", record.id),
        ("task", record.task_path or f"({record.message_error})"),
        ("queue", record.queue),
        *([("workflow", record.workflow)] if record.workflow else []),
        ("state", f"{state} (status {record.status})"),
        ("attempts", f"{record.attempts} of {record.max_attempts}"),
        ("priority", record.priority),
        ("args", _json(record.args)),
        ("kwargs", _json(record.kwargs)),
        ("enqueued", moment(record.enqueued_at)),
        ("run after", moment(record.run_after)),
        ("started", moment(record.started_at)),
        ("last attempt", moment(record.last_attempted_at)),
        ("finished", moment(record.finished_at)),
        ("workers", ", ".join(record.worker_ids) or "-"),
    ]
    if record.progress is not None:
        done, total, note = record.progress.done, record.progress.total, record.progress.note
        said = f"{done:g}" if total is None else f"{done:g} of {total:g}"
        fields.append(("progress", f"{said}{f' ({note})' if note else ''}"))
    if record.metadata:
        fields.append(("metadata", _json(record.metadata)))
    if record.status == "SUCCESSFUL":
        fields.append(("return value", _json(record.return_value)))
    for name, value in fields:
        click.echo(f"{click.style(f'{name:>12}', bold=True)}  {value}")
    for n, error in enumerate(record.errors, 1):
        click.echo("\n" + heading(f"Error {n} of {len(record.errors)}: "
                                  f"{error.exception_class_path}"))  # fmt: skip
        click.echo(error.traceback.rstrip())


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


COMMANDS = (status, list_jobs, show)
