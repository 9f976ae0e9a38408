"""``manage.py backfill [NAME] [--wait] [--start]``: a backfill's progress, waited for."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.core.management.base import CommandError, CommandParser
from django.tasks import task_backends
from django.tasks.exceptions import InvalidTaskBackend
from django.utils import timezone

from worker.backend import RedisBackend
from worker.backfill.models import BackfillRun
from worker.backfill.registry import Backfill, lookup
from worker.commands import AsyncCommand
from worker.ops.api import BackfillState, Ops
from worker.ops.cli.backfills import backfill_table


class Command(AsyncCommand):
    help = (
        "Show the backfills' progress (worker.backfill), or one's latest run; --wait until it "
        "is done; --start enqueues its plan again (it resumes where the chunks done leave "
        "off), or starts a first run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="the backfill (its function's module path)")
        parser.add_argument(
            "--wait", action="store_true",
            help="wait until every chunk is done, saying how far it is (exit 1 at --timeout)",
        )  # fmt: skip
        parser.add_argument(
            "--timeout", type=float, default=None, metavar="SECONDS",
            help="with --wait: give up after this long (default: wait for ever)",
        )  # fmt: skip
        parser.add_argument(
            "--interval", type=float, default=1.0, metavar="SECONDS",
            help="with --wait: seconds between two looks (default 1)",
        )  # fmt: skip
        parser.add_argument(
            "--start", action="store_true",
            help="enqueue the plan job of the backfill's latest run (again): for one whose jobs "
            "were lost, or dead-lettered and fixed since; chunks done are not run again. With "
            "no run yet, starts one",
        )  # fmt: skip
        parser.add_argument("--backend", default="default", help="TASKS alias (default 'default')")

    async def handle(  # type: ignore[override]  # async: AsyncCommand awaits it
        self,
        *args: Any,
        name: str | None,
        wait: bool,
        timeout: float | None,
        interval: float,
        start: bool,
        backend: str,
        **options: Any,
    ) -> str | None:
        if (wait or start) and name is None:
            raise CommandError("--wait and --start need the backfill's NAME")
        if (timeout is not None and not timeout > 0) or not interval > 0:
            raise CommandError("--timeout and --interval must be > 0 seconds")
        ops = Ops(_backend(backend))
        if name is None:
            states = await sync_to_async(ops.backfills)()
            return backfill_table(states) if states else "no backfills"
        try:
            spec = lookup(name)
        except LookupError as e:
            raise CommandError(str(e)) from None
        run = await _latest_run(spec)
        if start:
            from worker.backfill.tasks import plan_backfill

            if run is None:
                run = await BackfillRun.objects.using(spec.database).acreate(
                    name=name, created_at=timezone.now()
                )
            plan = plan_backfill.using(queue_name=spec.queue, backend=backend)
            result = await plan.aenqueue(name, run.pk)
            self.stdout.write(f"enqueued the plan of {name}, run {run.pk} (job {result.id})")
        if run is None:
            raise CommandError(
                f"{name} was never started: no migration with RunBackfill({name!r}) is "
                "applied (--start starts it)"
            )
        if not wait:
            state = await sync_to_async(ops.backfill)(name)
            if state is None or state.run != run.pk:
                return f"{name}: run {run.pk} not planned yet (its plan job waits for a worker)"
            return backfill_table([state])
        state = await self._wait(ops, name, run.pk, timeout, interval, options["verbosity"])
        took = (state.finished_ms or 0) / 1000 - state.planned_ms / 1000
        return f"{name}: done, {state.chunks} chunks, {state.rows:,} rows in {took:.1f}s"

    async def _wait(
        self, ops: Ops, name: str, run: int, timeout: float | None, interval: float, verbosity: int
    ) -> BackfillState:
        deadline = None if timeout is None else time.monotonic() + timeout
        said = None
        while True:
            state = await sync_to_async(ops.backfill)(name)
            if state is not None and state.run != run:
                state = None  # an earlier run's count: this one is not planned yet
            if state is not None and state.finished_ms is not None:
                return state
            line = (
                f"{name}: not planned yet (its plan job waits for a worker)"
                if state is None
                else f"{name}: {state.done}/{state.chunks} chunks, {state.rows:,} rows"
            )
            if line != said and verbosity > 0:
                self.stdout.write(line)
                said = line
            if deadline is not None and time.monotonic() >= deadline:
                raise CommandError(f"{name} is not done after {timeout:g}s: {line}")
            await asyncio.sleep(interval)


async def _latest_run(spec: Backfill) -> BackfillRun | None:
    """The run that counts: the latest of the name."""
    runs = BackfillRun.objects.using(spec.database).filter(name=spec.name)
    return await runs.order_by("-pk").afirst()


def _backend(alias: str) -> RedisBackend:
    try:
        backend = task_backends[alias]
    except InvalidTaskBackend:
        raise CommandError(f"--backend: TASKS has no backend {alias!r}") from None
    if not isinstance(backend, RedisBackend):
        raise CommandError(f"TASKS[{alias!r}] is {type(backend).__name__}, not RedisBackend")
    return backend
