"""Workflows' and batches' side of the protocol: starting one in one atomic call, stopping
it, adding jobs to a batch and closing it, and reading where it stands
(lua/workflow.lua holds the bookkeeping that runs when a step ends)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from redis.crc import key_slot

from worker.protocol import cluster
from worker.protocol.enqueue import CHUNK, job_fields
from worker.protocol.queue import HISTORY
from worker.protocol.records import NewJob
from worker.protocol.scripts import BATCH, PROGRESS, STAGE, START, STOP, Lua

if TYPE_CHECKING:
    from worker.protocol.broker import Broker


# How long the first steps of a large workflow, written ahead of its START, wait for it
# (ms): a workflow whose enqueue broke off leaves them for no longer.
STAGED_MS = 3600 * 1000


class NewStep(NamedTuple):
    """A step of a new workflow: its job, and where it stands in the graph (steps
    numbered from 1, in the order given)."""

    job: NewJob | None  # None: a join (lua/workflow.lua), which has none
    waits: int  # how many steps it waits for
    after: tuple[int, ...]  # the steps that wait for it
    takes: str  # what it takes of those before it (lua/workflow.lua's input()); "": nothing
    continues: bool  # its failure does not stop the workflow
    kept: bool  # a step takes its return value


class NewWorkflow(NamedTuple):
    id: str
    kind: str  # "w": a graph of steps; "b": a batch (its steps: its callbacks)
    keep_ms: int  # how long it is kept once ended, and its cancelled steps' records
    cancelled_error: bytes  # the error a step its workflow cancels records
    steps: list[NewStep]
    on_success: int | None = None  # a batch's callbacks, by step number
    on_complete: int | None = None


class WorkflowState(NamedTuple):
    """A workflow or batch as Redis holds it."""

    id: str
    kind: str
    status: str  # R, S, F or C
    steps: list[tuple[str, str | None]]  # each step's job id, and how it ended (S, F, C)
    ends: list[str]  # the job ids of its last steps (a batch: its callbacks)
    ended: int  # steps (a batch: jobs) ended
    failed: int  # of those, the ones that did not succeed
    jobs: int | None  # a batch: jobs added
    closed: bool  # a batch: closed
    ended_ms: int | None


class Workflows:
    """The Redis I/O of workflows and batches, for every queue their steps use."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.keys = broker.keys

    def _calls(self, flow: NewWorkflow) -> list[tuple[Lua, list[str], list[Any]]]:
        """The script calls that write ``flow``: STAGE per CHUNK of its first steps, then
        START with the rest (lua/start.lua), each a short call."""
        self._one_slot(flow.id, [s.job for s in flow.steps if s.job is not None])
        keys = [self.keys.workflow(flow.id)]
        staged = max(0, len(flow.steps) - CHUNK)
        calls: list[tuple[Lua, list[str], list[Any]]] = []
        for first in range(0, staged, CHUNK):
            args: list[Any] = [self.keys.prefix, flow.id, STAGED_MS, first + 1]
            calls.append(
                (STAGE, keys, args + _steps(flow.steps[first : min(first + CHUNK, staged)]))
            )
        joins = sum(1 for s in flow.steps if s.job is None)
        args = [self.keys.prefix, flow.kind, flow.id, flow.keep_ms, HISTORY, flow.cancelled_error]
        args += [len(flow.steps), _or_empty(flow.on_success), _or_empty(flow.on_complete)]
        args += [staged, joins, *_steps(flow.steps[staged:])]
        calls.append((START, keys, args))
        return calls

    def start(self, flow: NewWorkflow) -> None:
        for script, keys, args in self._calls(flow):
            script.run_sync(self.broker.sync, keys, args)

    async def astart(self, flow: NewWorkflow) -> None:
        fast = self.broker.loop().fast
        for script, keys, args in self._calls(flow):
            await fast.run(script, keys, args)

    def stop(self, workflow_id: str) -> str:
        """Cancel it: 'cancelled', 'missing', or the status (S, F, C) it ended with."""
        return _text(STOP.run_sync(self.broker.sync, [self.keys.workflow(workflow_id)], []))

    async def astop(self, workflow_id: str) -> str:
        fast = self.broker.loop().fast
        return _text(await fast.run(STOP, [self.keys.workflow(workflow_id)], []))

    def _one_slot(self, workflow_id: str, jobs: list[NewJob]) -> None:
        """On a Redis Cluster, a workflow's scripts write every step's queue from the
        workflow's own slot: ValueError naming the queues unless all share that slot."""
        if not cluster.names_cluster(self.broker.url):
            return
        home = workflow_id.partition(":")[0]
        slot = key_slot(home.encode())
        apart = sorted({j.queue for j in jobs if key_slot(j.queue.encode()) != slot})
        if apart:
            raise ValueError(
                f"on a Redis Cluster, every step of a workflow or batch must be on a queue of "
                f"the slot of its first queue {home!r}; {', '.join(map(repr, apart))} "
                "hash to other slots: put its steps on one queue (docs/redis.md#cluster)"
            )

    def _batch_arguments(self, batch_id: str, jobs: list[NewJob]) -> tuple[list[str], list[Any]]:
        self._one_slot(batch_id, jobs)
        args: list[Any] = ["add"]
        for job in jobs:
            args += job_fields(job)
        return [self.keys.workflow(batch_id)], args

    def add(self, batch_id: str, jobs: list[NewJob]) -> int:
        """Store jobs in an open batch; how many it holds. A ResponseError names why it
        cannot (no such batch, the batch has ended)."""
        return int(BATCH.run_sync(self.broker.sync, *self._batch_arguments(batch_id, jobs)))

    async def aadd(self, batch_id: str, jobs: list[NewJob]) -> int:
        fast = self.broker.loop().fast
        return int(await fast.run(BATCH, *self._batch_arguments(batch_id, jobs)))

    def close(self, batch_id: str) -> int:
        return int(BATCH.run_sync(self.broker.sync, [self.keys.workflow(batch_id)], ["close"]))

    async def aclose(self, batch_id: str) -> int:
        fast = self.broker.loop().fast
        return int(await fast.run(BATCH, [self.keys.workflow(batch_id)], ["close"]))

    def read(self, workflow_id: str) -> WorkflowState | None:
        key = self.keys.workflow(workflow_id)
        return _state(workflow_id, PROGRESS.run_sync(self.broker.sync, [key], []))

    async def aread(self, workflow_id: str) -> WorkflowState | None:
        key = self.keys.workflow(workflow_id)
        return _state(workflow_id, await self.broker.loop().fast.run(PROGRESS, [key], []))


def _steps(steps: list[NewStep]) -> list[Any]:
    """11 ARGV per step, as START and STAGE take them."""
    args: list[Any] = []
    for s in steps:
        if (j := s.job) is None:
            args += ("", "", "", "", "", "")
        else:
            args += (j.id, j.body, j.priority, j.max_attempts, _or_empty(j.run_after_ms))
            args += (j.limit or "",)
        args += (s.waits, " ".join(map(str, s.after)), s.takes)
        args += ("1" if s.continues else "", "1" if s.kept else "")
    return args


def _or_empty(value: int | None) -> int | str:
    return "" if value is None else value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _state(workflow_id: str, reply: list[Any] | None) -> WorkflowState | None:
    """What PROGRESS read (lua/progress.lua)."""
    if not reply:
        return None
    status, kind, _, ended, failed, jobs, closed, ended_ms, rows = reply
    steps = [(_text(row[0]), _text(row[1]) if row[1] else None) for row in rows]
    return WorkflowState(
        id=workflow_id,
        kind=_text(kind),
        status=_text(status),
        steps=steps,
        ends=[_text(row[0]) for row in rows if row[2] == 1],
        ended=int(ended or 0),
        failed=int(failed or 0),
        jobs=int(jobs) if jobs is not None else None,
        closed=closed is not None,
        ended_ms=int(ended_ms) if ended_ms is not None else None,
    )
