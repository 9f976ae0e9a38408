from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class WorkerConfig(AppConfig):
    name = "worker"
    verbose_name = "Task worker"

    def ready(self) -> None:
        from worker import checks  # noqa: F401 - registers the deploy checks of Redis

        # The registry must know every task before a worker reads a message or a result is
        # read back: import each installed app's ``tasks`` module (named by settings, never
        # by a message).
        autodiscover_modules("tasks")
