"""Where ``runworker``'s log lines go: the ``worker`` logger's lines (it started, stopped,
Redis went away...) reach the terminal whatever the project's LOGGING, and Django's
per-job lines (``django.tasks``: a start and an end for every job) only when asked for.

A project without LOGGING has Django's default logging (django.utils.log.DEFAULT_LOGGING),
which gives handlers to Django's own loggers only: the worker's lines would be dropped
(WARNING and up printed bare by logging's last resort). Only then does the ``worker``
logger get a handler of its own, so that a project which routes it somewhere (a handler
on the root logger, say) does not see each line twice.
"""

from __future__ import annotations

import logging

from worker.observe import logs as structured

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOBS_LOGGER = "django.tasks"  # Django's task_started/task_finished receivers log here


def configure(log_jobs: bool, log_format: str = "text") -> None:
    """Set up the worker's logging for this process (see the module's docstring): the
    ``worker`` logger at INFO unless the project set its level; ``django.tasks`` at
    WARNING (failures still logged) unless the project set its level, or at INFO with
    ``log_jobs``. With ``log_format`` "json", the lines reaching the terminal are JSON
    (worker/observe/logs.py)."""
    worker = logging.getLogger("worker")
    if not worker.hasHandlers():
        worker.addHandler(_console())
    if worker.level == logging.NOTSET:
        worker.setLevel(logging.INFO)
    per_job = logging.getLogger(JOBS_LOGGER)
    if log_jobs:
        per_job.setLevel(logging.INFO)
        if not _shown(per_job, logging.INFO):  # e.g. Django's console handler with DEBUG off
            per_job.addHandler(_console())
    elif per_job.level == logging.NOTSET:
        # At thousands of jobs a second, two INFO lines per job drown everything else.
        per_job.setLevel(logging.WARNING)
    if log_format == "json":
        structured.use_json()


def _console() -> logging.Handler:
    handler = logging.StreamHandler()  # stderr, as Django's own console handler
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


def _shown(logger: logging.Logger, level: int) -> bool:
    """Whether some handler reached by ``logger`` would emit a record of ``level``: the
    walk logging itself makes, with each handler's level and filters (Django's console
    handler shows records only with DEBUG on)."""
    record = logger.makeRecord(logger.name, level, __file__, 0, "", (), None)
    current: logging.Logger | None = logger
    while current is not None:
        if any(level >= h.level and h.filter(record) for h in current.handlers):
            return True
        current = current.parent if current.propagate else None
    return False
