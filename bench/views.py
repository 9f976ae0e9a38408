"""Two async views for the web benchmark: the same JSON answer, without and with one
enqueue per request, so the difference in requests/s is what an enqueue costs a view."""

from django.http import JsonResponse

from bench import tasks


async def noop(request):
    return JsonResponse({"ok": True})


async def enqueue(request):
    result = await tasks.noop.aenqueue()
    return JsonResponse({"ok": True, "job": result.id})
