"""Every Redis command of the backfills' progress (worker/backfill): what ``jobs status``
and ``manage.py backfill`` show. The database holds the truth (which chunk is done, in the
chunk's own transaction); this is its running count, kept right whatever runs twice.

One hash per backfill counts its latest run (a run is a number the database gives, larger
for a later run); a sorted set lists the backfills. The two are written by separate
commands, never one transaction: on Redis Cluster they are in different slots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from worker.protocol.records import now_ms
from worker.protocol.scripts import load

if TYPE_CHECKING:
    from worker.protocol.broker import Broker

PLANNED = load("backfill_planned")
DONE = load("backfill_done")
_FIELDS = ("run", "model", "chunks", "done", "rows", "planned_ms", "finished_ms")


@dataclass(frozen=True, slots=True)
class BackfillState:
    """A backfill's latest run as Redis counts it. ``finished_ms`` is set once every chunk
    of the run is done."""

    name: str
    run: int
    model: str
    chunks: int
    done: int
    rows: int  # rows of the chunks done
    planned_ms: int
    finished_ms: int | None

    @property
    def state(self) -> str:
        return "done" if self.finished_ms is not None else "running"


class Backfills:
    """The progress of the backfills under one prefix."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.keys = broker.keys

    async def planned(self, name: str, run: int, model: str, chunks: int) -> bool:
        """A run's chunks are known: from now on the backfill's progress is this run's (a
        plan run again keeps its count and first time; a run of no chunks, an empty table,
        is done at once). False, and nothing changed, for a run earlier than the one
        counted."""
        loop = self.broker.loop()
        planned_ms = int(
            await loop.fast.run(PLANNED, [self.keys.backfill(name)], [run, model, chunks, now_ms()])
        )
        if planned_ms < 0:
            return False
        await self.broker.aclient().zadd(self.keys.backfills(), {name: planned_ms})
        return True

    async def chunk_done(self, name: str, run: int, first: int, rows: int) -> int:
        """Count a chunk of ``run`` done (once, however often it is said); the chunks done,
        or -1 if the progress counts another run."""
        loop = self.broker.loop()
        return int(
            await loop.fast.run(DONE, [self.keys.backfill(name)], [run, first, rows, now_ms()])
        )

    def forget(self, name: str, run: int) -> None:
        """Drop the progress of ``run`` (a migration that started it was reversed), unless
        a later run's is counted."""
        client = self.broker.sync
        key = self.keys.backfill(name)
        if client.hget(key, "run") == str(run).encode():
            client.delete(key)
            client.zrem(self.keys.backfills(), name)

    def states(self) -> list[BackfillState]:
        """Every backfill planned, by when its latest run was planned."""
        client = self.broker.sync
        names = [
            n.decode() for n in cast("list[bytes]", client.zrange(self.keys.backfills(), 0, -1))
        ]
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hmget(self.keys.backfill(name), _FIELDS)
            replies = pipe.execute()
        return [_state(name, values) for name, values in zip(names, replies, strict=True)]

    def state(self, name: str) -> BackfillState | None:
        values = cast(
            "list[bytes | None]", self.broker.sync.hmget(self.keys.backfill(name), _FIELDS)
        )
        return None if values[0] is None else _state(name, values)


def _state(name: str, values: list[bytes | None]) -> BackfillState:
    run, model, chunks, done, rows, planned, finished = values
    return BackfillState(
        name=name,
        run=int(run or 0),
        model=model.decode() if model else "?",
        chunks=int(chunks or 0),
        done=int(done or 0),
        rows=int(rows or 0),
        planned_ms=int(planned or 0),
        finished_ms=int(finished) if finished else None,
    )
