"""Filters that put the dashboard's figures in words (every value stays escaped: they
return plain text)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
from django import template

from worker.results import JobRecord

register = template.Library()


def _moment(value: datetime | float | None) -> datetime | None:
    if value is None or value == 0:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return value


@register.filter
def ago(value: datetime | float | None) -> str:
    """ "12 s ago", "3 min ago", "in 5 min"."""
    moment = _moment(value)
    if moment is None:
        return "-"
    seconds = time.time() - moment.timestamp()
    words = span(abs(seconds))
    return f"{words} ago" if seconds >= 0 else f"in {words}"


@register.filter
def span(seconds: float | None) -> str:
    """A duration in words: "0.4 ms", "12 ms", "3.4 s", "5 min", "2 h 5 min", "3 d"."""
    if seconds is None:
        return "-"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        hours, rest = divmod(int(seconds), 3600)
        return f"{hours} h {rest // 60} min"
    return f"{seconds / 86400:.0f} d"


@register.filter
def when(value: datetime | float | None) -> str:
    """A moment in UTC, to the second."""
    moment = _moment(value)
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@register.filter
def mebibytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


@register.filter
def entry(mapping: dict[str, object], key: str) -> object:
    """``mapping[key]`` (Django's dot lookup cannot take a key with dots)."""
    return mapping.get(key)


@register.filter
def arguments(job: JobRecord, limit: int = 160) -> str:
    """A job's arguments as compact JSON (positional, then keyword ones), cut at ``limit``."""
    text = orjson.dumps(job.args).decode()
    if job.kwargs:
        text += " " + orjson.dumps(job.kwargs).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"
