"""Who may see and do what, and the headers every dashboard response carries.

Staff only: an anonymous visitor is sent to the login page (the admin's, when the admin is
mounted), a signed-in user who is not active staff gets 403, and so does staff without the
permission ``worker_dashboard.view_dashboard`` (``act_dashboard`` for actions; superusers
have both). Actions are POSTs only, CSRF-checked, refused in read-only mode, and logged on
the ``worker.dashboard`` logger.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase
from django.urls import NoReverseMatch, reverse
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from worker.dashboard.conf import config

logger = logging.getLogger("worker.dashboard")

VIEW = "worker_dashboard.view_dashboard"
ACT = "worker_dashboard.act_dashboard"
# No inline script or style, nothing from elsewhere: the pages work under this policy.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

View = Callable[..., HttpResponseBase]
AsyncView = Callable[..., Coroutine[Any, Any, HttpResponseBase]]


def login_url() -> str:
    try:
        return reverse("admin:login")
    except NoReverseMatch:
        return str(settings.LOGIN_URL)


def _refusal(request: HttpRequest, user: Any, allowed: bool) -> HttpResponseBase | None:
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path(), login_url())
    if not (user.is_active and user.is_staff and allowed):
        raise PermissionDenied("The tasks dashboard is for staff with its permission.")
    return None


def secured(response: HttpResponseBase) -> HttpResponseBase:
    response["Content-Security-Policy"] = POLICY
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "same-origin"
    return response


def page(view: View) -> View:
    """A page: for staff who may view it."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = request.user
        if refused := _refusal(request, user, user.has_perm(VIEW)):
            return refused
        return secured(view(request, *args, **kwargs))

    # csrf_protect sets the CSRF cookie its forms need, without CsrfViewMiddleware.
    return csrf_protect(wrapped)


def action(view: View) -> View:
    """An action: a CSRF-checked POST, for staff who may act, unless the dashboard is
    read-only."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = request.user
        if refused := _refusal(request, user, user.has_perm(VIEW) and user.has_perm(ACT)):
            return refused
        if config().read_only:
            raise PermissionDenied("The tasks dashboard is read-only (TASKS_DASHBOARD).")
        return secured(view(request, *args, **kwargs))

    return require_POST(csrf_protect(wrapped))


def stream(view: AsyncView) -> AsyncView:
    """An async view for staff who may view the dashboard."""

    @functools.wraps(view)
    async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        user = await request.auser()
        allowed = user.is_authenticated and await user.ahas_perm(VIEW)
        if refused := _refusal(request, user, allowed):
            return refused
        return secured(await view(request, *args, **kwargs))

    return wrapped


def log(request: HttpRequest, what: str, count: int | None = None, **details: Any) -> None:
    """An action, at INFO: who, what, how many jobs."""
    user = getattr(request, "user", None)
    who = user.get_username() if user is not None else "?"
    told = " ".join(f"{k}={v!r}" for k, v in details.items() if v not in (None, ""))
    jobs = "" if count is None else f" ({count} job{'s' if count != 1 else ''})"
    logger.info("%s: %s%s%s", who, what, jobs, f" {told}" if told else "")


def can_act(request: HttpRequest) -> bool:
    """Whether to show actions to this user."""
    return not config().read_only and request.user.has_perm(ACT)
