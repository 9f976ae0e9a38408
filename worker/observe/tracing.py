"""OpenTelemetry traces of jobs (the ``[otel]`` extra: opentelemetry-api).

An enqueue is a PRODUCER span ("send <queue>"), and the W3C trace context current in it
(``traceparent``, ``tracestate``, baggage) goes into the job's message (its ``trace``
field: docs/protocol.md). Each attempt runs inside a CONSUMER span ("process <queue>"),
current while the handler runs, in its thread too for a sync job: an instrumented httpx
call or database query inside is its child. The first attempt's span is a child of the
enqueue's; a retry's starts a trace of its own with a link to it (docs/observability.md
says why).

Without a tracer provider (or without the extra) there is no span and no ``trace`` field:
each enqueue asks ``tracer()`` and goes on; a worker asks once, as it is made (a provider is
set up as the process starts: in settings, an AppConfig.ready(), opentelemetry-instrument).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, NamedTuple

from worker.exceptions import RateLimited

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import (
        Link,
        NoOpTracerProvider,
        ProxyTracerProvider,
        SpanKind,
        Status,
        StatusCode,
    )

    INSTALLED = True
except ImportError:  # the [otel] extra is not installed
    INSTALLED = False

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

    from worker.protocol.message import Call
    from worker.protocol.records import Lease
    from worker.task import Task

# messaging.system: the messaging system, as this engine names itself
SYSTEM = "django-redis-worker"

_tracer: tuple[object, Tracer | None] = (None, None)  # (the provider, its tracer)


def tracer() -> Tracer | None:
    """The configured tracer provider's tracer for this engine; None when no provider is
    configured (OpenTelemetry's proxy or no-op one) or the extra is not installed (asking
    costs a lookup in os.environ: under a microsecond)."""
    global _tracer
    if not INSTALLED:
        return None
    provider = trace.get_tracer_provider()
    if provider is not _tracer[0]:
        unset = isinstance(provider, ProxyTracerProvider | NoOpTracerProvider)
        _tracer = (provider, None if unset else provider.get_tracer("worker"))
    return _tracer[1]


def carrier() -> dict[str, str] | None:
    """The trace context to store in a job enqueued now (W3C headers), or None: no tracer
    provider, or nothing to carry."""
    if tracer() is None:
        return None
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers or None


# Enqueues: the backend's enqueue, aenqueue, enqueue_many and aenqueue_many, decorated.


def _attributes(task: Task, operation: str, old_operation: str) -> dict[str, str]:
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.operation": old_operation,  # its name before semantic conventions 1.26
        "messaging.destination.name": task.queue_name,
        "worker.task": task.module_path,
    }


def _sent(span: Span, result: object) -> None:
    """The enqueue's result on its span: the job's id, or how many jobs a bulk one sent."""
    if isinstance(result, list):
        span.set_attribute("messaging.batch.message_count", len(result))
    else:
        span.set_attribute("messaging.message.id", getattr(result, "id", ""))


def sends[B, **P, R](
    method: Callable[Concatenate[B, Task, P], R],
) -> Callable[Concatenate[B, Task, P], R]:
    """A sync enqueue method of the backend (``self, task, ...``), in a PRODUCER span."""

    @functools.wraps(method)
    def traced(backend: B, task: Task, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if (t := tracer()) is None:
            return method(backend, task, *args, **kwargs)
        attributes = _attributes(task, "send", "publish")
        with t.start_as_current_span(f"send {task.queue_name}", kind=SpanKind.PRODUCER,
                                     attributes=attributes) as span:  # fmt: skip
            result = method(backend, task, *args, **kwargs)
            _sent(span, result)
            return result

    return traced


def asends[B, **P, R](
    method: Callable[Concatenate[B, Task, P], Awaitable[R]],
) -> Callable[Concatenate[B, Task, P], Coroutine[Any, Any, R]]:
    """An async enqueue method of the backend (``self, task, ...``), in a PRODUCER span."""

    @functools.wraps(method)
    async def traced(backend: B, task: Task, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if (t := tracer()) is None:
            return await method(backend, task, *args, **kwargs)
        attributes = _attributes(task, "send", "publish")
        with t.start_as_current_span(f"send {task.queue_name}", kind=SpanKind.PRODUCER,
                                     attributes=attributes) as span:  # fmt: skip
            result = await method(backend, task, *args, **kwargs)
            _sent(span, result)
            return result

    return traced


# Attempts: begun and ended by the worker around each (runtime/worker.py).


class Consuming(NamedTuple):
    """An attempt's span, current in the job's context until ``end``."""

    span: Span
    token: Token[Context]


def consuming(t: Tracer, call: Call, lease: Lease, queue: str) -> Consuming:
    """Start the CONSUMER span of an attempt and make it current (the caller runs the
    attempt in an asyncio task of its own)."""
    sent = propagate.extract(call.trace) if call.trace else None
    parent: Context | None = sent
    links: list[Link] = []
    if sent is not None and lease.attempt > 1:
        # A retry, maybe hours later: a trace of its own, linked to the enqueue.
        enqueue = trace.get_current_span(sent).get_span_context()
        if enqueue.is_valid:
            links.append(Link(enqueue))
        parent = None
    attributes: dict[str, str | int] = {
        **_attributes(call.task, "process", "process"),
        "messaging.destination.name": queue,
        "messaging.message.id": lease.id,
        "worker.attempt": lease.attempt,
    }
    span = t.start_span(
        f"process {queue}",
        context=parent or otel_context.Context(),  # no enqueue span: a root
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=links,
    )
    # The job's baggage, from the enqueue, goes on with it.
    token = otel_context.attach(trace.set_span_in_context(span, sent))
    return Consuming(span, token)


# The status description of an attempt a forced shutdown cut off.
RELEASED = (
    "Released unfinished: the worker was stopped before the attempt ended; the job runs "
    "again, this attempt not counted"
)


def end(consuming: Consuming, error: BaseException | None, released: bool = False) -> None:
    """End an attempt's span, recording the error it ended with (None: it succeeded);
    ``released``: a forced shutdown cut it off. RateLimited is no error: the job runs
    again later without using an attempt (an event says when)."""
    span, token = consuming
    if released:
        span.set_status(Status(StatusCode.ERROR, RELEASED))
    elif isinstance(error, RateLimited):
        span.add_event("rate limited", {"worker.retry_after": error.retry_after})
    elif error is not None:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()
    otel_context.detach(token)
