"""Assertions on what was enqueued: which task, with which arguments, how many times.

``EnqueuedJobs`` records every job any backend sends while it records (Django's
``task_enqueued`` signal: the Redis backend, the in-process ones, Django's own), and
``assert_enqueued`` checks a list of results: a recorder's, or an in-process backend's.
Arguments are compared as the task binds them: ``args=[5]`` matches a job enqueued as
``send_report.enqueue(report_id=5)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from django.tasks import task_backends
from django.tasks.signals import task_enqueued
from django.utils.json import normalize_json

from worker import pending
from worker.task import Task, bound_arguments, lookup

if TYPE_CHECKING:
    from worker.task import Result

_recording: list[EnqueuedJobs] = []  # the recorders running, innermost last


class EnqueuedJobs:
    """The jobs sent (stored in a queue: not those still waiting for a commit) while it
    records, in order: ``with EnqueuedJobs() as enqueued: ...``, or ``start()`` and
    ``stop()``."""

    def __init__(self) -> None:
        self.results: list[Result] = []
        self._uid = f"worker.testing.enqueued:{id(self)}"

    def start(self) -> Self:
        task_enqueued.connect(self._record, dispatch_uid=self._uid, weak=False)
        _recording.append(self)
        return self

    def stop(self) -> None:
        task_enqueued.disconnect(dispatch_uid=self._uid)
        if self in _recording:
            _recording.remove(self)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, sender: object, task_result: Result, **kwargs: object) -> None:
        self.results.append(task_result)

    def __iter__(self) -> Iterator[Result]:
        return iter(list(self.results))

    def __len__(self) -> int:
        return len(self.results)

    def clear(self) -> None:
        self.results.clear()

    def of(self, task: Task | str) -> list[Result]:
        """The jobs of ``task`` (or its dotted path) recorded."""
        return matching(self.results, task, count=None, check=False)

    def assert_enqueued(
        self,
        task: Task | str,
        *,
        args: Iterable[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        count: int | None = None,
        queue_name: str | None = None,
    ) -> list[Result]:
        """See ``assert_enqueued``."""
        return matching(self.results, task, args=args, kwargs=kwargs, count=count,
                        queue_name=queue_name)  # fmt: skip

    def assert_nothing_enqueued(self, task: Task | str | None = None) -> None:
        """AssertionError if any job (of ``task``, if given) was recorded."""
        matching(self.results, task, count=0)


def assert_enqueued(
    task: Task | str,
    *,
    args: Iterable[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    count: int | None = None,
    queue_name: str | None = None,
) -> list[Result]:
    """The jobs of ``task`` enqueued (with these arguments, however they were spelled,
    into this queue); AssertionError unless there are ``count`` of them (by default: at
    least one).

    Checked against the recorder running (the ``enqueued_jobs`` fixture, ``JobsTestMixin``,
    ``with EnqueuedJobs():``), or else against the task's backend if it is an in-process
    one (which keeps every job it was given)."""
    return matching(_source(task), task, args=args, kwargs=kwargs, count=count,
                    queue_name=queue_name)  # fmt: skip


def assert_nothing_enqueued(task: Task | str | None = None) -> None:
    """AssertionError if any job (of ``task``, if given) was enqueued (as ``assert_enqueued``
    looks)."""
    matching(_source(task), task, count=0)


def _source(task: Task | str | None) -> list[Result]:
    if _recording:
        return _recording[-1].results
    from worker.testing.local import InProcessBackend

    alias = task.backend if isinstance(task, Task) else "default"
    backend = task_backends[alias]
    if isinstance(backend, InProcessBackend):
        return backend.results
    raise RuntimeError(
        f"nothing records the jobs enqueued to TASKS[{alias!r}] ({type(backend).__name__}): "
        "use the enqueued_jobs fixture, JobsTestMixin or `with EnqueuedJobs():`"
    )


def matching(
    results: Iterable[Result],
    task: Task | str | None,
    *,
    args: Iterable[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    count: int | None = None,
    queue_name: str | None = None,
    check: bool = True,
) -> list[Result]:
    """The results of ``task`` (any task if None) among ``results`` that match; with
    ``check``, AssertionError unless there are ``count`` of them (None: at least one)."""
    results = list(results)
    path = task if isinstance(task, str) or task is None else task.module_path
    found = [r for r in results if path is None or r.task.module_path == path]
    if queue_name is not None:
        found = [r for r in found if r.task.queue_name == queue_name]
    if args is not None or kwargs is not None:
        known = lookup(task) if isinstance(task, str) else task
        given_args = cast("list[Any]", normalize_json(list(args or [])))
        given_kwargs = cast("dict[str, Any]", normalize_json(dict(kwargs or {})))
        wanted = _call(known, given_args, given_kwargs)
        found = [r for r in found if _call(known, r.args, r.kwargs) == wanted]
    if check and (len(found) != count if count is not None else not found):
        what = path or "any task"
        if args is not None or kwargs is not None:
            what += f" with args={list(args or [])!r}, kwargs={dict(kwargs or {})!r}"
        if queue_name is not None:
            what += f" in queue {queue_name!r}"
        expected = "at least 1" if count is None else str(count)
        seen = "\n".join(f"  {_shown(r)}" for r in results) or "  (none)"
        if waiting := pending.waiting_count():
            seen += (
                f"\n{waiting} job(s) more wait for the commit of a transaction, which under a "
                "TestCase never comes: run_jobs() sends them, as does "
                "captureOnCommitCallbacks(execute=True) around the code that enqueues"
            )
        raise AssertionError(
            f"expected {expected} job(s) of {what}, found {len(found)}; enqueued:\n{seen}"
        )
    return found


def _call(task: Task | None, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """A call as the task binds it (defaults applied), or as given if it does not bind."""
    if task is not None:
        try:
            return bound_arguments(task, list(args), dict(kwargs))
        except TypeError:
            pass
    return (list(args), dict(kwargs))


def _shown(result: Result) -> str:
    call = ", ".join([*map(repr, result.args), *(f"{k}={v!r}" for k, v in result.kwargs.items())])
    return f"{result.task.module_path}({call}) [queue {result.task.queue_name!r}, {result.id}]"
