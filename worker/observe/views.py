"""The cluster metrics view: Prometheus's text format, for a scraper holding the backend's
bearer token (OPTIONS['metrics_token']) or a staff member's session."""

from __future__ import annotations

import hmac

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.tasks import task_backends
from django.tasks.exceptions import InvalidTaskBackend

from worker.backend import RedisBackend
from worker.observe import cluster


async def metrics(request: HttpRequest) -> HttpResponse:
    """The gauges of the backend ``?backend=ALIAS`` (default: "default"), per queue."""
    try:
        from worker.observe import exposition
    except ImportError as e:
        raise ImproperlyConfigured(str(e)) from None
    alias = request.GET.get("backend", "default")
    try:
        backend = task_backends[alias]
    except InvalidTaskBackend:
        backend = None
    # Whether an alias exists is told only to a caller who may read some backend: with no
    # such backend, the token of any RedisBackend is taken.
    known = [backend] if isinstance(backend, RedisBackend) else _redis_backends()
    if refused := await _refusal(request, [b.options_.metrics_token for b in known]):
        return refused
    if not isinstance(backend, RedisBackend):
        return HttpResponse(f"No RedisBackend {alias!r} in TASKS\n", status=404,
                            content_type="text/plain")  # fmt: skip
    snapshot = await cluster.snapshot(backend)
    body, content_type = exposition.render(
        cluster.FAMILIES, snapshot, request.headers.get("Accept")
    )
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response


def _redis_backends() -> list[RedisBackend]:
    return [b for b in task_backends.all() if isinstance(b, RedisBackend)]


async def _refusal(request: HttpRequest, tokens: list[str | None]) -> HttpResponse | None:
    """None for one of the bearer ``tokens`` or a staff session; else the refusal: 403 for
    a user signed in without staff status, 401 for anyone else."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and any(
        hmac.compare_digest(given.encode(), token.encode()) for token in tokens if token
    ):
        return None
    auser = getattr(request, "auser", None)  # set by django.contrib.auth's middleware
    user = await auser() if auser is not None else None
    if user is not None and user.is_active and user.is_staff:
        return None
    if user is not None and user.is_authenticated:
        return HttpResponse("Staff only\n", status=403, content_type="text/plain")
    response = HttpResponse("A bearer token or a staff session is needed\n", status=401,
                            content_type="text/plain")  # fmt: skip
    response["WWW-Authenticate"] = 'Bearer realm="tasks metrics"'
    return response
