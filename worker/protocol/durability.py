"""Writes that wait for a replica (OPTIONS ``durability = "replicated"``).

Redis replicates asynchronously: a write it has answered may not have reached a replica
when the master dies, and the replica promoted in its place does not have it. With this
option on, the writes a caller counts on are followed by ``WAIT <replicas> <timeout>`` in
the same round trip, on the same connection (WAIT waits for every write that connection
made): the enqueue scripts (jobs, a workflow's START, a batch's jobs), whose caller is
told the job is stored, and ACK, whose worker then forgets the job.

When no replica confirms within the timeout, the write is on the master only:

- an enqueue raises ``NotReplicated`` (the backend's ``BrokerUnavailable``, with
  ``maybe_stored``): the job is stored, and runs unless the master fails before a replica
  has it; enqueuing it again with an idempotency key stores it once either way;
- an ack is counted (``Durability.unconfirmed``) and logged once per spell: a lost ack
  runs the job again, which at-least-once delivery allows, whereas failing it would stop
  every worker for as long as the replicas are away.

What each setting guarantees is in docs/reliability.md ("Replication and failover").
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from worker.protocol.scripts import ACK, BATCH, ENQUEUE, ENQUEUE_MANY, START

logger = logging.getLogger("worker")

MODES = ("async", "replicated")
# What a short WAIT means for each script that waits: raise to the caller, or count.
RAISE, COUNT = "raise", "count"
# START writes a workflow (its steps STAGEd before it are older writes: WAIT covers them),
# BATCH adds jobs to a batch.
_POLICIES = {script.sha: RAISE for script in (ENQUEUE, ENQUEUE_MANY, START, BATCH)}
_POLICIES[ACK.sha] = COUNT


class NotReplicated(redis.RedisError):
    """Redis stored a write, but fewer replicas than asked confirmed it in time: it is lost
    if the master fails before they have it."""


class Durability:
    """How many replicas must confirm the writes that wait, and for how long to wait."""

    __slots__ = ("_short", "replicas", "timeout_ms", "unconfirmed")

    def __init__(self, timeout_ms: int, replicas: int = 1) -> None:
        self.replicas = replicas
        self.timeout_ms = timeout_ms
        self.unconfirmed = 0  # acks no replica confirmed in time, since the process began
        self._short = False  # the latest ack was not confirmed: a spell is on

    @staticmethod
    def waits(sha: str) -> bool:
        """Whether the script of SHA1 ``sha`` is one whose writes wait for replicas."""
        return sha in _POLICIES

    @property
    def command(self) -> tuple[Any, ...]:
        return ("WAIT", self.replicas, self.timeout_ms)

    def settle(self, sha: str, confirmed: int, where: str) -> None:
        """Act on WAIT's answer (the replicas that confirmed) after the script of SHA1
        ``sha`` ran on the Redis named ``where`` (its URL without password)."""
        short = confirmed < self.replicas
        if _POLICIES[sha] == RAISE:
            if short:
                raise NotReplicated(
                    f"{where} stored it, but no replica confirmed it within {self.timeout_ms} "
                    "ms: it is lost if the master fails before a replica has it"
                )
            return
        if short:
            self.unconfirmed += 1
            if not self._short:
                logger.warning(
                    "%s: no replica confirmed an ack within %d ms; until one does, outcomes "
                    "are on the master only (their jobs run again should it fail)",
                    where, self.timeout_ms,
                )  # fmt: skip
        elif self._short:
            logger.warning("%s: replicas confirm acks again (%d acks were not confirmed so "
                           "far)", where, self.unconfirmed)  # fmt: skip
        self._short = short


def waiting_for_replicas(mode: str, timeout: float) -> Durability | None:
    """The Durability of OPTIONS ``durability`` and ``durability_timeout`` (seconds); None
    for "async" (no write waits)."""
    return Durability(round(timeout * 1000)) if mode == "replicated" else None


class ReplicatedRedis(redis.Redis):
    """redis-py's blocking client, whose scripts that wait (``Durability.waits``) are sent
    with WAIT in one pipeline. Scripts run through ``evalsha`` (scripts.Lua.run_sync)."""

    def __init__(self, *, durability: Durability, where: str, **options: Any) -> None:
        super().__init__(**options)
        self.durability = durability
        self.where = where

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        if not self.durability.waits(sha):
            return super().evalsha(sha, numkeys, *keys_and_args)
        with self.pipeline(transaction=False) as pipe:
            pipe.evalsha(sha, numkeys, *keys_and_args)
            pipe.execute_command(*self.durability.command)  # type: ignore[no-untyped-call]
            reply, confirmed = pipe.execute()  # NoScriptError: the caller loads the script
        self.durability.settle(sha, int(confirmed), self.where)
        return reply
