"""Settings of the tracing test's processes (the site and the worker): OpenTelemetry's SDK
set up as a project would, every span written as a JSON line to a file of the process's own
in the folder TELEMETRY_SPANS names, and httpx instrumented."""

import os

from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from tests.telemetry.settings import *  # noqa: F403

# Open for the process's whole life.
_spans = open(os.path.join(os.environ["TELEMETRY_SPANS"], f"spans-{os.getpid()}.jsonl"), "a")
_provider = TracerProvider(resource=Resource.create({"service.name": f"test-{os.getpid()}"}))
_provider.add_span_processor(
    SimpleSpanProcessor(
        ConsoleSpanExporter(out=_spans, formatter=lambda span: span.to_json(indent=None) + "\n")
    )
)
trace.set_tracer_provider(_provider)
HTTPXClientInstrumentor().instrument()
