"""Ledger lines for the reference site's jobs (jobs/tasks.py), which the soak must not edit:
Django's task signals, sent by the worker around each attempt, write them instead."""

from __future__ import annotations

from typing import Any

from django.tasks.signals import task_finished, task_started

from bench import chaos_ledger

OWN = "bench.chaos_app."  # the soak's own tasks write their lines themselves


async def started(sender: Any, task_result: Any, **kwargs: Any) -> None:
    path = task_result.task.module_path
    if not path.startswith(OWN):
        chaos_ledger.record("start", j=task_result.id, k=path, a=task_result.attempts)


async def finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
    path = task_result.task.module_path
    if not path.startswith(OWN):
        chaos_ledger.record(
            "end",
            j=task_result.id,
            k=path,
            a=task_result.attempts,
            ok=str(task_result.status) == "SUCCESSFUL",
        )


def connect() -> None:
    task_started.connect(started, dispatch_uid="chaos-ledger-started")
    task_finished.connect(finished, dispatch_uid="chaos-ledger-finished")
