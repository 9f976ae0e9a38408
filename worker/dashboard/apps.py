from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "worker.dashboard"
    label = "worker_dashboard"
    verbose_name = "Tasks dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from worker.dashboard import checks  # noqa: F401 - registers the dashboard's checks
