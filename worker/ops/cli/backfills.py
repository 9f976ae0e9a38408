"""Backfills as ``jobs status`` and ``manage.py backfill`` show them."""

from __future__ import annotations

from typing import Any

from worker.ops.api import BackfillState
from worker.ops.cli.output import at, moment, table


def backfill_table(states: list[BackfillState]) -> str:
    headers = ["BACKFILL", "RUN", "MODEL", "STATE", "CHUNKS", "ROWS", "PLANNED", "FINISHED"]
    rows = [
        [b.name, b.run, b.model, b.state, f"{b.done}/{b.chunks}", f"{b.rows:,}",
         moment(at(b.planned_ms / 1000)), moment(at(_seconds(b.finished_ms)))]
        for b in states
    ]  # fmt: skip
    return table(
        headers, rows, lambda h, cell: "green" if h == "STATE" and cell == "done" else None
    )


def backfill_json(b: BackfillState) -> dict[str, Any]:
    return {
        "name": b.name,
        "run": b.run,
        "model": b.model,
        "state": b.state,
        "chunks": b.chunks,
        "done": b.done,
        "rows": b.rows,
        "planned_at": at(b.planned_ms / 1000),
        "finished_at": at(_seconds(b.finished_ms)),
    }


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000
