"""Prices were stored in cents: divide them by 100 (backwards: multiply), with the async
ORM, in the migration's transaction. With SHOP_MIGRATION_FAILS set, the forwards fails
after writing every row (and after a schema change of the same migration)."""

import os

from asgiref.sync import sync_to_async
from django.db import connections, migrations, models
from django.db.models import F

from worker.db.operations import RunAsync


async def on_the_migrations_connection(schema_editor) -> None:
    alias = schema_editor.connection.alias

    def check() -> None:
        if connections[alias] is not schema_editor.connection:
            raise AssertionError("the async ORM is not on the migration's connection")
        if not schema_editor.connection.in_atomic_block:
            raise AssertionError("not inside the migration's transaction")

    await sync_to_async(check)()


async def prices_in_units(apps, schema_editor) -> None:
    await on_the_migrations_connection(schema_editor)
    Item = apps.get_model("shop", "Item")
    items = Item.objects.using(schema_editor.connection.alias)
    async for item in items.order_by("pk"):
        item.price = item.price / 100
        item.checked = True  # the field this migration adds
        await item.asave(update_fields=["price", "checked"])
    if os.environ.get("SHOP_MIGRATION_FAILS"):
        raise RuntimeError(f"failing after fixing {await items.acount()} items")


async def prices_in_cents(apps, schema_editor) -> None:
    await on_the_migrations_connection(schema_editor)
    Item = apps.get_model("shop", "Item")
    await Item.objects.using(schema_editor.connection.alias).aupdate(price=F("price") * 100)


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [
        migrations.AddField("item", "checked", models.BooleanField(default=False)),
        RunAsync(prices_in_units, prices_in_cents),
    ]
