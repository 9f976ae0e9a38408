"""Building a Report from the orders and delivering it to the report webhook, idempotently.

A job may run more than once (a retry after a lost response, a redelivery after a worker
died), so each step is safe to repeat: the figures are computed once and stored, a delivered
report is never sent again, and every delivery carries the report's Idempotency-Key so the
receiver can drop a repeat whose first response never reached us.
"""

from decimal import Decimal
from typing import Any

import httpx
from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from jobs.models import Order, Report
from worker import PermanentFailure

RETRYABLE_4XX = frozenset({408, 425, 429})


class ReportDeliveryRejected(PermanentFailure):
    """The webhook refused the report (a 4xx); sending the same report again will not help."""


class ReportNotFound(PermanentFailure):
    """The job names a report that does not exist (deleted, or never committed)."""


async def order_figures() -> dict[str, Any]:
    """Count and sum of totals over all orders, overall and per status (as JSON-able data)."""
    overall = await Order.objects.aaggregate(count=Count("pk"), total=Sum("total"))
    by_status = {
        row["status"]: {"count": row["count"], "total": _money(row["total"])}
        async for row in Order.objects.order_by()
        .values("status")
        .annotate(count=Count("pk"), total=Sum("total"))
        .order_by("status")
    }
    return {"count": overall["count"], "total": _money(overall["total"]), "by_status": by_status}


async def build(report_id: int) -> Report:
    """The report with its figures, computing and storing them unless a run already did."""
    try:
        report = await Report.objects.aget(pk=report_id)
    except Report.DoesNotExist:
        raise ReportNotFound(f"report {report_id} does not exist") from None
    if report.built_at is None:
        figures = await order_figures()
        # Conditional, so two runs racing each other keep the first figures, the ones that
        # may already be on their way to the webhook.
        await Report.objects.filter(pk=report_id, built_at__isnull=True).aupdate(
            status=Report.Status.BUILT,
            order_count=figures["count"],
            total_amount=Decimal(figures["total"]),
            by_status=figures["by_status"],
            built_at=timezone.now(),
        )
        await report.arefresh_from_db()
    return report


def payload(report: Report) -> dict[str, Any]:
    return {
        "report_id": report.pk,
        "delivery_id": str(report.delivery_id),
        "built_at": report.built_at.isoformat() if report.built_at else None,
        "order_count": report.order_count,
        "total": _money(report.total_amount),
        "by_status": report.by_status,
    }


async def deliver(report: Report, url: str | None = None) -> int:
    """POST the report to the webhook; the status code on success. Transient failures raise
    httpx errors (the engine retries); a refusal raises ReportDeliveryRejected."""
    url = url or settings.REPORT_WEBHOOK_URL
    timeout = float(getattr(settings, "REPORT_WEBHOOK_TIMEOUT", 10.0))
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0))
    ) as client:
        response = await client.post(
            url, json=payload(report), headers={"Idempotency-Key": str(report.delivery_id)}
        )
    if 400 <= response.status_code < 500 and response.status_code not in RETRYABLE_4XX:
        message = (
            f"report webhook answered {response.status_code} {response.reason_phrase} "
            f"for POST {response.url}: {response.text[:200]}"
        )
        await Report.objects.filter(pk=report.pk).aupdate(
            status=Report.Status.REJECTED, error=message
        )
        raise ReportDeliveryRejected(message)
    response.raise_for_status()
    # Conditional: a run racing this one may have recorded its own delivery first.
    await Report.objects.filter(pk=report.pk, delivered_at__isnull=True).aupdate(
        status=Report.Status.DELIVERED, delivered_at=timezone.now(), error=""
    )
    return response.status_code


def _money(value: Decimal | None) -> str:
    # Strings, not floats: JSON numbers would round amounts on the way.
    return str((value or Decimal(0)).quantize(Decimal("0.01")))
