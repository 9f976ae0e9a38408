"""The job message: what enqueue writes and the worker reads back, and its checks.

A message is JSON ({"task": path, "args": [...], "kwargs": {...}, "trace": {...}}, empty
args and kwargs left out, and the trace context only when the enqueue was traced: every
queued job keeps its message in Redis). A workflow's step may carry what its workflow passed
on, "input" (its first argument) and "failed" (its keyword ``failed``). Decoding never
imports anything: the task path is looked up in the registry of this project's tasks.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from django.utils.json import normalize_json

from worker.exceptions import InvalidArguments
from worker.exceptions import MessageRejected as Rejected
from worker.limits import LimitError
from worker.protocol.keys import new_job_id
from worker.protocol.records import NewJob
from worker.task import Task, arguments_error, bound_arguments, lookup


def encode(
    task: Task,
    args: Any,
    kwargs: Any,
    max_bytes: int,
    trace: dict[str, str] | None = None,
    incoming: Incoming = (False, False),
) -> tuple[list[Any], dict[str, Any], bytes, str | None]:
    """The message for a call of ``task``, with its arguments made JSON-ready (lists,
    dicts, scalars), and its limit group (worker/limits.py), or InvalidArguments naming
    what is wrong. ``trace``: the W3C trace context of the enqueue (worker/observe/
    tracing.py), carried to the worker. ``incoming``: whether a workflow adds an input
    (a first argument) and ``failed`` (a keyword) when it releases the step."""
    try:
        args, kwargs = _json_ready(list(args)), _json_ready(dict(kwargs))
    except (TypeError, ValueError) as e:
        raise InvalidArguments(
            f"{task.module_path}: arguments must be JSON-serialisable ({e})"
        ) from None
    called_args, called_kwargs = _as_called(args, kwargs, *incoming)
    if error := arguments_error(task, called_args, called_kwargs):
        raise InvalidArguments(error)
    message: dict[str, Any] = {"task": task.module_path}
    if args:
        message["args"] = args
    if kwargs:
        message["kwargs"] = kwargs
    if trace:
        message["trace"] = trace
    try:
        body = orjson.dumps(message)
    except TypeError as e:  # e.g. an integer wider than 64 bits
        raise InvalidArguments(f"{task.module_path}: arguments cannot be encoded ({e})") from None
    # orjson writes NaN and infinities as null; only then is the walk to find them worth it.
    if b"null" in body and _has_non_finite([args, kwargs]):
        raise InvalidArguments(
            f"{task.module_path}: arguments hold NaN or infinity, which JSON cannot carry"
        )
    if len(body) > max_bytes:
        raise InvalidArguments(
            f"{task.module_path}: message is {len(body)} bytes, over the limit of {max_bytes}"
        )
    try:
        limit = task.limit_group(called_args, called_kwargs)
    except LimitError as e:
        raise InvalidArguments(f"{task.module_path}: {e}") from None
    return args, kwargs, body, limit


# What a workflow adds to a step's call when it releases it: (an input, ``failed``).
Incoming = tuple[bool, bool]


def _as_called(
    args: list[Any], kwargs: dict[str, Any], has_input: bool, has_failed: bool
) -> tuple[list[Any], dict[str, Any]]:
    """The arguments a step is called with, what its workflow adds stood in by None and
    [] (so that a call that cannot bind them is refused at enqueue)."""
    if has_input:
        args = [None, *args]
    if has_failed:
        kwargs = {**kwargs, "failed": []}
    return args, kwargs


_PLAIN = frozenset({str, int, float, bool, type(None)})


_BINARY = (bytes, bytearray, memoryview)


def _json_ready(value: Any) -> Any:
    """Django's normalize_json (the types a TaskResult accepts), without its abstract-class
    checks for the plain lists, dicts and scalars that arguments nearly always are, and
    refusing bytes: normalize_json decodes them, so that the task would get a str."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is list:
        return [_json_ready(v) for v in value]
    if kind is dict and all(type(k) is str for k in value):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, _BINARY):
        raise TypeError(
            f"{kind.__name__} is not JSON, and the task would get a str instead: pass text, "
            "or binary data base64-encoded"
        )
    if isinstance(value, Mapping):
        return {_json_ready(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_json_ready(v) for v in value]
    return normalize_json(value)  # a subclass of str, int...; TypeError for other types


# How long an idempotency key stands for its first job (while that job's record is kept).
IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000


def new_job(
    task: Task, args: list[Any], kwargs: dict[str, Any], body: bytes, limit: str | None, now: int
) -> NewJob:
    """The job that enqueuing a call (checked and encoded by ``encode``) at ``now`` (epoch
    ms) writes."""
    run_after = task.run_after
    unique = None
    if task.idempotency_key is not None:
        key = orjson.dumps([task.module_path, task.idempotency_key])
        unique = (hashlib.sha256(key).hexdigest()[:32], IDEMPOTENCY_WINDOW_MS)
    elif task.unique_for is not None:
        unique = (fingerprint(task, args, kwargs), int(task.unique_for * 1000))
    return NewJob(
        id=new_job_id(task.queue_name, now),
        queue=task.queue_name,
        body=body,
        priority=task.priority,
        max_attempts=task.max_attempts,
        run_after_ms=int(run_after.timestamp() * 1000) if run_after else None,
        enqueued_ms=now,
        unique=unique,
        limit=limit,
    )


def fingerprint(task: Task, args: list[Any], kwargs: dict[str, Any]) -> str:
    """Equal for calls of one task that bind the same values to its parameters, however
    they are spelled (positional or keyword, defaults given or left out)."""
    canonical = orjson.dumps(
        [task.module_path, bound_arguments(task, args, kwargs)], option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()[:32]


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    return False


@dataclass(frozen=True, slots=True)
class Call:
    """A decoded, checked message: a registered task and arguments it accepts."""

    task: Task
    args: list[Any]
    kwargs: dict[str, Any]
    trace: dict[str, str] | None = None  # the W3C trace context of its enqueue


def decode(body: bytes | None, max_bytes: int) -> Call:
    """The call a message asks for, or Rejected with the reason it cannot run."""
    if body is None:
        raise Rejected("the job's message is missing")
    if len(body) > max_bytes:
        raise Rejected(f"message is {len(body)} bytes, over the limit of {max_bytes}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise Rejected(f"message is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise Rejected(f"message must be a JSON object, not {type(data).__name__}")
    path, args, kwargs = data.get("task"), data.get("args", []), data.get("kwargs", {})
    if not isinstance(path, str):
        raise Rejected("message names no task (field 'task' must be a string)")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise Rejected("message 'args' must be a list and 'kwargs' an object")
    # what a workflow passed on (lua/workflow.lua)
    if "input" in data:
        args = [data["input"], *args]
    if "failed" in data:
        if not isinstance(data["failed"], list):
            raise Rejected("message 'failed' must be a list")
        kwargs = {**kwargs, "failed": data["failed"]}
    task = lookup(path)
    if task is None:
        raise Rejected(
            f"task {path[:200]!r} is not registered in this project (a worker knows the "
            "tasks of each installed app's tasks module, and what those import, as they "
            "were when it started: restart workers after adding a task)"
        )
    if error := arguments_error(task, args, kwargs):
        raise Rejected(error)
    return Call(task, args, kwargs, _trace_of(data.get("trace")))


def _trace_of(value: Any) -> dict[str, str] | None:
    """The trace context a message carries. One that is not an object of strings is
    ignored, as W3C Trace Context asks of a malformed header: the job runs untraced."""
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return value or None
    return None
