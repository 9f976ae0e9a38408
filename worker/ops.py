"""Operations on the queues from Python (and the ops CLI): dead letters to list, inspect and
send back. Synchronous, on the backend's sync client."""

from __future__ import annotations

from collections.abc import Callable

from django.tasks import task_backends

from worker import scripts
from worker.backend import RedisBackend
from worker.results import JobRecord
from worker.task import lookup


class Ops:
    def __init__(self, backend: RedisBackend | None = None) -> None:
        self.backend = backend or task_backends["default"]
        self.client = self.backend.client()
        self.keys = self.backend.keys
        self._retry = self.client.register_script(scripts.RETRY)

    def job(self, job_id: str) -> JobRecord:
        """A job in any state; TaskResultDoesNotExist if there is none."""
        return JobRecord.from_hash(job_id, self.client.hgetall(self.keys.job(job_id)))

    def _records(self, ids: list[bytes]) -> list[JobRecord]:
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id.decode()))
            hashes = pipe.execute()
        return [
            JobRecord.from_hash(job_id.decode(), fields)
            for job_id, fields in zip(ids, hashes, strict=True)
            if fields
        ]

    def dead(self, queue: str, limit: int = 50, offset: int = 0) -> list[JobRecord]:
        """Dead letters of ``queue``, newest first, each with every attempt's error."""
        ids = self.client.zrevrange(self.keys.dead(queue), offset, offset + limit - 1)
        return self._records(ids)

    def dead_count(self, queue: str) -> int:
        return self.client.zcard(self.keys.dead(queue))

    def retry(self, *job_ids: str) -> int:
        """Send dead-lettered jobs back to their queues with a fresh set of attempts (their
        task's max_attempts). Returns how many went back; ids that are not dead are skipped."""
        by_queue: dict[str, list[str]] = {}
        for job_id in job_ids:
            by_queue.setdefault(job_id.partition(":")[0], []).append(job_id)
        sent = 0
        for queue, ids in by_queue.items():
            sent += self._send_back(queue, self._records([i.encode() for i in ids]))
        return sent

    def retry_dead(
        self,
        queue: str,
        task: str | None = None,
        batch: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Send back every dead letter of ``queue`` (of one task path, if given), oldest
        first, in batches of ``batch``; ``progress`` gets each batch's size."""
        sent = skipped = 0
        # Letters sent back leave the set; those skipped stay in front, so step over them.
        while ids := self.client.zrange(self.keys.dead(queue), skipped, skipped + batch - 1):
            records = self._records(ids)
            done = self._send_back(
                queue, [r for r in records if task is None or r.task_path == task]
            )
            sent += done
            skipped += len(ids) - done
            if progress:
                progress(len(ids))
        return sent

    def _send_back(self, queue: str, records: list[JobRecord]) -> int:
        if not records:
            return 0
        args: list[object] = [self.keys.job_prefix(queue)]
        for record in records:
            task = lookup(record.task_path) if record.task_path else None
            args += (record.id, task.max_attempts if task else 1)
        keys = [self.keys.dead(queue), self.keys.ready(queue), self.keys.notify(queue)]
        return int(self._retry(keys, args))
