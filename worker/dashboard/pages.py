"""The dashboard's pages (GET): each reads what it shows through the operations API, in a
bounded number of Redis round trips whatever the number of jobs."""

from __future__ import annotations

from typing import Any

import orjson
from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.tasks import task_backends
from django.tasks.exceptions import TaskResultDoesNotExist

from worker.backend import RedisBackend
from worker.dashboard import access
from worker.dashboard.conf import config
from worker.dashboard.live import FAILED, PROCESSED
from worker.ops.api import COUNTERS, Ops
from worker.ops.browse import ACTIONS, BROWSE, JobFilter
from worker.protocol.message import fingerprint
from worker.task import lookup, registered
from worker.workflows import WorkflowDoesNotExist

# Rows on a page of jobs.
PAGE_SIZE = 50
# Steps on a page of a workflow.
STEPS_PAGE = 100
# INFO fields shown of the Redis server, in this order.
SERVER_FACTS = (
    "redis_version",
    "used_memory_human",
    "used_memory_peak_human",
    "connected_clients",
    "maxmemory_human",
    "maxmemory_policy",
    "uptime_in_days",
)
STATE_HELP = {
    "ready": "waiting for a worker, in the order they will run",
    "held": "ready, but held back by a rate or concurrency limit",
    "running": "leased to a worker now",
    "delayed": "waiting for their run_after time",
    "retrying": "failed, waiting for their next attempt",
    "dead": "failed for good (dead letters): retry them to run them again",
    "succeeded": "the latest successes whose results are kept",
    "cancelled": "the latest jobs cancelled by an operator",
}


def ops() -> Ops:
    alias = config().backend
    backend = task_backends[alias]
    if not isinstance(backend, RedisBackend):
        kind = type(backend).__name__
        raise ImproperlyConfigured(f"TASKS[{alias!r}] is a {kind}: the tasks dashboard shows "
                                   "a RedisBackend only (TASKS_DASHBOARD['backend'])")  # fmt: skip
    return Ops(backend)


def _render(request: HttpRequest, template: str, section: str, **context: Any) -> HttpResponse:
    context.update(
        section=section,
        can_act=access.can_act(request),
        read_only=config().read_only,
        username=request.user.get_username(),
        notes=list(messages.get_messages(request)),
        here=request.get_full_path(),
    )
    return render(request, f"worker/dashboard/{template}", context)


@access.page
def overview(request: HttpRequest) -> HttpResponse:
    o = ops()
    stats = [o.stats(q) for q in o.queues()]
    totals = _totals(stats)
    info = o.server()
    facts = [(name, info.get(name, "?")) for name in SERVER_FACTS]
    minutes = o.history("minute")
    hours = o.history("hour")
    return _render(
        request,
        "overview.html",
        "overview",
        totals=totals,
        facts=facts,
        evicting=info.get("maxmemory_policy", "noeviction") != "noeviction",
        policy=info.get("maxmemory_policy"),
        minutes=[[p.at, p.processed, p.failed] for p in minutes],
        hours=[[p.at, p.processed, p.failed] for p in hours],
        workers=len(o.workers()),
    )


def _totals(stats: list[Any]) -> dict[str, int]:
    """The overview's counters over every queue (processed: attempts ended; failed: those
    that failed, retried or not)."""
    counters = {name: sum(s.counters.get(name, 0) for s in stats) for name in COUNTERS}
    return {
        "processed": sum(counters[name] for name in PROCESSED),
        "failed": sum(counters[name] for name in FAILED),
        "running": sum(s.running for s in stats),
        # ready to start, as the live updates count them (held jobs: on the Queues page)
        "enqueued": sum(s.ready for s in stats),
        "delayed": sum(s.delayed for s in stats),
        "retrying": sum(s.retrying or 0 for s in stats),
        "dead": sum(s.dead for s in stats),
    }


@access.page
def queues(request: HttpRequest) -> HttpResponse:
    o = ops()
    paused = o.paused()
    rows = [(o.stats(q), paused.get(q)) for q in o.queues()]
    return _render(request, "queues.html", "queues", rows=rows)


@access.page
def purge_confirm(request: HttpRequest, queue: str) -> HttpResponse:
    o = ops()
    if queue not in o.queues():
        raise Http404(f"no queue {queue!r}")
    counts = o.purge_counts(queue)
    return _render(request, "purge.html", "queues", queue=queue, counts=counts,
                   total=sum(counts.values()) - counts["dead"])  # fmt: skip


@access.page
def workers(request: HttpRequest) -> HttpResponse:
    o = ops()
    rows = [(w, o.running(w)) for w in o.workers()]
    return _render(request, "workers.html", "workers", rows=rows)


def chosen_filter(data: Any) -> JobFilter:
    """The filter of a request's parameters (state, queue, task, q); ValueError if bad."""
    state = data.get("state") or "dead"
    return JobFilter(
        state=state,
        queue=data.get("queue") or None,
        task=data.get("task") or None,
        text=(data.get("q") or "").strip() or None,
    )


@access.page
def jobs(request: HttpRequest) -> HttpResponse:
    o = ops()
    try:
        chosen = chosen_filter(request.GET)
        if chosen.queue and chosen.queue not in o.queues():
            raise ValueError(f"no queue {chosen.queue!r}")
        found = o.browse(chosen, request.GET.get("cursor") or None, limit=PAGE_SIZE)
    except ValueError as e:
        return _render(request, "jobs.html", "jobs", error=str(e), states=BROWSE,
                       queues=o.queues(), tasks=sorted(registered()), chosen=None)  # fmt: skip
    actions = [a for a, states in ACTIONS.items() if chosen.state in states]
    return _render(
        request,
        "jobs.html",
        "jobs",
        chosen=chosen,
        found=found,
        states=BROWSE,
        state_help=STATE_HELP[chosen.state],
        queues=o.queues(),
        tasks=sorted(registered()),
        actions=actions,
        first_page=not request.GET.get("cursor"),
    )


@access.page
def job(request: HttpRequest, job_id: str) -> HttpResponse:
    o = ops()
    try:
        record = o.job(job_id)
    except TaskResultDoesNotExist:
        raise Http404(f"no job {job_id!r} (it may have expired)") from None
    place = o.place(record)
    task = lookup(record.task_path) if record.task_path else None
    unique = None
    if task is not None and task.unique_for is not None:
        unique = fingerprint(task, record.args, record.kwargs)
    if place.state == "waiting":  # on no list: nothing to retry or delete, but it can be cancelled
        actions = ["cancel"]
    else:
        actions = [a for a, states in ACTIONS.items() if _browse_state(place.state) in states]
    return _render(
        request,
        "job.html",
        "jobs",
        record=record,
        place=place,
        unique=unique,
        unique_for=task.unique_for if task is not None else None,
        args=_pretty(record.args),
        kwargs=_pretty(record.kwargs),
        return_value=_pretty(record.return_value),
        attempts=_attempts(record),
        actions=actions,
    )


def _browse_state(state: str) -> str:
    """A job's place as the job list's states name it."""
    return {"successful": "succeeded", "failed": "dead"}.get(state, state)


def _pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def _attempts(record: Any) -> list[dict[str, Any]]:
    """Each attempt: its number, worker, start, end, duration and error, as far as the
    job's hash tells (failed attempts keep their span; the last one its start and end)."""
    errors = {n: e for n, e in enumerate(record.errors, 1)}
    count = max(record.attempts, len(record.worker_ids), *record.spans, 0)
    rows = []
    for n in range(1, count + 1):
        began, ended = record.spans.get(n, (None, None))
        if n == count and began is None:
            began = record.last_attempted_at
            ended = record.finished_at
        if n == 1 and began is None:
            began = record.started_at
        rows.append({
            "n": n,
            "worker": record.worker_ids[n - 1] if n <= len(record.worker_ids) else None,
            "began": began,
            "ended": ended,
            "seconds": (ended - began).total_seconds() if began and ended else None,
            "error": errors.get(n),
        })  # fmt: skip
    # An error recorded after the last attempt: a cancellation of a job that was queued.
    extra = [errors[n] for n in errors if n > count]
    if extra:
        rows.append({"n": None, "worker": None, "began": None, "ended": record.finished_at,
                     "seconds": None, "error": extra[-1]})  # fmt: skip
    return rows


@access.page
def workflow(request: HttpRequest, workflow_id: str) -> HttpResponse:
    start = request.GET.get("start", "0")
    offset = int(start) if start.isdigit() else 0
    try:
        info = ops().workflow(workflow_id, offset, STEPS_PAGE)
    except WorkflowDoesNotExist:
        raise Http404(f"no workflow {workflow_id!r} (it may have ended and expired)") from None
    total = len(info.progress.steps)
    return _render(
        request,
        "workflow.html",
        "jobs",
        info=info,
        last=offset + len(info.steps),
        total_steps=total,
        previous=max(offset - STEPS_PAGE, 0) if offset else None,
        following=offset + STEPS_PAGE if offset + STEPS_PAGE < total else None,
    )


@access.page
def periodic(request: HttpRequest) -> HttpResponse:
    return _render(request, "periodic.html", "periodic", schedules=ops().schedules())


@access.page
def by_task(request: HttpRequest) -> HttpResponse:
    o = ops()
    hour = {f.task: f for f in o.task_figures("hour")}
    day = o.task_figures("day")
    rows = [(f, hour.get(f.task)) for f in day]
    return _render(request, "by_task.html", "by_task", rows=rows)
