"""Order.customer_key, and its backfill (worker.backfill): the migration adds the column
and only enqueues the work; the workers fill it in, a thousand orders per job, while the
site runs on. New orders get it as they are saved (Order.save, sync_orders)."""

from django.db import migrations, models

from worker.backfill.operations import RunBackfill


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0003_strip_customer_names"),
        ("worker_backfill", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="order",
            name="customer_key",
            field=models.CharField(db_index=True, max_length=200, null=True),
        ),
        RunBackfill("jobs.tasks.fill_customer_keys"),
    ]
