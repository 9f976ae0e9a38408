"""The backfills' runs and their chunks, in the database the rows are in: a chunk is marked
done in the same transaction as the chunk's own writes."""

from __future__ import annotations

from django.db import models


class BackfillRun(models.Model):
    """One run of a backfill: made by its migration each time the migration is applied (a
    migration reversed and applied again runs the backfill again), or by ``manage.py
    backfill NAME --start`` when there is none. The latest run of a name is the one that
    runs: the jobs of an earlier one stop."""

    name = models.CharField(max_length=200, db_index=True)  # its function's module path
    created_at = models.DateTimeField()
    planned_at = models.DateTimeField(null=True)  # when its chunks were made, once

    def __str__(self) -> str:
        return f"{self.name} (run {self.pk})"


class BackfillChunk(models.Model):
    """The rows of a run whose primary keys are ``first``..``last`` (both included)."""

    run = models.ForeignKey(BackfillRun, models.CASCADE, related_name="chunks")
    first = models.BigIntegerField()
    last = models.BigIntegerField()
    rows = models.BigIntegerField(null=True)  # what the function processed, once done
    done_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "first"], name="worker_backfill_chunk")
        ]

    def __str__(self) -> str:
        return f"{self.run} [{self.first}, {self.last}]"
