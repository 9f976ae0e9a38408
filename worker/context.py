"""What a running job may tell of itself: its progress, and metadata (a small JSON object),
stored with the job, returned with its result and heard by those waiting for it.

    @task(takes_context=True)
    async def sync_orders(context: JobContext) -> dict:
        for page in range(pages):
            ...
            context.report_progress(page + 1, pages, note=f"page {page + 1}")
        context.metadata["source"] = "order service"  # saved when the attempt ends

The context is Django's ``TaskContext`` (``task_result``, ``attempt``) with these added, in
the shape Django's proposal for writable metadata takes (``context.metadata``,
``save_metadata()`` / ``asave_metadata()``). Reports are buffered and written a few times a
second, whatever a handler's pace: a report in a tight loop costs a dict assignment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from django.tasks import TaskContext

# The largest metadata object, as JSON: it is stored in the job's hash and read with it.
MAX_METADATA_BYTES = 8 * 1024
MAX_NOTE_CHARS = 200


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a job has come: ``done`` of ``total`` (None: unknown), and a short note."""

    done: float
    total: float | None = None
    note: str = ""

    def json(self) -> bytes:
        return orjson.dumps([self.done, self.total, self.note])

    @classmethod
    def from_json(cls, data: bytes) -> Progress:
        done, total, note = orjson.loads(data)
        return cls(done, total, note)


class Reporter(Protocol):
    """Where a job's reports go (the worker's buffer, or an in-process backend's job);
    called from the job's thread as well as from the event loop."""

    def report(self, job_id: str, progress: bytes | None, metadata: bytes | None) -> None: ...


if TYPE_CHECKING:
    _TaskContext = TaskContext[Any, Any]
else:
    _TaskContext = TaskContext


# frozen as Django's own is at run time (its stubs say otherwise)
@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext(_TaskContext):  # type: ignore[misc]
    metadata: dict[str, Any] = field(default_factory=dict)
    reporter: Reporter = field(repr=False, compare=False)

    def report_progress(self, done: float, total: float | None = None, note: str = "") -> None:
        """Say how far the job has come. ValueError for a negative or non-finite number, or
        a note over MAX_NOTE_CHARS."""
        for name, value in (("done", done), ("total", total)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
                or not math.isfinite(value) or value < 0
            ):  # fmt: skip
                raise ValueError(f"progress {name} must be a finite number >= 0, not {value!r}")
        if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
            raise ValueError(f"progress note must be a string of at most {MAX_NOTE_CHARS} "
                             "characters")  # fmt: skip
        self.reporter.report(self.task_result.id, Progress(done, total, note).json(), None)

    async def areport_progress(
        self, done: float, total: float | None = None, note: str = ""
    ) -> None:
        self.report_progress(done, total, note)

    def save_metadata(self) -> None:
        """Store ``metadata`` now (it is stored when the attempt ends in any case).
        ValueError if it is not a JSON object of at most MAX_METADATA_BYTES."""
        self.reporter.report(self.task_result.id, None, metadata_json(self.metadata))

    async def asave_metadata(self) -> None:
        self.save_metadata()


def metadata_json(metadata: object) -> bytes:
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata must be a dict, not {type(metadata).__name__}")
    try:
        data = orjson.dumps(metadata)
    except TypeError as e:
        raise ValueError(f"metadata must be JSON: {e}") from None
    if len(data) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata takes {len(data):,} bytes as JSON, over the "
                         f"{MAX_METADATA_BYTES:,} allowed")  # fmt: skip
    return data
