"""The Lua scripts that move jobs between a queue's keys atomically (docs/protocol.md), loaded
from ``lua/*.lua``: the one place a script's text comes from.

A script file may start with ``--! uses: wake, each``: the helper files it needs, prepended
in that order (each helper's own needs first). Every script about a queue touches that
queue's keys only, all under its {queue} hash tag; job hashes are reached from ids through
the key prefix in ARGV, which stays inside the same hash slot. The others touch keys of the
whole prefix, without a hash tag (HEARTBEAT: a worker's heartbeat and the list of them).
The workflow scripts (START, STAGE, STOP, BATCH, PROGRESS, and the end of a workflow's step in ACK,
REQUEUE, CANCEL, DELETE, PURGE) reach the keys of every queue its steps use: a workflow
needs one Redis.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files
from typing import Any

import redis
from redis.exceptions import NoScriptError

_FOLDER = files(__package__).joinpath("lua")


class Lua:
    """A script's source and SHA1: run by EVALSHA, loaded first where the server lacks it."""

    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def run_sync(self, client: redis.Redis, keys: list[Any], args: list[Any]) -> Any:
        """Run on redis-py's blocking client (the async side runs on FastRedis.run)."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    def __repr__(self) -> str:
        return f"<Lua {self.name} {self.sha[:8]}>"


def _text(name: str) -> str:
    return _FOLDER.joinpath(f"{name}.lua").read_text(encoding="utf-8")


def _needs(text: str) -> list[str]:
    first = text.partition("\n")[0]
    if not first.startswith("--! uses:"):
        return []
    return [n.strip() for n in first.removeprefix("--! uses:").split(",") if n.strip()]


def _with_helpers(name: str, included: list[str]) -> str:
    parts = []
    text = _text(name)
    for helper in _needs(text):
        if helper not in included:
            included.append(helper)
            parts.append(_with_helpers(helper, included))
    parts.append(text)
    return "\n".join(parts)


def load(name: str) -> Lua:
    """The script ``lua/<name>.lua`` with the helpers it uses."""
    return Lua(name, _with_helpers(name, []))


ENQUEUE = load("enqueue")
ENQUEUE_MANY = load("enqueue_many")
FIRE = load("fire")
HAND_OFF = load("hand_off")
FETCH = load("fetch")
ACK = load("ack")
REQUEUE = load("requeue")
RETRY = load("retry")
CANCEL = load("cancel")
DELETE = load("delete")
AFTER = load("after")
PURGE = load("purge")
UNIQUE = load("unique")
READ = load("read")
REPORT = load("report")
LIMITS = load("limits")
RECOUNT = load("recount")
GAUGES = load("gauges")
HEARTBEAT = load("heartbeat")
START = load("start")
STAGE = load("stage")
STOP = load("stop")
BATCH = load("batch")
PROGRESS = load("progress")
