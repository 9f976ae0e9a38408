"""The JSON API: enqueue jobs (202 + where to watch them) and read a job's result."""

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.tasks import TaskResult, TaskResultStatus, default_task_backend
from django.tasks.exceptions import TaskResultDoesNotExist
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from jobs.models import Report
from jobs.tasks import send_report, sync_orders
from worker import BrokerUnavailable
from worker.waiting import afinished
from worker.workflows import Workflow, WorkflowDoesNotExist, chain, step

logger = logging.getLogger(__name__)

# How long a client should wait before trying again when the job queue is unreachable.
RETRY_AFTER_SECONDS = 5
# The longest ?wait= of the job status endpoint: a request held longer ties up a client
# and a server slot for little gain (the client asks again).
MAX_WAIT = 30.0
# Seconds between keep-alive comments on an event stream with nothing to say: proxies
# close a connection that stays silent for long.
KEEPALIVE = 15.0
# Seconds an event stream lasts at most, for a job that runs long: then it ends and the
# client's EventSource connects again (each event carries the whole state), so that no
# stream holds up a server that is shutting down (uvicorn waits for open connections).
STREAM_FOR = 60.0
# The id of a job stream's last event, its final state.
FINAL = "final"

type AsyncView = Callable[..., Awaitable[HttpResponseBase]]


def broker_unavailable_is_503(view: AsyncView) -> AsyncView:
    """Answer 503 with a JSON error (and Retry-After) when Redis cannot be reached, rather
    than a 500: the request was fine, the job queue is down for the moment."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return await view(request, *args, **kwargs)
        except BrokerUnavailable as e:
            # The details (which Redis, what failed) go to the log, not to the client.
            logger.warning("%s %s: %s", request.method, request.path, e)
            said = ""
            if request.method == "POST":
                said = " It may have been enqueued." if e.maybe_stored else " Nothing was enqueued."
            response = JsonResponse(
                {
                    "error": "The job queue is unavailable (Redis cannot be reached)."
                    f"{said} Try again shortly."
                },
                status=503,
            )
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response

    return wrapper


@require_POST
@broker_unavailable_is_503
async def enqueue_sync_orders(request: HttpRequest) -> JsonResponse:
    result = await sync_orders.aenqueue()
    return _accepted(request, result)


@require_POST
@broker_unavailable_is_503
async def create_report(request: HttpRequest) -> JsonResponse:
    """A report built and delivered by a job; with ``?sync=1``, of the orders synced first:
    sync_orders, then send_report, one workflow (202 + where to watch it)."""
    report = await Report.objects.acreate()
    report_url = request.build_absolute_uri(reverse("jobs:report", args=[report.pk]))
    if request.GET.get("sync") == "1":
        workflow = await _keeping(
            report, chain(step(sync_orders), step(send_report, report.pk)).aenqueue()
        )
        status_url = request.build_absolute_uri(reverse("jobs:workflow", args=[workflow.id]))
        response = JsonResponse({"report_id": report.pk, "report_url": report_url,
                                 "workflow_id": workflow.id, "status_url": status_url},
                                status=202)  # fmt: skip
        response["Location"] = status_url
        return response
    result = await _keeping(report, send_report.aenqueue(report.pk))
    return _accepted(request, result, report_id=report.pk, report_url=report_url)


async def _keeping[T](report: Report, enqueuing: Awaitable[T]) -> T:
    """What enqueuing the report's job gives; if it fails, no job will ever build the
    report: it is not left "pending" for ever (but a job Redis may have stored will run,
    and must find its report)."""
    try:
        return await enqueuing
    except Exception as e:
        if not (isinstance(e, BrokerUnavailable) and e.maybe_stored):
            await report.adelete()
        raise


@require_GET
@broker_unavailable_is_503
async def job_status(request: HttpRequest, job_id: str) -> JsonResponse:
    """The job's result; with ``?wait=SECONDS`` (at most MAX_WAIT), answered as soon as the
    job ends, or after that long as it then stands."""
    seconds = _wait_of(request)
    if seconds is None:
        return _bad_wait(request)
    try:
        result = await default_task_backend.aget_result(job_id)
        if seconds and not result.is_finished:
            with contextlib.suppress(TimeoutError):
                await afinished(result, timeout=seconds)
    except TaskResultDoesNotExist:
        return JsonResponse({"error": f"no job {job_id!r}"}, status=404)
    return JsonResponse(task_result_json(result))


@require_GET
@broker_unavailable_is_503
async def workflow_status(request: HttpRequest, workflow_id: str) -> JsonResponse:
    """A workflow's status, progress and steps; ``?wait=SECONDS`` as for a job."""
    seconds = _wait_of(request)
    if seconds is None:
        return _bad_wait(request)
    try:
        workflow = await Workflow.aget(workflow_id)
        progress = await workflow.aprogress()
        if seconds and not progress.finished:
            with contextlib.suppress(TimeoutError):
                progress = await workflow.afinished(seconds)
    except WorkflowDoesNotExist:
        return JsonResponse({"error": f"no workflow {workflow_id!r}"}, status=404)
    steps = [
        {"job_id": job_id, "ended": ended,
         "status_url": request.build_absolute_uri(reverse("jobs:job-status", args=[job_id]))}
        for job_id, ended in progress.steps
    ]  # fmt: skip
    state = {"id": workflow.id, "status": progress.status, "ended": progress.ended,
             "total": progress.total, "failed": progress.failed}  # fmt: skip
    return JsonResponse({**state, "steps": steps})


def _wait_of(request: HttpRequest) -> float | None:
    """The request's ``?wait=`` in seconds (at most MAX_WAIT; 0 when not given), or None
    when it is not a number of seconds."""
    wait = request.GET.get("wait")
    try:
        seconds = min(float(wait), MAX_WAIT) if wait is not None else 0.0
    except ValueError:
        return None
    return seconds if seconds >= 0 else None  # (NaN too)


def _bad_wait(request: HttpRequest) -> JsonResponse:
    wait = request.GET.get("wait")
    return JsonResponse({"error": f"wait must be a number of seconds, not {wait!r}"}, status=400)


@require_GET
@broker_unavailable_is_503
async def job_events(request: HttpRequest, job_id: str) -> HttpResponseBase:
    """Server-Sent Events of the job: its state (as the status endpoint's JSON) now, then at
    each change of status or progress, until it ends; then the stream closes (or after
    STREAM_FOR seconds: the client connects again). Each event carries the whole state, so
    a client that reconnects starts from the state as it then is and misses nothing of the
    final one. The final state's event has the id FINAL: a client that comes back with it
    as Last-Event-ID has it all, and gets 204 (which stops a browser's EventSource)."""
    if request.headers.get("Last-Event-ID") == FINAL:
        return HttpResponse(status=204)
    try:
        result = await default_task_backend.aget_result(job_id)
    except TaskResultDoesNotExist:
        return JsonResponse({"error": f"no job {job_id!r}"}, status=404)
    response = StreamingHttpResponse(_job_events(result), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


async def _job_events(result: TaskResult) -> AsyncIterator[str]:
    try:
        async with default_task_backend.broker.loop().listener.watching([result.id]) as events:
            async for event in _changes(result, events):
                yield event
    except BrokerUnavailable:
        return  # Redis went away since the first read: the client connects again


async def _changes(result: TaskResult, events: asyncio.Queue[Any]) -> AsyncIterator[str]:
    sent, number = None, 0
    until = time.monotonic() + STREAM_FOR
    while True:
        try:
            await result.arefresh()  # (the first read after the subscription)
        except BrokerUnavailable:
            pass  # the listener says when Redis is back; meanwhile keep-alives
        except TaskResultDoesNotExist:  # deleted, or its result expired
            yield f"event: gone\ndata: {json.dumps({'id': result.id})}\n\n"
            return
        state = task_result_json(result)
        if state != sent:
            sent, number = state, number + 1
            name = FINAL if result.is_finished else number
            yield f"id: {name}\nevent: job\ndata: {json.dumps(state)}\n\n"
        if result.is_finished or time.monotonic() >= until:
            return
        try:
            await asyncio.wait_for(events.get(), min(KEEPALIVE, until - time.monotonic()))
        except TimeoutError:
            if time.monotonic() < until:
                yield ": keep-alive\n\n"
        while not events.empty():  # one read for whatever came meanwhile
            events.get_nowait()


@require_GET
async def report_detail(request: HttpRequest, report_id: int) -> JsonResponse:
    try:
        report = await Report.objects.aget(pk=report_id)
    except Report.DoesNotExist:
        return JsonResponse({"error": f"no report {report_id}"}, status=404)
    return JsonResponse(
        {
            "id": report.pk,
            "status": report.status,
            "delivery_id": str(report.delivery_id),
            "order_count": report.order_count,
            "total": None if report.total_amount is None else str(report.total_amount),
            "by_status": report.by_status,
            "created_at": _iso(report.created_at),
            "built_at": _iso(report.built_at),
            "delivered_at": _iso(report.delivered_at),
            "error": report.error,
        }
    )


def task_result_json(result: TaskResult) -> dict[str, Any]:
    """A TaskResult as JSON: everything a client needs to follow the job to its end."""
    data = {
        "id": result.id,
        "task": result.task.module_path,
        "queue": result.task.queue_name,
        "status": str(result.status),
        "args": result.args,
        "kwargs": result.kwargs,
        "enqueued_at": _iso(result.enqueued_at),
        "started_at": _iso(result.started_at),
        "last_attempted_at": _iso(result.last_attempted_at),
        "finished_at": _iso(result.finished_at),
        "attempts": result.attempts,
        "worker_ids": result.worker_ids,
        "errors": [
            {"exception_class_path": e.exception_class_path, "traceback": e.traceback}
            for e in result.errors
        ],
    }
    progress = getattr(result, "progress", None)  # what the job reported (worker.context)
    data["progress"] = None if progress is None else dataclasses.asdict(progress)
    data["metadata"] = getattr(result, "metadata", {})
    # return_value raises unless the job succeeded, and None is a legitimate return value.
    if result.status == TaskResultStatus.SUCCESSFUL:
        data["return_value"] = result.return_value
    return data


def _accepted(request: HttpRequest, result: TaskResult, **extra: Any) -> JsonResponse:
    status_url = request.build_absolute_uri(reverse("jobs:job-status", args=[result.id]))
    response = JsonResponse(
        {**extra, "job_id": result.id, "status": str(result.status), "status_url": status_url},
        status=202,
    )
    response["Location"] = status_url
    return response


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
