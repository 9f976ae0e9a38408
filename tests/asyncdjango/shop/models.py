from django.db import models


class Item(models.Model):
    """A row the async-Django tests migrate, fix and backfill."""

    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    checked = models.BooleanField(default=False)  # set by migration 0002

    def __str__(self) -> str:
        return self.name
