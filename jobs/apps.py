from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Reference jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_save

        from jobs.models import Order
        from jobs.signals import order_created

        # dispatch_uid keeps a second ready() (test runners, reloaders) from doubling the jobs.
        post_save.connect(order_created, sender=Order, dispatch_uid="jobs.order_created")
