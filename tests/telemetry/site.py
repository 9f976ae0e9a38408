"""The tracing test's web process: an ASGI app as small as it gets, served by uvicorn. A
request to /enqueue/<task> opens a SERVER span, as an instrumented site's would, and
enqueues ``tasks.fetch`` or ``tasks.fetch_sync`` of its own /pong inside it."""

import django
import orjson
from opentelemetry import trace
from opentelemetry.trace import SpanKind

django.setup()

from tests.telemetry import tasks  # noqa: E402 - tasks need Django set up

FETCHERS = {"fetch": tasks.fetch, "fetch_sync": tasks.fetch_sync}


async def app(scope, receive, send) -> None:
    assert scope["type"] == "http"
    path = scope["path"]
    body = b"pong"
    if path.startswith("/enqueue/"):
        host, port = scope["server"]
        fetcher = FETCHERS[path.removeprefix("/enqueue/")]
        tracer = trace.get_tracer("tests.telemetry.site")
        with tracer.start_as_current_span(f"GET {path}", kind=SpanKind.SERVER):
            result = await fetcher.aenqueue(f"http://{host}:{port}/pong")
        body = orjson.dumps({"id": result.id})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
