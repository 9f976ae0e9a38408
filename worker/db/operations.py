"""``RunAsync``: a data migration whose functions are ``async def``.

    from worker.db.operations import RunAsync

    async def prices_in_units(apps, schema_editor):
        Item = apps.get_model("shop", "Item")
        db = schema_editor.connection.alias
        async for item in Item.objects.using(db).filter(price__gt=0):
            ...

    class Migration(migrations.Migration):
        operations = [RunAsync(prices_in_units, RunAsync.noop)]

As RunPython does, it runs inside the migration's transaction on a database with
transactional DDL (PostgreSQL, SQLite), and the async ORM inside it uses the migration's own
connection: a failure rolls back every write, the schema changes of the same migration
included.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from django.db import router
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations import RunPython
from django.db.migrations.state import ProjectState

__all__ = ["RunAsync"]

Code = Callable[[Any, BaseDatabaseSchemaEditor], Any]


class RunAsync(RunPython):
    """RunPython for ``async def forwards(apps, schema_editor)`` (and ``backwards``); a
    plain function (``RunAsync.noop``) is called as RunPython calls it. Same arguments as
    RunPython."""

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        from_state.clear_delayed_apps_cache()  # as RunPython: every model loaded
        if router.allow_migrate(schema_editor.connection.alias, app_label, **self.hints):
            _call(self.code, from_state.apps, schema_editor)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if self.reverse_code is None:
            raise NotImplementedError("You cannot reverse this operation")
        if router.allow_migrate(schema_editor.connection.alias, app_label, **self.hints):
            _call(self.reverse_code, from_state.apps, schema_editor)

    def describe(self) -> str:
        return "Raw async Python operation"


def _call(code: Code, apps: Any, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if not inspect.iscoroutinefunction(code):
        code(apps, schema_editor)
        return
    # From a thread without an event loop, asgiref runs the coroutine on a loop of its own
    # and sends its sync_to_async calls (the async ORM) back to this thread: to the
    # connection, and the transaction, the migration runs in.
    async_to_sync(code)(apps, schema_editor)
