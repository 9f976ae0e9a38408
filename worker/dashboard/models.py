"""The dashboard's two permissions, given to staff users or groups in the admin. The model
has no table: it exists to carry them."""

from django.db import models


class Dashboard(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_dashboard", "Can view the tasks dashboard"),
            ("act_dashboard", "Can retry, cancel, delete, pause and stop in the dashboard"),
        ]
