from django.apps import AppConfig


class BackfillConfig(AppConfig):
    name = "worker.backfill"
    label = "worker_backfill"
    verbose_name = "Background backfills"
    default_auto_field = "django.db.models.BigAutoField"
