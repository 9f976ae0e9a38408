"""Stand-ins for the external services, so the demo runs offline: an order service and a
report webhook. project/urls.py mounts these under /fake/ only when settings.FAKE_SERVICES."""

import json
from decimal import Decimal
from typing import Any

from django.db.models import F, Sum
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_GET, require_http_methods

from jobs.models import Order, WebhookDelivery

PAGES = 3
PAGE_SIZE = 20


def fake_order(n: int) -> dict[str, Any]:
    """Order number ``n`` (1-based) of the fake service: the same on every call."""
    statuses = Order.Status.values
    return {
        "id": f"ORD-{n:05d}",
        "customer": f"customer-{n % 7:02d}",
        "total": str(Decimal(5 + (n * 7919) % 49500) / 100),
        "status": statuses[n % len(statuses)],
    }


def fake_page(page: int) -> dict[str, Any]:
    first = (page - 1) * PAGE_SIZE + 1
    return {
        "orders": [fake_order(n) for n in range(first, first + PAGE_SIZE)],
        "pages": PAGES,
        "page": page,
    }


@require_GET
async def orders(request: HttpRequest) -> JsonResponse:
    try:
        page = int(request.GET.get("page", "1"))
    except ValueError:
        return JsonResponse({"error": "page must be a whole number"}, status=400)
    if not 1 <= page <= PAGES:
        return JsonResponse({"error": f"no page {page}; pages are 1 to {PAGES}"}, status=404)
    return JsonResponse(fake_page(page))


@require_http_methods(["GET", "POST"])
async def webhook(request: HttpRequest) -> JsonResponse:
    """POST: receive a report, once per Idempotency-Key. GET: what has been received."""
    if request.method == "GET":
        totals = await WebhookDelivery.objects.aaggregate(repeats=Sum("repeats"))
        return JsonResponse(
            {
                "deliveries": await WebhookDelivery.objects.acount(),
                "repeats": totals["repeats"] or 0,
            }
        )
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 200:
        return JsonResponse(
            {"error": "an Idempotency-Key header (1-200 chars) is required"}, status=400
        )
    try:
        body = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": "the body must be JSON"}, status=400)
    delivery, created = await WebhookDelivery.objects.aget_or_create(
        idempotency_key=key, defaults={"payload": body}
    )
    if not created:
        # A repeat (the sender never saw our first answer): acknowledge, do not store again.
        await WebhookDelivery.objects.filter(pk=delivery.pk).aupdate(repeats=F("repeats") + 1)
    return JsonResponse(
        {"id": delivery.pk, "duplicate": not created}, status=201 if created else 200
    )


urlpatterns = [
    path("orders", orders, name="fake-orders"),
    path("webhook", webhook, name="fake-webhook"),
]
