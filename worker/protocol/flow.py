"""One queue's flow-control commands (protocol/lua/flow.lua keeps them in Redis): the limits
workers publish and operators set, and the state of each limit group, for operators.

A limit group is a task's path, or ``path:<JSON key>`` for a task with a ``limit_key``. The
limits hash holds ``code:<path>`` (as the task declares it), ``set:<path>`` and
``set:<group>`` (as an operator set them); the one that applies is the key's setting, else
the task's setting, else the declaration (as FETCH reads them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from worker.limits import Limits
from worker.protocol.scripts import LIMITS, RECOUNT

if TYPE_CHECKING:
    from worker.protocol.queue import Queue

DECLARED, SET = "code:", "set:"


@dataclass(frozen=True, slots=True)
class GroupState:
    """A limit group of one queue as it stands."""

    queue: str
    task: str  # the task's module path
    key: str | None  # the limit key as JSON; None for a task-wide group
    limits: Limits | None  # those that apply; None: none (the jobs run unlimited)
    source: str | None  # where they come from: "declared", "task" or "key" (an operator's)
    running: int  # attempts leased now
    in_window: int | None  # starts in the current window of its rate, if it has one
    held: int  # jobs waiting for a permit
    next_start_ms: int | None  # when its held jobs may start (epoch ms), if a time is known
    waits_for_slot: bool  # its held jobs start when a running one ends (or limits change)


class Flow:
    """The flow-control side of one queue."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        keys = queue.keys
        self._keys = [queue.limits, queue.gates, queue.notify]
        self._held = keys.held(queue.name, "")
        self._starts = keys.starts(queue.name, "")
        self._logs = keys.glob(f"{{{queue.name}}}:starts:*")  # queue names hold no glob

    async def publish(self, declared: dict[str, Limits | None]) -> None:
        """What this worker's code declares, task path -> limits (None: none); held jobs
        of a task whose limits changed may start at once if they now can."""
        argv: list[str] = []
        for path, limits in sorted(declared.items()):
            argv += [DECLARED + path, limits.wire() if limits else ""]
        if argv:
            await self.queue.broker.loop().fast.run(LIMITS, self._keys, argv)

    async def recount(self) -> int:
        """Mend the running counts from the leases (lua/recount.lua); how many groups were
        wrong."""
        queue = self.queue
        keys = [queue.running, queue.workers, queue.gates, queue.notify]
        leases = queue.keys.wip(queue.name, "")
        return int(await queue.broker.loop().fast.run(RECOUNT, keys, [leases]))

    def set(self, scope: str, limits: Limits | None) -> bool:
        """An operator's limits for a task (``scope`` its path) or one key's group; None
        removes the setting (the task's own, or the task-wide setting, applies again).
        Returns whether anything changed."""
        argv = [SET + scope, limits.wire() if limits else ""]
        return bool(LIMITS.run_sync(self.queue.broker.sync, self._keys, argv))

    def settings(self) -> dict[str, Limits]:
        """The limits hash: ``code:<path>`` / ``set:<scope>`` -> limits."""
        found = cast("dict[bytes, bytes]", self.queue.broker.sync.hgetall(self.queue.limits))
        return {k.decode(): Limits.from_wire(v.decode()) for k, v in found.items()}

    def states(self) -> list[GroupState]:
        """Every group with limits, jobs running, held, or starts in a window."""
        client = self.queue.broker.sync
        settings = self.settings()
        with client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.queue.running)
            pipe.zrange(self.queue.gates, 0, -1, withscores=True)
            pipe.time()
            running_raw, gates_raw, (seconds, micros) = pipe.execute()
        now = seconds * 1000 + micros // 1000
        running = {k.decode(): int(v) for k, v in running_raw.items()}
        gates = {k.decode(): float(v) for k, v in gates_raw}
        logged = [
            key.decode()[len(self._starts) :]
            for key in client.scan_iter(match=self._logs, count=1000)
        ]
        groups = set(running) | set(gates) | set(logged)
        groups |= {scope.partition(":")[2] for scope in settings}
        ordered = sorted(groups)
        with client.pipeline(transaction=False) as pipe:
            for g in ordered:
                pipe.llen(self._held + g)
                pipe.lrange(self._starts + g, 0, -1)
            replies = pipe.execute()
        states = []
        for g, held, starts in zip(ordered, replies[::2], replies[1::2], strict=True):
            limits, source = applying(settings, g)
            in_window = None
            if limits is not None and limits.rate is not None:
                since = now - limits.rate.window_ms
                in_window = sum(int(t) > since for t in starts)
            task, _, key = g.partition(":")
            gate = gates.get(g) if held else None
            states.append(
                GroupState(
                    queue=self.queue.name,
                    task=task,
                    key=key or None,
                    limits=limits,
                    source=source,
                    running=running.get(g, 0),
                    in_window=in_window,
                    held=held,
                    next_start_ms=int(gate) if gate is not None and gate != float("inf") else None,
                    waits_for_slot=gate == float("inf"),
                )
            )
        return states


def applying(settings: dict[str, Limits], group: str) -> tuple[Limits | None, str | None]:
    """The limits that apply to ``group`` and where they come from (as lua/flow.lua
    chooses): the key's setting, the task's setting, the task's declaration."""
    path = group.partition(":")[0]
    fields = ((SET + group, "key"), (SET + path, "task"), (DECLARED + path, "declared"))
    for field, source in fields:
        if field in settings and (source != "key" or group != path):
            limits = settings[field]
            return (limits if limits.rate or limits.concurrency is not None else None), source
    return None, None
