"""Async views for the web benchmarks: the same JSON answer, without and with one enqueue
per request, so the difference in requests/s is what an enqueue costs a view. ``noop`` and
``enqueue`` for bench/run.py; ``accepted`` and ``accepted_enqueue`` for bench/site_load.py,
which answer 202 with a token, the enqueued job's argument."""

import uuid

from django.http import JsonResponse

from bench import tasks


async def noop(request):
    return JsonResponse({"ok": True})


async def enqueue(request):
    result = await tasks.noop.aenqueue()
    return JsonResponse({"ok": True, "job": result.id})


async def accepted(request):
    return JsonResponse({"token": uuid.uuid4().hex}, status=202)


async def accepted_enqueue(request):
    token = uuid.uuid4().hex
    result = await tasks.mark.aenqueue(token)
    return JsonResponse({"token": token, "job_id": result.id}, status=202)
