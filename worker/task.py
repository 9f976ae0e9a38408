"""The backend's Task class (per-task engine options) and the registry of known tasks.

The registry is the only way from a name in a message to code: the worker never imports
what a message names, it looks the name up here.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from django.tasks import Task as DjangoTask
from django.tasks.exceptions import InvalidTask

from worker.limits import LimitError, LimitKey, Limits, declared, group, key_of

if TYPE_CHECKING:
    from django.tasks import TaskResult

    Result = TaskResult[Any, Any]  # a result of any task (Django's classes are generic in stubs)
    _DjangoTask = DjangoTask[..., Any]
else:
    _DjangoTask = DjangoTask

_registry: dict[str, Task] = {}
_refused: dict[str, Task] = {}  # path -> a task whose options are wrong

Arguments = tuple[Sequence[Any], Mapping[str, Any]]  # one call's (args, kwargs)


@dataclass(frozen=True, slots=True, kw_only=True)
class Task(_DjangoTask):
    """A Django task with the engine's options, set with ``@task(max_attempts=5, ...)``."""

    max_attempts: int = 3  # deliveries in all, the first included
    timeout: float | None = 600.0  # seconds one attempt may run; None for no limit
    backoff: float = 1.0  # seconds before the first retry; doubles each attempt, with jitter
    backoff_max: float = 600.0  # cap on one retry delay
    # seconds during which enqueuing the same call again returns the first job instead
    unique_for: float | None = None
    # seconds a successful (or cancelled) job's record stays readable; 0 keeps none; None
    # takes the backend's OPTIONS["result_ttl"]. Dead letters stay until retried or purged.
    result_ttl: float | None = None
    # Set by using(idempotency_key=...) for one enqueue: see using().
    idempotency_key: str | None = None
    # Flow control (worker/limits.py), for every worker together: at most this many starts
    # in any window ("100/s", "10/m", "10/5s"), at most this many attempts running at once,
    # each per key (a callable of the job's arguments, or the name of one) if a key is given.
    rate_limit: str | None = None
    concurrency_limit: int | None = None
    limit_key: LimitKey | None = None
    # The declared limits; None for a task without flow control (its jobs carry no group).
    limits: Limits | None = field(default=None, init=False, repr=False, compare=False)
    # Why the options above are wrong, or None: such a task is reported by `manage.py
    # check` (worker.E008) and refused at enqueue, not raised at its definition.
    refusal: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super(Task, self).__post_init__()
        # Raising here would stop `manage.py check` at the import of the tasks modules,
        # before it reports anything.
        if (problem := self._options_error() or self._limits_error()) is not None:
            object.__setattr__(self, "refusal", f"{self.name}: {problem}")
            _refused[self.module_path] = self
            return
        _refused.pop(self.module_path, None)
        register(self)

    def _options_error(self) -> str | None:
        for option in ("max_attempts", "timeout", "backoff", "backoff_max", "unique_for",
                       "result_ttl"):  # fmt: skip
            value = getattr(self, option)
            if value is None and option in ("timeout", "unique_for", "result_ttl"):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"{option} must be a number, not {value!r}"
            if not math.isfinite(value):
                return f"{option} must be finite, not {value!r}"
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            return "max_attempts must be a whole number >= 1"
        if self.timeout is not None and not self.timeout > 0:
            return "timeout must be a positive number of seconds"
        if not (self.backoff >= 0 and self.backoff_max >= 0):
            return "backoff and backoff_max must be >= 0"
        if self.unique_for is not None and not self.unique_for > 0:
            return "unique_for must be a positive number of seconds"
        if self.result_ttl is not None and self.result_ttl < 0:
            return "result_ttl must be >= 0 seconds (0 keeps no result)"
        return None

    def _limits_error(self) -> str | None:
        """Why the flow-control options are wrong, or None (``limits`` set when right)."""
        if self.rate_limit is None and self.concurrency_limit is None and self.limit_key is None:
            return None
        try:
            limits = declared(self.rate_limit, self.concurrency_limit)
        except LimitError as e:
            return str(e)
        key = self.limit_key
        if isinstance(key, str):
            names = list(_signature(self.func).parameters)[1 if self.takes_context else 0 :]
            if key not in names:
                return f"limit_key {key!r} is not an argument of the task ({', '.join(names)})"
        elif key is not None and not callable(key):
            return f"limit_key must be an argument's name or a callable, not {key!r}"
        object.__setattr__(self, "limits", limits)
        return None

    def limit_group(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
        """The limit group of one call (``path`` or ``path:<JSON key>``), None for a task
        without flow control; LimitError when its key cannot be made."""
        if self.limits is None:
            return None
        if self.limit_key is None:
            return self.module_path
        try:
            key = key_of(self.limit_key, lambda: bound_arguments(self, list(args), dict(kwargs)),
                         args, kwargs)  # fmt: skip
        except Exception as e:  # the user's callable
            raise LimitError(f"limit_key raised {e!r}") from e
        return group(self.module_path, key, keyed=True)

    def using(self, *, idempotency_key: str | None = None, **changes: Any) -> Task:
        """Django's ``using``, and an ``idempotency_key`` (a string the caller makes, say
        ``f"invoice-{invoice.pk}"``): enqueuing the same task with the same key again, for a
        day and while the first job's record is kept, returns the first job instead of
        storing another. So an enqueue whose outcome is unknown (BrokerUnavailable with
        ``maybe_stored``) can be repeated safely."""
        task = cast(Task, super(Task, self).using(**changes))
        if idempotency_key is None:
            return task
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise InvalidTask(
                f"idempotency_key must be a non-empty string, not {idempotency_key!r}"
            )
        return replace(task, idempotency_key=idempotency_key)

    def enqueue_many(self, calls: Iterable[Arguments]) -> list[Result]:
        """Enqueue many calls, ``[(args, kwargs), ...]``: one round trip per 1,000. Every
        call is checked first; bad input enqueues none of them."""
        backend: Any = self.get_backend()  # one whose task_class is this class
        return cast("list[Result]", backend.enqueue_many(self, calls))

    async def aenqueue_many(self, calls: Iterable[Arguments]) -> list[Result]:
        """Enqueue many calls, ``[(args, kwargs), ...]``, pipelined 200 to a script call.
        Every call is checked first; bad input enqueues none of them."""
        backend: Any = self.get_backend()
        return cast("list[Result]", await backend.aenqueue_many(self, calls))

    def retry_delay(self, attempt: int, jitter: float) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based); ``jitter`` in [0, 1)
        spreads retries of jobs that failed together ("equal jitter": half fixed, half random)."""
        # The exponent is capped: 2.0 ** 1025 overflows, and the delay is capped far below.
        delay = min(self.backoff_max, self.backoff * 2.0 ** min(attempt - 1, 64))
        return delay / 2 + delay / 2 * jitter


def register(task: Task) -> None:
    # using() makes copies with other queue/priority; the first definition stands for them all.
    known = _registry.get(task.module_path)
    if known is None or known.func is not task.func:
        _registry[task.module_path] = task


def refused(backend: str) -> list[tuple[Task, str]]:
    """The tasks of ``backend`` whose options are wrong (never run nor enqueued), and why."""
    return [(t, t.refusal) for t in _refused.values() if t.backend == backend and t.refusal]


def lookup(path: str) -> Task | None:
    return _registry.get(path)


def registered() -> dict[str, Task]:
    return dict(_registry)


@cache
def _signature(func: Any) -> inspect.Signature:
    return inspect.signature(func)


def bound_arguments(task: Task, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Parameter name -> value for a call that fits (see arguments_error), defaults applied."""
    bound = _signature(task.func).bind(*((None, *args) if task.takes_context else args), **kwargs)
    bound.apply_defaults()
    values = dict(bound.arguments)
    if task.takes_context:
        values.pop(next(iter(values)))
    return values


def arguments_error(
    task: Task, args: list[Any] | tuple[Any, ...], kwargs: dict[str, Any]
) -> str | None:
    """Why ``task`` cannot be called with these arguments, or None when it can."""
    # Whether a call binds depends only on how many positional arguments and which keyword
    # names it has: a shape that bound once needs no second look (a worker's hot path).
    shape = (task.func, task.takes_context, len(args), *kwargs)
    if shape in _fitting_shapes:
        return None
    try:
        _signature(task.func).bind(*((None, *args) if task.takes_context else args), **kwargs)
    except TypeError as e:
        return f"{task.module_path}: {e}"
    if len(_fitting_shapes) < 10_000:
        _fitting_shapes.add(shape)
    return None


_fitting_shapes: set[tuple[Any, ...]] = set()
