from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "tests.asyncdjango.shop"
    label = "shop"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tests.asyncdjango.shop import backfills  # noqa: F401 - registers add_one
