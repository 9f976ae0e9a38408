"""Flow-control commands: ``limits`` shows every limit group's state, ``limit`` changes a
task's (or one key's) limits at run time, for every worker at once."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import click
import orjson

from worker.limits import LimitError
from worker.ops.api import UNSET, GroupState, Ops
from worker.ops.cli.app import known_queues, pass_ops
from worker.ops.cli.output import at, duration, emit_json, table


@click.command()
@click.option("--queue", "-q", callback=known_queues, help="Default: every queue.")
@click.option("--task", help="Only this task (its module path).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ops
def limits(ops: Ops, queue: str | None, task: str | None, as_json: bool) -> None:
    """Rate and concurrency limits, and where each group stands.

    Per limit group (a task, or one key of it): the limits that apply and where they come
    from (declared by the task, or set by an operator for the task or the key), attempts
    running, starts in the current window, jobs held for a permit and when they may
    start."""
    found = ops.limits(queue, task)
    if as_json:
        emit_json([_json(s) for s in found])
        return
    if not found:
        click.echo("no limit groups")
        return
    headers = ["QUEUE", "TASK", "KEY", "RATE", "CONCURRENCY", "FROM", "RUNNING", "IN WINDOW"]
    headers += ["HELD", "NEXT START"]
    click.echo(table(headers, [_row(s, time.time() * 1000) for s in found]))


def _json(s: GroupState) -> dict[str, Any]:
    """A group as ``limits --json`` writes it: when its held jobs may start as every time
    of the JSON (``next_start``), not in ms since the epoch."""
    fields = dataclasses.asdict(s)
    ms = fields.pop("next_start_ms")
    return {**fields, "next_start": None if ms is None else at(ms / 1000)}


def _row(s: GroupState, now_ms: float) -> list[Any]:
    limits = s.limits
    rate = str(limits.rate) if limits and limits.rate else "-"
    concurrency = limits.concurrency if limits and limits.concurrency is not None else "-"
    if s.waits_for_slot:
        next_start = "when a slot frees"
    elif s.next_start_ms is None:
        next_start = "-"
    else:
        next_start = (
            "now"
            if s.next_start_ms <= now_ms
            else f"in {duration((s.next_start_ms - now_ms) / 1000)}"
        )
    window = "-" if s.in_window is None else s.in_window
    return [s.queue, s.task, s.key or "-", rate, concurrency, s.source or "-", s.running, window,
            s.held, next_start]  # fmt: skip


@click.command()
@click.argument("task_path", metavar="TASK")
@click.option("--rate", help="Starts per window: 100/s, 10/m, 500/h, 10/5s; 0/s holds every "
              "job; 'none' for no rate limit.")  # fmt: skip
@click.option("--concurrency", help="Attempts running at once; 0 holds every job; 'none' for "
              "no concurrency limit.")  # fmt: skip
@click.option("--key", "key_json", help="Only this limit key's group (JSON: 42, '\"acme\"'; "
              "text that is not JSON is taken as a string).")  # fmt: skip
@click.option("--queue", "-q", "queues", multiple=True, callback=known_queues,
              help="Default: every queue.")  # fmt: skip
@click.option("--reset", is_flag=True, help="Drop the setting: the task's own limits (or, "
              "with --key, the task's) apply again.")  # fmt: skip
@pass_ops
def limit(
    ops: Ops,
    task_path: str,
    rate: str | None,
    concurrency: str | None,
    key_json: str | None,
    queues: tuple[str, ...],
    reset: bool,
) -> None:
    """Change TASK's limits now, for every worker.

    TASK is the task's module path. The setting stays until --reset (a deploy that
    changes the task's declared limits does not override it)."""
    key: object = UNSET if key_json is None else _key(key_json)
    try:
        changed = ops.set_limit(
            task_path,
            rate=UNSET if rate is None else None if rate == "none" else rate,
            concurrency=_count(concurrency),
            key=key,
            queues=list(queues) or None,
            reset=reset,
        )
    except LimitError as e:
        raise click.UsageError(str(e)) from None
    where = ", ".join(changed) if changed else "no queue (it was so already)"
    click.echo(f"{task_path}{'' if key is UNSET else f' key {key_json}'}: changed in {where}")


def _count(text: str | None) -> int | Any | None:
    if text is None:
        return UNSET
    if text == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise click.UsageError(
            f"--concurrency must be a whole number or 'none', not {text!r}"
        ) from None


def _key(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


COMMANDS = (limits, limit)
