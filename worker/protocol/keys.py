"""Key names and job ids: the layout of everything the engine stores in Redis.

Every key of queue Q carries the hash tag {Q}, so one queue lives in one Redis Cluster slot
and every script touches one slot only. A job id names its queue, so a job is found from its
id alone.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterable

_sequence = itertools.count()


def new_job_id(queue: str, ms: int | None = None) -> str:
    """An id for a job of ``queue`` enqueued at ``ms`` (epoch milliseconds; default now)."""
    # Ids sort by enqueue time, then by a per-process sequence: jobs enqueued in one
    # millisecond (same score in the ready set) still run first in, first out.
    if ms is None:
        ms = int(time.time() * 1000)
    seq = next(_sequence) & 0xFFFF
    # 11 hex digits of ms, 4 of sequence, 12 random: one number formatted once.
    return f"{queue}:{ms << 64 | seq << 48 | random.getrandbits(48):027x}"


def enqueued_ms_of(job_id: str) -> int:
    """When a job was enqueued (epoch ms), read from its id: the job hash does not repeat it."""
    return int(job_id[job_id.index(":") + 1 :][:-16], 16)


_HEX = frozenset("0123456789abcdef")


def queue_of(job_id: str) -> str:
    """The queue a job id belongs to; ValueError if it is not shaped like a job id (a
    token of another shape could name one of the queue's own keys)."""
    queue, sep, token = job_id.partition(":")
    if not sep or not queue or len(token) != 27 or not _HEX.issuperset(token):
        raise ValueError(f"{job_id!r} is not a job id (expected '<queue>:<27 hex digits>')")
    return queue


def by_queue(job_ids: Iterable[str]) -> dict[str, list[str]]:
    """Job ids grouped by their queue, in order (what one queue's script call takes)."""
    grouped: dict[str, list[str]] = {}
    for job_id in job_ids:
        grouped.setdefault(queue_of(job_id), []).append(job_id)
    return grouped


class Keys:
    """Every key name under one prefix (the backend's ``prefix`` option)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def queue(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}"

    def job_prefix(self, queue: str) -> str:
        """What a job's key starts with: its queue's keys' (lua/job.lua adds the id's token)."""
        return f"{self.queue(queue)}:"

    def job(self, job_id: str) -> str:
        """A job's hash: ``P:{Q}:<token>`` for the id ``Q:<token>``."""
        return self.job_prefix(queue_of(job_id)) + job_id.partition(":")[2]

    def jobs_glob(self, queue: str) -> str:
        """A SCAN pattern for the job hashes of ``queue`` (tokens are 27 hex digits)."""
        return self.glob(f"{{{queue}}}:" + "[0-9a-f]" * 27)

    def legacy_job(self, job_id: str) -> str:
        """Where the previous protocol (0.1) kept a job's hash."""
        return f"{self.job_prefix(queue_of(job_id))}job:{job_id}"

    def ready(self, queue: str) -> str:
        """The list of ready jobs of priority 0; those of priority p wait in ``ready:p``."""
        return f"{self.queue(queue)}:queued"

    def priorities(self, queue: str) -> str:
        """The priorities other than 0 whose lists may hold jobs: member p, score -p."""
        return f"{self.queue(queue)}:priorities"

    def delayed(self, queue: str) -> str:
        return f"{self.queue(queue)}:later"

    def dead(self, queue: str) -> str:
        return f"{self.queue(queue)}:dead"

    def stats(self, queue: str) -> str:
        return f"{self.queue(queue)}:stats"

    def done(self, queue: str) -> str:
        return f"{self.queue(queue)}:finished"

    def notify(self, queue: str) -> str:
        return f"{self.queue(queue)}:notify"

    def workers(self, queue: str) -> str:
        return f"{self.queue(queue)}:workers"

    def wip(self, queue: str, worker_id: str) -> str:
        """One worker's leases in a queue: job id -> the attempt it holds."""
        return f"{self.queue(queue)}:leases:{worker_id}"

    def legacy(self, queue: str, name: str) -> str:
        """A key of the previous protocol (0.1) that this one drains or reads: ready,
        delayed (sorted sets of jobs it enqueued), wip:<worker>, done."""
        return f"{self.queue(queue)}:{name}"

    def periodic(self, queue: str) -> str:
        return f"{self.queue(queue)}:periodic"

    def periodic_paused(self, queue: str) -> str:
        """The queue's paused periodic schedules: name -> when paused (ms)."""
        return f"{self.queue(queue)}:periodic:paused"

    def periodic_runs(self, queue: str, name: str) -> str:
        """The ids of a schedule's latest jobs, newest first."""
        return f"{self.queue(queue)}:periodic:runs:{name}"

    def paused(self, queue: str) -> str:
        """Present while an operator has paused the queue: FETCH leases nothing from it."""
        return f"{self.queue(queue)}:paused"

    def resumed(self, queue: str) -> str:
        """Wake-up tokens for the workers that wait while the queue is paused (they do not
        wait on ``notify`` then: every enqueue leaves a token there): a resume leaves them."""
        return f"{self.queue(queue)}:resumed"

    def cancelled(self, queue: str) -> str:
        """The ids of the latest cancelled jobs, newest first (lua/cancel.lua and ack.lua
        name it from the job key prefix: keep the two in step)."""
        return f"{self.queue(queue)}:cancelled"

    def waited(self, queue: str) -> str:
        """The ids of the queue's jobs some process waits for (lua/tell.lua names it from
        the job key prefix: keep the two in step)."""
        return f"{self.queue(queue)}:waited"

    def events(self, queue: str) -> str:
        """The pub/sub channel on which the processes waiting for a job of the queue hear
        of its progress and its end (lua/tell.lua)."""
        return f"{self.queue(queue)}:events"

    def steps(self, queue: str) -> str:
        """The queue's jobs that belong to a running workflow or batch: id -> "<its
        workflow's key> <step>" (lua/workflow.lua names it from the job key prefix)."""
        return f"{self.queue(queue)}:steps"

    def workflow(self, workflow_id: str) -> str:
        """A workflow's or a batch's hash: ``P:{Q}:wf:<token>`` for the id ``Q:<token>``
        (shaped as a job id of its first step's queue)."""
        return f"{self.job_prefix(queue_of(workflow_id))}wf:{workflow_id.partition(':')[2]}"

    def unique(self, queue: str, fingerprint: str) -> str:
        return f"{self.queue(queue)}:unique:{fingerprint}"

    def cancel(self, queue: str) -> str:
        """Cancel requests for running jobs: member = job id, score = when asked, ms."""
        return f"{self.queue(queue)}:cancel"

    # Flow control (protocol/lua/flow.lua): a queue's limits, running counts and gates;
    # per limit group, its held jobs and its latest starts.

    def limits(self, queue: str) -> str:
        return f"{self.queue(queue)}:limits"

    def running(self, queue: str) -> str:
        return f"{self.queue(queue)}:running"

    def gates(self, queue: str) -> str:
        return f"{self.queue(queue)}:gates"

    def held(self, queue: str, group: str) -> str:
        return f"{self.queue(queue)}:held:{group}"

    def starts(self, queue: str, group: str) -> str:
        return f"{self.queue(queue)}:starts:{group}"

    def heartbeat(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    def order(self, worker_id: str) -> str:
        """An operator's order to one worker ("quiet" or "stop"), taken by the worker."""
        return f"{self.prefix}:order:{worker_id}"

    def history(self, name: str) -> str:
        """A bucket of the figures workers write (protocol/history.py): ``name`` says which."""
        return f"{self.prefix}:history:{name}"

    def heartbeats(self) -> str:
        """The workers that heartbeat lately: member = worker id, score = its latest
        heartbeat (ms, Redis's clock): where their heartbeats are found without a SCAN."""
        return f"{self.prefix}:heartbeats"

    def backfill(self, name: str) -> str:
        """A backfill's progress (worker/backfill): a hash of its latest run's totals, and
        a field ``c:<first pk>`` per chunk done. One key: the scripts that plan a run and
        mark a chunk done touch one slot."""
        return f"{self.prefix}:backfill:{name}"

    def backfills(self) -> str:
        """Every backfill planned: member = name, score = when it was planned (ms)."""
        return f"{self.prefix}:backfills"

    def glob(self, rest: str) -> str:
        """A SCAN pattern for keys under this prefix: the prefix glob-escaped, then ``rest``."""
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in self.prefix)
        return f"{escaped}:{rest}"

    def queue_of_key(self, key: str) -> str | None:
        """The queue a queue's own key (not a job's) belongs to, or None."""
        queue, _, rest = key[len(self.prefix) + 2 :].partition("}:")
        return queue if ":" not in rest else None
