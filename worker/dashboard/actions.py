"""The dashboard's actions: POSTs (CSRF-checked, for staff who may act, refused when the
dashboard is read-only), each logged at INFO on ``worker.dashboard`` (who, what, how many
jobs), each answered with a redirect to the page it came from and a message."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect
from django.tasks.exceptions import TaskResultDoesNotExist
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from worker.dashboard import access
from worker.dashboard.pages import chosen_filter, ops
from worker.workflows import WorkflowDoesNotExist

# Jobs examined per request of an action on everything a filter matches.
BATCH = 500


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """To the page the form was on (``next``, if it is this site's), else ``default``."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = reverse(default)
    return redirect(target)


def _told(request: HttpRequest, text: str, error: bool = False) -> None:
    (messages.error if error else messages.success)(request, text, fail_silently=True)


def _reason(request: HttpRequest) -> str:
    return f"Cancelled by {request.user.get_username()} in the dashboard."


@access.action
def queue_action(request: HttpRequest, queue: str, verb: str) -> HttpResponseBase:
    o = ops()
    if queue not in o.queues():
        _told(request, f"No queue {queue!r}.", error=True)
        return _back(request, "worker_dashboard:queues")
    if verb == "pause":
        changed = o.pause(queue)
        _told(request, f"Queue {queue} paused." if changed else f"Queue {queue} was paused.")
    elif verb == "resume":
        changed = o.resume(queue)
        _told(request, f"Queue {queue} resumed." if changed else f"Queue {queue} was running.")
    else:
        assert verb == "purge", verb  # from its confirmation page
        removed = o.purge(queue, dead=request.POST.get("dead") == "1")
        access.log(request, f"purge queue {queue}", removed)
        _told(request, f"Purged {removed} job(s) from {queue}.")
        return redirect("worker_dashboard:queues")
    access.log(request, f"{verb} queue {queue}")
    return _back(request, "worker_dashboard:queues")


@access.action
def worker_action(request: HttpRequest, verb: str) -> HttpResponseBase:
    worker_id = request.POST.get("worker", "")
    o = ops()
    try:
        if verb == "quiet":
            o.quiet(worker_id)
        else:
            assert verb == "stop", verb
            o.stop_worker(worker_id)
    except LookupError as e:
        _told(request, f"{str(e).capitalize()}.", error=True)
        return _back(request, "worker_dashboard:workers")
    access.log(request, f"{verb} worker {worker_id}")
    _told(request, f"Worker {worker_id} told to {'go quiet' if verb == 'quiet' else 'stop'}.")
    return _back(request, "worker_dashboard:workers")


@access.action
def jobs_action(request: HttpRequest) -> HttpResponseBase:
    """Retry, cancel or delete the jobs selected (their ids)."""
    verb = request.POST.get("action", "")
    ids = request.POST.getlist("job")
    if verb not in ("retry", "cancel", "delete") or not ids:
        _told(request, "Choose an action and at least one job.", error=True)
        return _back(request, "worker_dashboard:jobs")
    try:
        done = ops().act(verb, ids, _reason(request))
    except ValueError as e:  # an id not shaped like one
        _told(request, str(e), error=True)
        return _back(request, "worker_dashboard:jobs")
    except TaskResultDoesNotExist as e:
        _told(request, f"No job {e}.", error=True)
        return _back(request, "worker_dashboard:jobs")
    access.log(request, f"{verb} selected jobs", done, asked=len(ids))
    _told(request, f"{verb.capitalize()}: {done} of {len(ids)} job(s).")
    if verb == "delete" and len(ids) == 1 and request.POST.get("from") == "job":
        return redirect("worker_dashboard:jobs")
    return _back(request, "worker_dashboard:jobs")


@access.action
def jobs_bulk(request: HttpRequest) -> HttpResponseBase:
    """One batch of an action on everything a filter matches: JSON for the page's script
    (which calls again with the cursor until it is null, showing the progress)."""
    verb = request.POST.get("action", "")
    try:
        chosen = chosen_filter(request.POST)
        step = ops().bulk_step(verb, chosen, request.POST.get("cursor") or None, BATCH,
                               _reason(request))  # fmt: skip
    except ValueError as e:
        return JsonResponse({"error": str(e)}, status=400)
    access.log(request, f"{verb} jobs matching", step.done, state=chosen.state,
               queue=chosen.queue, task=chosen.task, text=chosen.text)  # fmt: skip
    return JsonResponse({"done": step.done, "examined": step.examined, "cursor": step.cursor})


@access.action
def workflow_cancel(request: HttpRequest, workflow_id: str) -> HttpResponseBase:
    """Cancel a workflow (a batch: its callbacks), from its page."""
    try:
        outcome = ops().cancel_workflow(workflow_id)
    except WorkflowDoesNotExist:
        _told(request, f"No workflow {workflow_id!r} (it may have ended and expired).", error=True)
        return redirect("worker_dashboard:jobs")
    if outcome == "cancelled":
        access.log(request, f"cancel workflow {workflow_id}")
        _told(request, f"Workflow {workflow_id} cancelled.")
    else:
        _told(request, f"Workflow {workflow_id} had ended ({outcome}): nothing to cancel.",
              error=True)  # fmt: skip
    return redirect("worker_dashboard:workflow", workflow_id)


@access.action
def schedule_action(request: HttpRequest, verb: str) -> HttpResponseBase:
    name = request.POST.get("schedule", "")
    o = ops()
    try:
        if verb == "run":
            result = o.run_schedule(name)
            text = f"Schedule {name} ran now: job {result.id}."
        elif verb == "pause":
            text = f"Schedule {name} paused." if o.pause_schedule(name) else f"{name} was paused."
        else:
            assert verb == "resume", verb
            text = f"Schedule {name} resumed." if o.resume_schedule(name) else f"{name} ran."
    except LookupError as e:
        _told(request, f"{str(e).capitalize()}.", error=True)
        return _back(request, "worker_dashboard:periodic")
    access.log(request, f"{verb} schedule {name}", 1 if verb == "run" else None)
    _told(request, text)
    return _back(request, "worker_dashboard:periodic")
