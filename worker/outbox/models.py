"""One row per job enqueued in a transaction and not yet in Redis."""

from __future__ import annotations

from django.db import models

from worker.protocol.records import NewJob


class OutboxJob(models.Model):
    """A job as its enqueue made it (worker.protocol.records.NewJob), column for column:
    Redis receives exactly the job the caller's result names."""

    backend = models.CharField(max_length=100)  # the TASKS alias whose Redis it goes to
    job_id = models.CharField(max_length=128, unique=True)  # queue:27 hex digits
    queue = models.CharField(max_length=100)
    body = models.BinaryField()  # the JSON message
    priority = models.IntegerField()
    max_attempts = models.IntegerField()
    run_after_ms = models.BigIntegerField(null=True)
    enqueued_ms = models.BigIntegerField()
    unique_key = models.TextField(null=True)
    unique_ms = models.BigIntegerField(null=True)
    limit = models.TextField(null=True)

    class Meta:
        indexes = [models.Index(fields=["backend", "id"], name="worker_outbox_backend_id")]

    def __str__(self) -> str:
        return f"{self.job_id} ({self.queue})"

    @classmethod
    def of(cls, alias: str, job: NewJob) -> OutboxJob:
        unique_key, unique_ms = job.unique if job.unique is not None else (None, None)
        return cls(
            backend=alias,
            job_id=job.id,
            queue=job.queue,
            body=job.body,
            priority=job.priority,
            max_attempts=job.max_attempts,
            run_after_ms=job.run_after_ms,
            enqueued_ms=job.enqueued_ms,
            unique_key=unique_key,
            unique_ms=unique_ms,
            limit=job.limit,
        )

    def job(self) -> NewJob:
        unique = None
        if self.unique_key is not None and self.unique_ms is not None:
            unique = (self.unique_key, self.unique_ms)
        return NewJob(
            id=self.job_id,
            queue=self.queue,
            body=bytes(self.body),
            priority=self.priority,
            max_attempts=self.max_attempts,
            run_after_ms=self.run_after_ms,
            enqueued_ms=self.enqueued_ms,
            unique=unique,
            limit=self.limit,
        )
