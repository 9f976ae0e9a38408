"""OpenTelemetry traces of jobs: across real processes, one trace from a request through
its enqueue and the job's attempt to an httpx call the job makes (async and sync jobs); in
process, the spans' kinds, attributes, errors and retry links, and nothing at all without
a tracer provider."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import orjson
import pytest
from django.tasks import TaskResultStatus
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.engine import tasks as engine_tasks
from tests.engine.helpers import finished
from tests.processes import start, stop, wait_until
from tests.telemetry import tasks
from tests.telemetry.test_watchdog import env_of
from worker.protocol.message import decode
from worker.protocol.servers import free_port

# -- in process: a tracer provider for the test alone ---------------------------------------


@pytest.fixture
def spans(monkeypatch) -> InMemorySpanExporter:
    """A tracer provider recording every span, for this test only. set_tracer_provider
    allows one per process, for good: this sets what it sets, and the test's end undoes it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    return exporter


def of_kind(exporter: InMemorySpanExporter, kind: SpanKind) -> list:
    return [s for s in exporter.get_finished_spans() if s.kind == kind]


async def test_an_attempt_is_a_child_of_its_enqueue_which_is_a_child_of_the_caller(
    spans, run_worker
):
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        sent = await tasks.span_in_thread.aenqueue()
    async with run_worker():
        result = await finished(sent)
    assert result.status == TaskResultStatus.SUCCESSFUL

    [enqueue] = of_kind(spans, SpanKind.PRODUCER)
    assert enqueue.name == "send default"
    assert enqueue.parent.span_id == request.get_span_context().span_id
    assert enqueue.attributes["messaging.system"] == "django-redis-worker"
    assert enqueue.attributes["messaging.operation.type"] == "send"
    assert enqueue.attributes["messaging.destination.name"] == "default"
    assert enqueue.attributes["messaging.message.id"] == sent.id
    assert enqueue.attributes["worker.task"] == tasks.span_in_thread.module_path

    [attempt] = of_kind(spans, SpanKind.CONSUMER)
    assert attempt.name == "process default"
    assert attempt.parent.span_id == enqueue.context.span_id
    assert attempt.context.trace_id == request.get_span_context().trace_id
    assert dict(attempt.attributes) == {
        "messaging.system": "django-redis-worker",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.operation": "process",
        "messaging.destination.name": "default",
        "messaging.message.id": sent.id,
        "worker.task": tasks.span_in_thread.module_path,
        "worker.attempt": 1,
    }
    assert attempt.status.status_code == StatusCode.UNSET
    # The sync job's thread ran inside the attempt's span.
    ids = f"{attempt.context.trace_id:032x}:{attempt.context.span_id:016x}"
    assert result.return_value == ids


async def test_a_failed_attempt_records_its_error_and_a_retry_links_to_the_enqueue(
    spans, run_worker
):
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request"):
        sent = await tasks.fail_once.aenqueue("traced")
    async with run_worker():
        assert (await finished(sent)).status == TaskResultStatus.SUCCESSFUL
    [enqueue] = of_kind(spans, SpanKind.PRODUCER)
    first, second = sorted(of_kind(spans, SpanKind.CONSUMER), key=lambda s: s.start_time)

    assert first.attributes["worker.attempt"] == 1
    assert first.parent.span_id == enqueue.context.span_id
    assert first.status.status_code == StatusCode.ERROR
    assert first.status.description == "ConnectionError: first attempt of traced failed"
    [event] = first.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ConnectionError"

    assert second.attributes["worker.attempt"] == 2
    assert second.parent is None  # a trace of its own...
    assert second.context.trace_id != enqueue.context.trace_id
    [link] = second.links  # ...linked to the enqueue
    assert link.context.span_id == enqueue.context.span_id
    assert second.status.status_code == StatusCode.UNSET


async def test_a_rate_limited_attempt_is_no_error_and_a_released_one_says_so(spans, run_worker):
    deferred = await engine_tasks.throttled.aenqueue("traced")  # RateLimited, then succeeds
    cut_off = await engine_tasks.sleeper.aenqueue(60)
    async with run_worker(grace=0.05):
        assert (await finished(deferred)).status == TaskResultStatus.SUCCESSFUL
    # the worker stopped with the sleeper running: its attempt is released, not failed
    by_job = {}
    for span in sorted(of_kind(spans, SpanKind.CONSUMER), key=lambda s: s.start_time):
        by_job.setdefault(span.attributes["messaging.message.id"], []).append(span)
    limited, succeeded = by_job[deferred.id]
    assert limited.status.status_code == StatusCode.UNSET
    [event] = limited.events
    assert (event.name, event.attributes["worker.retry_after"]) == ("rate limited", 0.3)
    assert succeeded.status.status_code == StatusCode.UNSET
    [released] = by_job[cut_off.id]
    assert released.status.status_code == StatusCode.ERROR
    assert released.status.description.startswith("Released unfinished: the worker was stopped")
    assert not released.events


async def test_a_bulk_enqueue_is_one_span_and_each_job_carries_it_with_the_baggage(spans, backend):
    token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        results = await tasks.say_async.aenqueue_many([(["a"], {}), (["b"], {})])
    finally:
        otel_context.detach(token)
    [enqueue] = of_kind(spans, SpanKind.PRODUCER)
    assert enqueue.attributes["messaging.batch.message_count"] == 2
    for result in results:
        fields = await backend.broker.queue("default").ajob(result.id)
        call = decode(fields[b"m"], 1 << 20)  # the message, as the worker reads it
        span_id = f"{enqueue.context.span_id:016x}"
        assert call.trace["traceparent"].split("-")[2] == span_id
        assert call.trace["baggage"] == "tenant=acme"


def test_without_a_tracer_provider_nothing_is_traced_nor_carried(backend):
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)
    _, job = backend.prepare(tasks.say_async, ["quiet"], {})
    assert orjson.loads(job.body) == {"task": tasks.say_async.module_path, "args": ["quiet"]}


def test_messages_without_a_trace_or_with_a_broken_one_still_run_untraced():
    path = tasks.say_async.module_path
    old = decode(orjson.dumps({"task": path, "args": ["x"]}), 1 << 20)
    assert (old.args, old.trace) == (["x"], None)
    broken = decode(orjson.dumps({"task": path, "args": ["x"], "trace": ["nope"]}), 1 << 20)
    assert broken.trace is None
    kept = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    assert decode(orjson.dumps({"task": path, "trace": kept, "args": ["x"]}), 1 << 20).trace == (
        kept
    )


# -- across real processes: uvicorn and runworker, each exporting to its own file ----------


def read_spans(folder: Path) -> list[dict]:
    return [json.loads(line) for f in folder.glob("spans-*.jsonl") for line in f.open()]


@pytest.mark.e2e
@pytest.mark.parametrize("fetcher", ["fetch", "fetch_sync"])
def test_one_trace_from_the_request_through_the_job_to_its_http_call(
    fetcher, tmp_path, redis_url, tasks_prefix, backend
):
    folder = tmp_path / "spans"
    folder.mkdir()
    env = env_of(redis_url, tasks_prefix, TELEMETRY_SPANS=str(folder))
    env["DJANGO_SETTINGS_MODULE"] = "tests.telemetry.otel_settings"
    port = free_port()

    def enqueued() -> str | None:
        assert site.poll() is None and worker.poll() is None, "a process died"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/enqueue/{fetcher}").json()["id"]
        except httpx.TransportError:
            return None

    def done() -> bool:
        return backend.get_result(job_id).status == TaskResultStatus.SUCCESSFUL

    serve = ["-m", "uvicorn", "tests.telemetry.site:app", "--host", "127.0.0.1", "--port",
             str(port), "--lifespan", "off"]  # fmt: skip
    site = start(serve, env, tmp_path / "site.log")
    worker = start(["manage.py", "runworker", "--no-scheduler"], env, tmp_path / "worker.log")
    try:
        job_id = wait_until(enqueued, 20, "the site to enqueue")
        wait_until(done, 30, "the job to succeed")
        assert backend.get_result(job_id).return_value == 200
        # Each span is written as it ends: the httpx call's ended before the job did.
        found = read_spans(folder)
    finally:
        stop(site)
        stop(worker)
    request = next(s for s in found if s["name"] == f"GET /enqueue/{fetcher}")
    trace_id = request["context"]["trace_id"]
    ours = [s for s in found if s["context"]["trace_id"] == trace_id]
    by_kind = {s["kind"]: s for s in ours}
    assert set(by_kind) == {"SpanKind.SERVER", "SpanKind.PRODUCER", "SpanKind.CONSUMER",
                            "SpanKind.CLIENT"}, ours  # fmt: skip
    enqueue, attempt, call = (by_kind[f"SpanKind.{k}"] for k in ("PRODUCER", "CONSUMER", "CLIENT"))
    assert enqueue["parent_id"] == request["context"]["span_id"]
    assert attempt["parent_id"] == enqueue["context"]["span_id"]
    assert call["parent_id"] == attempt["context"]["span_id"]
    assert attempt["attributes"]["messaging.message.id"] == job_id
    attributes = call["attributes"]
    assert (attributes.get("url.full") or attributes["http.url"]).endswith("/pong")
    # Two processes: the request and enqueue in the site's, the attempt and call in the worker's.
    assert request["resource"] == enqueue["resource"] != attempt["resource"] == call["resource"]
