"""``/tasks/events``: the live view's stream (Server-Sent Events), from an async view."""

from __future__ import annotations

from django.http import HttpRequest, StreamingHttpResponse

from worker.dashboard import access
from worker.dashboard.live import hub


@access.stream
async def events(request: HttpRequest) -> StreamingHttpResponse:
    response = StreamingHttpResponse(hub().messages(), content_type="text/event-stream")
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on as it comes
    return response
