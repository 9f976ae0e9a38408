"""``@backfill(Model)``: the functions a backfill may run, registered by name as an app's
tasks module is imported, as tasks are: a job names a backfill, never a module to import."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models, router

Function = Callable[[models.QuerySet[Any]], Any]

_registry: dict[str, Backfill] = {}


@dataclass(frozen=True, slots=True)
class Backfill:
    """A declared backfill: ``function`` gets the rows of one chunk (a QuerySet of
    ``model``, primary keys ``first`` to ``last``) and may return how many it processed."""

    name: str  # the function's module path
    function: Function
    model: type[models.Model]
    chunk_size: int
    queue: str | None  # None: the task's (the backend's default queue)

    @property
    def label(self) -> str:
        return self.model._meta.label

    @property
    def database(self) -> str:
        """Where the chunks run: the model's database for writes (the chunk table must be
        migrated there too, for a chunk's rows and its mark to share a transaction)."""
        return router.db_for_write(self.model) or "default"

    def rows(self, first: int, last: int) -> models.QuerySet[Any]:
        rows = self.model._default_manager.using(self.database)
        return rows.filter(pk__gte=first, pk__lte=last).order_by("pk")


def backfill(
    model: type[models.Model], *, chunk_size: int = 1000, queue: str | None = None
) -> Callable[[Function], Function]:
    """Declare ``function`` (sync or ``async def``) a backfill of ``model``'s rows, in
    chunks of ``chunk_size`` rows, its jobs on ``queue``. Registered under its
    module path, the name ``RunBackfill`` and ``manage.py backfill`` take."""
    if not (isinstance(model, type) and issubclass(model, models.Model)):
        raise TypeError(f"@backfill takes a model class, not {model!r}")
    if not isinstance(model._meta.pk, models.IntegerField):
        raise TypeError(
            f"@backfill({model._meta.label}): chunks are ranges of an integer primary key, "
            f"and {model._meta.label}'s is a {type(model._meta.pk).__name__}"
        )
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"@backfill chunk_size must be a whole number >= 1, not {chunk_size!r}")

    def register(function: Function) -> Function:
        name = f"{function.__module__}.{function.__qualname__}"
        _registry[name] = Backfill(name, function, model, chunk_size, queue)
        return function

    return register


def lookup(name: str) -> Backfill:
    """The backfill declared as ``name``; LookupError naming the close ones if none."""
    found = _registry.get(name)
    if found is not None:
        return found
    close = difflib.get_close_matches(name, list(_registry), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise LookupError(
        f"no backfill {name!r} is declared in this project (decorate a function of an "
        f"installed app's tasks module with @backfill(Model)){hint}"
    )


def declared() -> list[Backfill]:
    return sorted(_registry.values(), key=lambda b: b.name)
