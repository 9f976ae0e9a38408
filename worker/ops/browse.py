"""Jobs by state, queue, task and text, a page at a time, and actions on every job a filter
matches, a batch at a time: what the dashboard's jobs page runs (through ``Ops``).

A page never loads a whole state: it reads the state's ids from a position (the cursor) on,
at most ``budget`` of them, and keeps those that match. A cursor is ``<queue index>.<rank>``
in the filter's queues; ranks are those of ``Queue.ids`` (ready and delayed jobs in the order
they will run, dead, succeeded and cancelled ones newest first). Jobs that move meanwhile
may be shown twice or not at all, as with any cursor over a moving queue.

An action on everything a filter matches must not skip a job so, while workers take jobs
from the heads of the lists: it goes on after the last job it looked at and left in place
(``Queue.after``), not from a position. Its cursor is ``<queue index>.<ids left>.<score>.
<token>``: it looks at no more ids in a queue than the state held when it began there (jobs
that join meanwhile may be left; it ends however fast they come), and goes on after the
job ``<queue>:<token>`` (``-``: from the start), or after its score in a sorted set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from worker.results import JobRecord

if TYPE_CHECKING:
    from worker.ops.api import Ops
    from worker.protocol.queue import Queue

# The states a job can be browsed by, and the set of a queue each reads: "retrying" jobs
# are the delayed ones that failed before, "delayed" those that never ran. "dead" are the
# jobs that failed for good (dead letters).
BROWSE = {
    "ready": "ready",
    "held": "held",
    "running": "running",
    "delayed": "delayed",
    "retrying": "delayed",
    "dead": "dead",
    "succeeded": "successful",
    "cancelled": "cancelled",
}
_NEWEST_FIRST = ("dead", "successful", "cancelled")
# Which states each action applies to.
ACTIONS = {
    "retry": ("dead",),
    "cancel": ("ready", "held", "running", "delayed", "retrying"),
    "delete": ("ready", "held", "delayed", "retrying", "dead", "succeeded", "cancelled"),
}
# Ids read per round trip.
READ = 200
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Which jobs: of one state (BROWSE), of ``queue`` (None: every queue), of ``task`` (its
    module path), whose id or arguments contain ``text`` (case-insensitive)."""

    state: str
    queue: str | None = None
    task: str | None = None
    text: str | None = None

    def __post_init__(self) -> None:
        if self.state not in BROWSE:
            raise ValueError(f"no state {self.state!r} (states: {', '.join(BROWSE)})")

    def matches(self, record: JobRecord) -> bool:
        if self.task and record.task_path != self.task:
            return False
        if self.state in ("delayed", "retrying") and (record.attempts > 0) != (
            self.state == "retrying"
        ):
            return False
        if self.text:
            needle = self.text.lower()
            if needle in record.id.lower():
                return True
            return needle in orjson.dumps([record.args, record.kwargs]).decode().lower()
        return True

    @property
    def narrows(self) -> bool:
        """Whether rows may be left out (so a page may read more ids than it shows)."""
        return bool(self.task or self.text or self.state in ("delayed", "retrying"))


@dataclass(frozen=True, slots=True)
class Page:
    records: list[JobRecord]
    cursor: str | None  # where the next page starts; None: no more
    examined: int  # ids read for this page
    total: int  # ids the state holds in the filter's queues (before task and text)


@dataclass(frozen=True, slots=True)
class Step:
    """One batch of a bulk action."""

    done: int  # jobs the action took effect on
    examined: int
    cursor: str | None  # where the next batch starts; None: finished


def parse_cursor(cursor: str | None) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    index, _, rank = cursor.partition(".")
    if not (index.isdigit() and rank.isdigit()):
        raise ValueError(f"bad cursor {cursor!r} (expected '<queue>.<rank>')")
    return int(index), int(rank)


def _cursor(index: int, rank: int, queues: list[str]) -> str | None:
    return f"{index}.{rank}" if index < len(queues) else None


def _ids(queue: Queue, state: str, start: int, count: int) -> list[str]:
    name = BROWSE[state]
    if name == "running":
        return queue.running_ids()[start : start + count]
    return queue.ids(name, start, start + count - 1, newest_first=name in _NEWEST_FIRST)


def _size(queue: Queue, state: str) -> int:
    name = BROWSE[state]
    if name == "running":
        return len(queue.running_ids())
    return queue.sizes(name)[0]


def _queues(ops: Ops, chosen: JobFilter) -> list[str]:
    return [chosen.queue] if chosen.queue else ops.queues()


def page(
    ops: Ops, chosen: JobFilter, cursor: str | None = None, limit: int = 50, budget: int = 2000
) -> Page:
    """Up to ``limit`` jobs matching ``chosen`` from ``cursor`` on, reading ``budget`` ids
    at most (fewer rows then, and a cursor to go on)."""
    queues = _queues(ops, chosen)
    index, rank = parse_cursor(cursor)
    found: list[JobRecord] = []
    examined = 0
    while index < len(queues) and len(found) < limit and examined < budget:
        queue = ops.broker.queue(queues[index])
        want = min(READ, budget - examined) if chosen.narrows else limit - len(found)
        ids = _ids(queue, chosen.state, rank, want)
        if not ids:
            index, rank = index + 1, 0
            continue
        records = {r.id: r for r in ops.records(ids)}
        for job_id in ids:
            examined += 1
            rank += 1
            record = records.get(job_id)
            if record is not None and chosen.matches(record):
                found.append(record)
                if len(found) >= limit:
                    break
    total = sum(_size(ops.broker.queue(q), chosen.state) for q in queues)
    more = index < len(queues) and (
        rank < _size(ops.broker.queue(queues[index]), chosen.state) or index + 1 < len(queues)
    )
    return Page(found, _cursor(index, rank, queues) if more else None, examined, total)


def act(ops: Ops, action: str, job_ids: list[str], reason: str) -> int:
    """Apply ``action`` (ACTIONS) to jobs by id: how many it took effect on (a job it does
    not apply to, say a retry of a job that is not dead, is left as it is)."""
    if action == "retry":
        return ops.retry(*job_ids)
    if action == "delete":
        return ops.delete(*job_ids)
    if action == "cancel":
        return sum(ops.cancel_quietly(job_id, reason) for job_id in job_ids)
    raise ValueError(f"no action {action!r} (actions: {', '.join(ACTIONS)})")


def step(
    ops: Ops,
    action: str,
    chosen: JobFilter,
    cursor: str | None = None,
    batch: int = 500,
    reason: str = "Cancelled by an operator.",
) -> Step:
    """Apply ``action`` to the next ``batch`` ids the filter's state holds from ``cursor``:
    to those that match. Jobs the action takes out of the state (retried, cancelled,
    deleted) are stepped over in the cursor; call again with the cursor returned until it
    is None."""
    if chosen.state not in ACTIONS.get(action, ()):
        allowed = ", ".join(ACTIONS.get(action, ()))
        raise ValueError(f"cannot {action} {chosen.state} jobs (only: {allowed or 'none'})")
    queues = _queues(ops, chosen)
    at = _Anchor.parse(cursor)
    while at.index < len(queues):
        queue = ops.broker.queue(queues[at.index])
        left = _size(queue, chosen.state) if at.left is None else at.left
        want = min(batch, left)
        rows = _after(queue, chosen.state, at, want) if want > 0 else []
        if not rows:
            at = _Anchor(at.index + 1)
            continue
        matching = {r.id for r in ops.records([i for i, _ in rows]) if chosen.matches(r)}
        done = act(ops, action, list(matching), reason) if matching else 0
        # Go on after the last job looked at: in a sorted set, after its score if it left;
        # in a list, after the last one still in place (one acted on left it; a running
        # one stays where it is, its worker asked to stop it).
        token, score = at.token, at.score
        for job_id, found in reversed(rows):
            if found is not None or chosen.state == "running" or job_id not in matching:
                token, score = job_id.partition(":")[2], found
                break
        left -= len(rows)
        if left <= 0 or len(rows) < want:  # this queue is done
            following = _Anchor(at.index + 1)
        else:
            following = _Anchor(at.index, left, score, token)
        return Step(done, len(rows), following.cursor(len(queues)))
    return Step(0, 0, None)


@dataclass(frozen=True, slots=True)
class _Anchor:
    """Where an action on everything a filter matches goes on (see the module's
    docstring): a queue (by index), ids left to look at there (None: not begun), the job
    to go on after (its token; its score in a sorted set)."""

    index: int
    left: int | None = None
    score: int | None = None
    token: str | None = None

    @classmethod
    def parse(cls, cursor: str | None) -> _Anchor:
        if not cursor:
            return cls(0)
        parts = cursor.split(".")
        if (
            len(parts) != 4
            or not parts[0].isdigit()
            or not all(p == "-" or p.isdigit() for p in parts[1:3])
            or not (parts[3] == "-" or (parts[3] and _HEX.issuperset(parts[3])))
        ):
            raise ValueError(f"bad cursor {cursor!r} (expected '<queue>.<left>.<score>.<id>')")
        left, score = (None if p == "-" else int(p) for p in parts[1:3])
        return cls(int(parts[0]), left, score, None if parts[3] == "-" else parts[3])

    def cursor(self, queues: int) -> str | None:
        if self.index >= queues:
            return None
        parts = (self.index, self.left, self.score, self.token)
        return ".".join("-" if p is None else str(p) for p in parts)


def _after(queue: Queue, state: str, at: _Anchor, count: int) -> list[tuple[str, int | None]]:
    """Up to ``count`` ids of ``state`` after the anchor, each with its score (a sorted
    set's): running jobs by id, the others as ``Queue.after`` orders them."""
    anchor = None if at.token is None else f"{queue.name}:{at.token}"
    name = BROWSE[state]
    if name == "running":
        ids = [i for i in queue.running_ids() if anchor is None or i > anchor]  # by id
        return [(i, None) for i in ids[:count]]
    return queue.after(name, anchor, at.score, count)
