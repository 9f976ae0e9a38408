"""``RunBackfill(name)``: the migration operation that starts a backfill. Each time the
migration is applied it makes a new run of the backfill and enqueues the run's plan job, in
the migration's transaction (sent if the migration commits; in the same transaction with
the outbox), so a deploy never waits for the rows. Reversed, it drops its run: the jobs
still queued for it stop, and the migration applied again runs the backfill again."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import router, transaction
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState
from django.utils import timezone

from worker.backfill.registry import lookup
from worker.protocol.backfills import Backfills

__all__ = ["RunBackfill"]


class RunBackfill(Operation):
    """Start a new run of the backfill declared as ``name`` (``@backfill``'s function's
    module path) on ``migrate``; backwards, drop that run (the rows it filled stay as they
    are). The function must stay declared as long as a migration has the operation, as
    RunPython's function must: a fresh ``migrate`` runs it."""

    reversible = True
    reduces_to_sql = False

    def __init__(self, name: str, hints: dict[str, Any] | None = None) -> None:
        if not isinstance(name, str):
            raise TypeError(
                f"RunBackfill takes the backfill's name (its function's module path, "
                f"'app.tasks.function'), not {name!r}"
            )
        self.name = name
        self.hints = hints or {}

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {"hints": self.hints} if self.hints else {}
        return (self.__class__.__qualname__, [self.name], kwargs)

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        pass  # no schema of its own

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        from worker.backfill.tasks import plan_backfill

        alias = schema_editor.connection.alias
        if not router.allow_migrate(alias, app_label, **self.hints):
            return
        try:
            spec = lookup(self.name)
        except LookupError as e:
            raise LookupError(
                f"{e}. A migration's RunBackfill needs its function for as long as the "
                "migration has the operation (a fresh migrate runs it): once every database "
                "has run it, delete the operation from the migration rather than the function"
            ) from None
        run = self._runs(to_state, alias).create(name=self.name, created_at=timezone.now())
        # Even for an empty table: the plan job counts a run of no chunks done, which
        # `manage.py backfill NAME --wait` waits for.
        plan = plan_backfill.using(queue_name=spec.queue) if spec.queue else plan_backfill
        plan.enqueue(self.name, run.pk)

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        from worker.backfill.tasks import plan_backfill

        alias = schema_editor.connection.alias
        if not router.allow_migrate(alias, app_label, **self.hints):
            return
        # Migrations are reversed latest first: this migration's run is the latest.
        run = self._runs(from_state, alias).filter(name=self.name).order_by("-pk").first()
        if run is None:
            return
        progress = Backfills(plan_backfill.get_backend().broker)  # type: ignore[attr-defined]
        # Once the rollback of the schema is committed; a Redis down only leaves the count
        # shown until the next run replaces it (robust: logged, never raised).
        transaction.on_commit(partial(progress.forget, self.name, run.pk), using=alias, robust=True)
        run.delete()  # with its chunks: its queued jobs find nothing to do

    def _runs(self, state: ProjectState, alias: str) -> Any:
        try:
            model = state.apps.get_model("worker_backfill", "BackfillRun")
        except LookupError:
            raise LookupError(
                f"RunBackfill({self.name!r}) needs worker.backfill's table: add "
                "('worker_backfill', '0001_initial') to the migration's dependencies, and "
                "'worker.backfill' to INSTALLED_APPS"
            ) from None
        return model._default_manager.using(alias)

    def describe(self) -> str:
        return f"Start the backfill {self.name}"

    @property
    def migration_name_fragment(self) -> str:
        return f"backfill_{self.name.rpartition('.')[2]}"
