"""JSON log lines (``runworker --log-format json``): one object a line, with the job a line
was logged for.

    {"time": "2026-05-01T09:30:12.345+00:00", "level": "WARNING", "logger": "jobs.tasks",
     "message": "...", "job_id": "default:...", "task": "jobs.tasks.send_report",
     "queue": "reports", "attempt": 2}

The job's fields come from its context variable (worker/observe/context.py), so the lines a
handler logs itself carry them too, in an async job and in a sync job's thread alike; an
exception's traceback is in ``exception``. The project's LOGGING still decides which lines
are logged and where: only how the terminal's handlers write them changes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from worker.observe.context import RECORD_ATTRIBUTE, Job, current
from worker.protocol.records import json_of

FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # A line about a job logged from elsewhere (the loop watchdog's thread) names it.
        job: Job | None = getattr(record, RECORD_ATTRIBUTE, None) or current()
        if job is not None:
            line.update(job_id=job.id, task=job.task, queue=job.queue, attempt=job.attempt)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json_of(line).decode()


def use_json() -> None:
    """Make every handler that writes to a terminal stream (stderr, stdout; not to a file)
    write JSON lines, logging's last resort included."""
    formatter = JsonFormatter()
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = [h for lg in loggers if isinstance(lg, logging.Logger) for h in lg.handlers]
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
            handler, logging.FileHandler
        ):
            handler.setFormatter(formatter)
