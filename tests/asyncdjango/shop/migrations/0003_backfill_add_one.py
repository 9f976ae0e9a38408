from django.db import migrations

from worker.backfill.operations import RunBackfill


class Migration(migrations.Migration):
    dependencies = [("shop", "0002_prices_in_units"), ("worker_backfill", "0001_initial")]

    operations = [RunBackfill("tests.asyncdjango.shop.backfills.add_one")]
