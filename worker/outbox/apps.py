from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "worker.outbox"
    label = "worker_outbox"
    verbose_name = "Jobs waiting for Redis"
    default_auto_field = "django.db.models.BigAutoField"
