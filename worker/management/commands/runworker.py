from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.tasks import task_backends

from worker.backend import RedisBackend
from worker.checks import redis_warnings
from worker.commands import run
from worker.config import (
    metrics_address,
    no_queues_error,
    queue_spec,
    threshold_error,
    unknown_queues_error,
)
from worker.management import logs
from worker.observe.export import Export
from worker.observe.logs import FORMATS
from worker.ops.api import Ops
from worker.ops.cli.health import report
from worker.protocol.connection import REDIS_ERRORS, unreachable, wrong_database
from worker.runtime.loops import CHOICES, loop_factory
from worker.runtime.supervisor import PARENT_ENV, supervise

if TYPE_CHECKING:
    from worker.runtime.worker import Worker

logger = logging.getLogger("worker")


class Command(BaseCommand):
    help = "Run a worker that executes the jobs enqueued on a Redis TASKS backend."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue", "-q", action="append", dest="queues", metavar="NAME[:WEIGHT]",
            help="queue to serve (repeatable); default: all of the backend's. While several "
            "have work, jobs are taken in proportion to their weights (default 1 each, or "
            "OPTIONS['queue_weights'])",
        )  # fmt: skip
        parser.add_argument(
            "--strict", action="store_true", default=None,
            help="serve the queues strictly in the order given: an earlier queue's jobs "
            "always first (default: OPTIONS['strict_order'], else weighted)",
        )  # fmt: skip
        parser.add_argument(
            "--concurrency", "-c", type=int, default=100,
            help="jobs run at once by one process (default 100)",
        )  # fmt: skip
        parser.add_argument(
            "--inflight-mb", type=float, default=64.0, dest="inflight_mb",
            help="payload megabytes (MiB) of the jobs one process runs at once, at most: big "
            "jobs wait their turn (default 64; one job runs whatever its size)",
        )  # fmt: skip
        parser.add_argument(
            "--processes", "-p", type=int, default=1,
            help="worker processes, restarted when one dies (default 1)",
        )  # fmt: skip
        parser.add_argument(
            "--grace", type=float, default=30.0,
            help="seconds in-flight jobs get to finish on SIGTERM (default 30)",
        )  # fmt: skip
        parser.add_argument("--backend", default="default", help="TASKS alias (default 'default')")
        parser.add_argument(
            "--no-scheduler", dest="scheduler", action="store_false",
            help="fire no periodic jobs from this process (others must, for them to run)",
        )  # fmt: skip
        parser.add_argument(
            "--loop", choices=CHOICES, default="auto",
            help="event loop: uvloop if installed (auto, the default), uvloop or asyncio",
        )  # fmt: skip
        parser.add_argument(
            "--burst", action="store_true",
            help="exit 0 once no job is ready and none runs, every outcome stored (jobs due "
            "later, retries included, wait for another run; fires no periodic jobs)",
        )  # fmt: skip
        parser.add_argument(
            "--check", action="store_true",
            help="run no worker: exit 0 if Redis answers and a live worker serves each queue "
            "(of --queue, default all), else 1, with a one-line reason (a health probe)",
        )  # fmt: skip
        parser.add_argument("--json", dest="as_json", action="store_true", help="--check as JSON")
        parser.add_argument(
            "--log-jobs", action="store_true",
            help="log Django's line at each job's start and end (logger django.tasks, INFO); "
            "off by default unless LOGGING sets that logger's level",
        )  # fmt: skip
        parser.add_argument(
            "--log-format", choices=FORMATS, default=None,
            help="text, or json: one object a line, with the job's id, task, queue and attempt "
            "inside a job (default: OPTIONS['log_format'], else text)",
        )  # fmt: skip
        parser.add_argument(
            "--loop-lag-threshold", type=float, default=None, metavar="SECONDS",
            help="log a WARNING naming the job and the line of its code that block the event "
            "loop longer than this; 0: no watchdog (default: OPTIONS['loop_lag_threshold'], "
            "else 0.1)",
        )  # fmt: skip
        parser.add_argument(
            "--metrics-port", metavar="[HOST:]PORT",
            help="serve Prometheus metrics at http://HOST:PORT/metrics (every interface without "
            "a HOST); with --processes, one port serves them all (default: "
            "OPTIONS['metrics_port'], else none)",
        )  # fmt: skip

    def handle(
        self,
        *args: Any,
        queues: list[str] | None,
        concurrency: int,
        inflight_mb: float,
        processes: int,
        grace: float,
        backend: str,
        scheduler: bool,
        loop: str,
        **options: Any,
    ) -> None:
        if concurrency < 1 or processes < 1 or grace < 0 or inflight_mb <= 0:
            raise CommandError("--concurrency and --processes must be >= 1, --grace >= 0, "
                               "--inflight-mb > 0")  # fmt: skip
        if options["burst"] and processes > 1:
            raise CommandError("--burst runs one process: leave out --processes")
        try:
            factory = loop_factory(loop)
        except ValueError as e:
            raise CommandError(str(e)) from None
        chosen = task_backends[backend]
        if not isinstance(chosen, RedisBackend):
            raise CommandError(f"TASKS[{backend!r}] is {type(chosen).__name__}, not RedisBackend")
        names, sharing = _sharing(queues or [], options["strict"])
        if error := unknown_queues_error(backend, names, chosen.queues):
            raise CommandError(f"--queue: {error}")
        if not names and not chosen.queues:
            raise CommandError(no_queues_error(backend))
        if options["check"]:
            sys.exit(report(Ops(chosen).health(names), options["as_json"]))
        lag = options["loop_lag_threshold"]
        if lag is None:
            lag = chosen.options_.loop_lag_threshold
        elif problem := threshold_error(lag):
            raise CommandError(f"--loop-lag-threshold {problem}")
        log_format = options["log_format"] or chosen.options_.log_format
        logs.configure(options["log_jobs"], log_format)
        answers = _redis_answers(chosen)
        # The deploy checks' warnings; a supervisor logs them, not each of its children.
        # Redis down, the worker says so as it starts, and waits for it.
        if answers and not os.environ.get(PARENT_ENV):
            for warning in redis_warnings(chosen):  # as `manage.py check --deploy` reports
                if not warning.is_silenced():
                    logger.warning("%s [%s] HINT: %s", warning.msg, warning.id, warning.hint)
        export = _export(chosen, options["metrics_port"], concurrency, processes > 1)
        if processes > 1:
            child = ["--concurrency", str(concurrency), "--grace", str(grace), "--backend", backend]
            child += ["--inflight-mb", str(inflight_mb)]
            child += ["--loop", loop]
            child += [] if scheduler else ["--no-scheduler"]
            for queue in queues or ():
                child += ["--queue", queue]
            child += ["--strict"] if options["strict"] else []
            child += ["--log-jobs"] if options["log_jobs"] else []
            child += ["--log-format", log_format]
            child += ["--loop-lag-threshold", str(lag or 0)]
            try:
                sys.exit(supervise(processes, child, export.children))
            finally:
                export.close()
        worker = chosen.worker(names, concurrency=concurrency, grace=grace, scheduler=scheduler,
                               inflight_bytes=int(inflight_mb * 1024 * 1024),
                               burst=options["burst"], loop_lag_threshold=lag,
                               meter=export.meter, **sharing)  # fmt: skip
        try:
            run(_serve(worker), factory, on_signal=worker.stop)
        finally:
            export.close()
        unstored = options["burst"] and worker.unwritten  # a burst promises every outcome stored
        if hung := [t.name for t in threading.enumerate() if t.name.startswith("job")]:
            # Threads of sync jobs past their timeout cannot be stopped, and the interpreter
            # would wait for them at exit. Their jobs are already released or finished.
            logger.warning("Leaving %d job threads still running: %s", len(hung), hung)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1 if unstored else 0)
        if unstored:
            raise CommandError(f"--burst: {unstored} outcomes could not be stored; their jobs "
                               "will run again")  # fmt: skip


def _export(
    backend: RedisBackend, given: str | None, concurrency: int, supervising: bool
) -> Export:
    """This process's metrics: at ``--metrics-port`` (``given``), else OPTIONS'."""
    value = given if given is not None else backend.options_.metrics_port
    try:
        return Export(None if value is None else metrics_address(value), concurrency, supervising)
    except (ValueError, ImportError) as e:
        raise CommandError(f"--metrics-port: {e}") from None
    except OSError as e:
        raise CommandError(f"--metrics-port {value}: cannot serve there ({e})") from None


def _redis_answers(backend: RedisBackend) -> bool:
    """Whether the backend's Redis answers. A URL naming a database the server does not
    have is a setting to correct, not an outage to wait out: CommandError naming it."""
    try:
        backend.broker.info()
    except REDIS_ERRORS as e:
        if wrong_database(e):
            raise CommandError(
                f"TASKS[{backend.alias!r}]['OPTIONS']['url']: {unreachable(backend.url, e)}"
            ) from None
        return False
    return True


def _sharing(specs: list[str], strict: bool | None) -> tuple[list[str], dict[str, Any]]:
    """The queues of ``--queue NAME[:WEIGHT]`` options, and the worker's options for how it
    shares its slots among them (those left out come from OPTIONS)."""
    names, weights = [], {}
    for spec in specs:
        try:
            name, weight = queue_spec(spec)
        except ValueError as e:
            raise CommandError(f"--queue {spec!r}: {e}") from None
        names.append(name)
        if weight is not None:
            weights[name] = weight
    sharing: dict[str, Any] = {"weights": weights} if weights else {}
    if strict:
        sharing["strict"] = True
    return names, sharing


async def _serve(worker: Worker) -> None:
    orphan_watch = None
    if parent := os.environ.get(PARENT_ENV):
        orphan_watch = asyncio.create_task(_stop_when_orphaned(worker, int(parent)))
    try:
        await worker.run()
    finally:
        if orphan_watch:
            orphan_watch.cancel()


async def _stop_when_orphaned(worker: Worker, parent: int) -> None:
    while os.getppid() == parent:  # noqa: ASYNC110 - nothing to wait on but the kernel's answer
        await asyncio.sleep(1)
    logger.error("Supervisor %d is gone; stopping", parent)
    worker.stop()
