import uuid
from typing import Any

from django.db import models


def customer_key(name: str) -> str:
    """A customer's name as lookups compare it: spaces collapsed, case folded ("Ada
    LOVELACE" and "ada  lovelace" are one customer). Python's casefold, which SQL's LOWER
    does not match (ß, ﬁ), hence a column filled in Python."""
    return " ".join(name.split()).casefold()


class Order(models.Model):
    """An order mirrored from the external order service; ``external_id`` is its key there."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PAID = "paid"
        SHIPPED = "shipped"
        CANCELLED = "cancelled"

    external_id = models.CharField(max_length=64, unique=True)
    customer = models.CharField(max_length=200)
    # customer_key(customer); null until the backfill of migration 0004 reaches the row.
    customer_key = models.CharField(max_length=200, null=True, db_index=True)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # Set by the notify_new_order job, so whether it ran is visible on the row.
    notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]

    def __str__(self) -> str:
        return self.external_id

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.customer_key = customer_key(self.customer)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "customer" in update_fields:
            kwargs["update_fields"] = {*update_fields, "customer_key"}
        super().save(*args, **kwargs)


class Report(models.Model):
    """A summary of all orders, built once and then delivered to the report webhook."""

    class Status(models.TextChoices):
        PENDING = "pending"  # created, figures not computed yet
        BUILT = "built"  # figures stored, not delivered yet
        DELIVERED = "delivered"
        REJECTED = "rejected"  # the webhook refused it; retrying will not help

    # Sent as the Idempotency-Key header: unique across databases, unlike the pk, so a
    # receiver shared by several deployments cannot mistake one report for another.
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The day a daily report covers (None for one asked for through the API): at most one
    # per day, however many times the periodic job runs.
    day = models.DateField(null=True, blank=True, unique=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    order_count = models.PositiveIntegerField(null=True, blank=True)
    total_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    by_status = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    built_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"report {self.pk} ({self.status})"


class WebhookDelivery(models.Model):
    """A report received by the fake webhook (FAKE_SERVICES), one row per Idempotency-Key."""

    idempotency_key = models.CharField(max_length=200, unique=True)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    # Repeats of the same key are answered, not stored again; counting them shows the
    # sender's retries without inflating the deliveries.
    repeats = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.idempotency_key
