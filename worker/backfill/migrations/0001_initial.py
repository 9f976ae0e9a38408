import django.db.models.deletion
from django.apps import apps
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    # A migration that starts a backfill depends on this one. With the transactional outbox
    # installed, its enqueue is a row of worker_outbox's table, which must exist by then.
    dependencies = [("worker_outbox", "0001_initial")] if apps.is_installed("worker.outbox") else []

    operations = [
        migrations.CreateModel(
            name="BackfillRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(db_index=True, max_length=200)),
                ("created_at", models.DateTimeField()),
                ("planned_at", models.DateTimeField(null=True)),
            ],
        ),
        migrations.CreateModel(
            name="BackfillChunk",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("first", models.BigIntegerField()),
                ("last", models.BigIntegerField()),
                ("rows", models.BigIntegerField(null=True)),
                ("done_at", models.DateTimeField(null=True)),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="chunks",
                        to="worker_backfill.backfillrun",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("run", "first"), name="worker_backfill_chunk")
                ],
            },
        ),
    ]
