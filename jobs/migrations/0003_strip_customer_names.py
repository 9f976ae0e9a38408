"""A data fix: customer names were stored as the order service sent them, surrounding
spaces included ("Ada Lovelace " and "Ada Lovelace" counted as two customers). The sync
strips them now (order_service._parse_page); this strips those already stored. An async
data migration (worker.db.operations.RunAsync): its ORM calls run in the migration's
transaction, so a failure leaves every name as it was."""

from django.db import migrations

from worker.db.operations import RunAsync


async def strip_customer_names(apps, schema_editor) -> None:
    Order = apps.get_model("jobs", "Order")
    orders = Order.objects.using(schema_editor.connection.alias)
    padded = orders.filter(customer__regex=r"^\s|\s$").only("pk", "customer")
    async for order in padded.order_by("pk"):
        await orders.filter(pk=order.pk).aupdate(customer=order.customer.strip())


class Migration(migrations.Migration):
    dependencies = [("jobs", "0002_report_day")]

    # Backwards: the spaces are not worth restoring.
    operations = [RunAsync(strip_customer_names, RunAsync.noop)]
