"""Flow control: a task's rate and concurrency limits, as ``@task`` declares them and
operators change them, and the key that splits them per customer, host, ...

The limits are enforced in Redis by the FETCH script for every worker together
(docs/protocol.md, "Flow control"): this module only says what they are. A job carries its
limit group (``task path`` or ``task path:<JSON key>``) from the enqueue on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*\.?\d*)\s*(ms|s|m|h|d)\s*")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
# A limit key is part of Redis key names and of the job's hash: kept short.
MAX_KEY_BYTES = 200

LimitKey = Callable[..., Any] | str  # a callable of the job's arguments, or one's name


class LimitError(ValueError):
    """A limit that cannot be (a rate not shaped like "100/s", a negative count...)."""


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` starts in any window of ``window_ms`` milliseconds."""

    count: int
    window_ms: int

    def __str__(self) -> str:
        for unit in ("d", "h", "m", "s"):
            size = _UNIT_MS[unit]
            if self.window_ms % size == 0:
                n = self.window_ms // size
                return f"{self.count}/{unit}" if n == 1 else f"{self.count}/{n}{unit}"
        return f"{self.count}/{self.window_ms}ms"


def parse_rate(text: str) -> Rate:
    """``"100/s"``, ``"10/m"``, ``"500/h"``, ``"1000/d"``, ``"10/5s"``, ``"3/250ms"``."""
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise LimitError(
            f"rate {text!r} is not a rate: write a count per window, like '100/s', '10/m', "
            "'500/h' or '10/5s'"
        )
    count, size, unit = match.groups()
    window = (float(size) if size else 1.0) * _UNIT_MS[unit]
    if not (math.isfinite(window) and window >= 1):
        raise LimitError(f"rate {text!r} has a window under a millisecond")
    return Rate(int(count), round(window))


@dataclass(frozen=True, slots=True)
class Limits:
    """A task's (or one key's) limits; None where there is none. A rate of 0 starts or a
    concurrency of 0 holds every job (a pause, set at run time)."""

    rate: Rate | None = None
    concurrency: int | None = None

    def wire(self) -> str:
        """As the limits hash keeps it: ``count/window_ms/concurrency``, empty for none."""
        rate = f"{self.rate.count}/{self.rate.window_ms}" if self.rate else "/"
        return f"{rate}/{'' if self.concurrency is None else self.concurrency}"

    @classmethod
    def from_wire(cls, text: str) -> Limits:
        count, window, concurrency = text.split("/")
        rate = Rate(int(count), int(window)) if count else None
        return cls(rate, int(concurrency) if concurrency else None)

    def __str__(self) -> str:
        parts = [f"rate {self.rate}"] if self.rate else []
        if self.concurrency is not None:
            parts.append(f"concurrency {self.concurrency}")
        return ", ".join(parts) or "no limit"


def declared(rate_limit: object, concurrency_limit: object) -> Limits:
    """The limits ``@task(rate_limit=..., concurrency_limit=...)`` declares, or LimitError."""
    rate = None
    if rate_limit is not None:
        if not isinstance(rate_limit, str):
            raise LimitError(f"rate_limit must be a string like '100/s', not {rate_limit!r}")
        rate = parse_rate(rate_limit)
        if rate.count < 1:
            raise LimitError("rate_limit must allow at least 1 start per window")
    if concurrency_limit is not None and (
        isinstance(concurrency_limit, bool)
        or not isinstance(concurrency_limit, int)
        or concurrency_limit < 1
    ):
        raise LimitError(
            f"concurrency_limit must be a whole number >= 1, not {concurrency_limit!r}"
        )
    return Limits(rate, concurrency_limit)


def group(path: str, key: object = None, keyed: bool = False) -> str:
    """The name a limit is kept under: the task's path, with ``:<JSON key>`` when keyed."""
    return f"{path}:{key_json(key).decode()}" if keyed else path


def key_json(key: object) -> bytes:
    """A limit key as JSON (a scalar), or LimitError naming what is wrong with it."""
    if key is not None and type(key) not in (str, int, float, bool):
        raise LimitError(f"a limit key must be a JSON scalar, not {type(key).__name__}")
    if isinstance(key, float) and not math.isfinite(key):
        raise LimitError(f"a limit key cannot be {key!r}")
    try:
        text = orjson.dumps(key)
    except TypeError as e:  # an integer wider than 64 bits
        raise LimitError(f"a limit key cannot be encoded ({e})") from None
    if len(text) > MAX_KEY_BYTES:
        raise LimitError(f"a limit key is {len(text)} bytes as JSON, over {MAX_KEY_BYTES}")
    return text


def key_of(
    limit_key: LimitKey,
    bound: Callable[[], Mapping[str, Any]],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
) -> object:
    """The key of one call: the named argument's value (``bound`` gives the call's
    arguments by name), or what the callable returns for the call's arguments."""
    if isinstance(limit_key, str):
        return bound()[limit_key]
    return limit_key(*args, **kwargs)
