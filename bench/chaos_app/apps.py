from django.apps import AppConfig


class ChaosConfig(AppConfig):
    name = "bench.chaos_app"
    label = "chaos_app"

    def ready(self) -> None:
        from bench.chaos_app import receivers

        receivers.connect()
