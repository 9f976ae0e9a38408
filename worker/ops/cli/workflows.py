"""``workflow``: where a workflow or batch (worker/workflows) stands, its steps, and
``--cancel`` to cancel it (asking first unless ``--yes``, as the bulk commands do)."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from worker.ops.api import Ops, WorkflowInfo
from worker.ops.cli.app import pass_ops
from worker.ops.cli.look import as_json
from worker.ops.cli.output import COLOURS, confirm, emit_json, heading, moment, table
from worker.ops.cli.steer import yes_option

# A workflow's status as `jobs workflow` colours it (its steps' as `list` colours states).
STATUS_COLOURS = {"RUNNING": "cyan", "SUCCEEDED": "green", "FAILED": "red",
                  "CANCELLED": "magenta"}  # fmt: skip


@click.command()
@click.argument("workflow_id", metavar="ID")
@click.option("--cancel", is_flag=True, help="Cancel it (asks first; --yes).")
@click.option("--limit", "-n", type=click.IntRange(min=0), default=100, show_default=True,
              help="Steps shown at most.")  # fmt: skip
@yes_option
@as_json
@pass_ops
def workflow(
    ops: Ops, workflow_id: str, cancel: bool, limit: int, yes: bool, as_json: bool
) -> None:
    """A workflow or batch: its status, progress and steps.

    Each step (a batch: each callback) with its job id, task and state: how it ended, or
    RUNNING, READY, WAITING (for the steps before it). With --cancel, its steps not
    started never run and its running ones are asked to stop (a batch: its callbacks never
    run; its jobs run on)."""
    if cancel:
        if as_json:
            raise click.UsageError("--json goes with showing a workflow, not with --cancel")
        cancel_workflow(ops, workflow_id, yes)
        return
    info = ops.workflow(workflow_id, limit=limit)
    if as_json:
        emit_json(workflow_json(info))
        return
    click.echo(summary(info))
    if info.steps:
        click.echo("\n" + heading("Callbacks" if info.kind == "batch" else "Steps"))
        headers = ["STEP", "JOB", "TASK", "STATUS"]
        rows = [[s.number, s.job_id, s.task_path or "-", s.status] for s in info.steps]
        click.echo(table(headers, rows, _paint))
    if (left := len(info.progress.steps) - len(info.steps)) > 0:
        click.echo(f"... and {left} more step(s) (--limit)")


def summary(info: WorkflowInfo) -> str:
    p = info.progress
    status = click.style(p.status.value, fg=STATUS_COLOURS.get(p.status.value), bold=True)
    counted = "jobs" if info.kind == "batch" else "steps"
    kind = f"batch ({'closed' if info.closed else 'open'})" if info.kind == "batch" else info.kind
    fields = [
        ("id", info.id),
        ("kind", kind),
        ("status", status),
        ("progress", f"{p.ended} of {p.total} {counted} ended, {p.failed} failed or cancelled"),
        ("ended", moment(info.ended_at)),
    ]
    return "\n".join(f"{click.style(f'{name:>12}', bold=True)}  {value}" for name, value in fields)


def workflow_json(info: WorkflowInfo) -> dict[str, Any]:
    p = info.progress
    return {
        "id": info.id,
        "kind": info.kind,
        "status": p.status.value,
        "ended": p.ended,
        "total": p.total,
        "failed": p.failed,
        "ended_at": info.ended_at,
        "closed": info.closed,
        "steps": [dataclasses.asdict(s) for s in info.steps],
    }


def cancel_workflow(ops: Ops, workflow_id: str, yes: bool) -> None:
    info = ops.workflow(workflow_id, limit=0)  # an unknown id stops here, before asking
    if not info.progress.finished and not yes:
        left = info.progress.total - info.progress.ended
        if info.kind == "batch":
            question = f"Its callbacks will never run ({left} of its jobs not ended run on)."
        else:
            question = (f"Of its {left} step(s) not ended, those not started will never run "
                        "and the running ones are asked to stop.")  # fmt: skip
        confirm(f"Cancel {info.kind} {workflow_id}? {question}")
    outcome = ops.cancel_workflow(workflow_id)
    if outcome != "cancelled":
        click.echo(f"{workflow_id}: already {outcome}, nothing to cancel", err=True)
        raise SystemExit(1)
    click.echo(f"{workflow_id}: cancelled")


def _paint(header: str, cell: str) -> str | None:
    return COLOURS.get(cell.lower()) if header == "STATUS" else None
