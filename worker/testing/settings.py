"""A test settings' TASKS made from the project's own."""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from worker.backend import RedisBackend

BACKENDS = {
    "immediate": "worker.testing.ImmediateBackend",
    "recording": "worker.testing.RecordingBackend",
}


def in_process(tasks: dict[str, Any], backend: str = "immediate") -> dict[str, Any]:
    """A copy of the TASKS setting ``tasks`` whose Redis backends are in-process ones
    (``"immediate"`` or ``"recording"``), with the same QUEUES and OPTIONS::

        TASKS = in_process(TASKS)  # in the test settings
    """
    path = BACKENDS.get(backend, backend)
    copied = {}
    for alias, entry in tasks.items():
        entry = dict(entry)
        try:
            redis = issubclass(import_string(entry.get("BACKEND", "")), RedisBackend)
        except (ImportError, TypeError):
            redis = False
        if redis:
            entry["BACKEND"] = path
        copied[alias] = entry
    return copied
