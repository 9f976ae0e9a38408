"""The dashboard's setting, ``TASKS_DASHBOARD`` (a dict; every key optional):

- ``"backend"``: the TASKS alias it shows (default ``"default"``);
- ``"read_only"``: hide every action and refuse every POST (default False).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {"backend": "default", "read_only": False}
TYPES: dict[str, type] = {"backend": str, "read_only": bool}


@dataclass(frozen=True, slots=True)
class Config:
    backend: str
    read_only: bool


def config() -> Config:
    given = getattr(settings, "TASKS_DASHBOARD", None) or {}
    return Config(**{name: given.get(name, default) for name, default in DEFAULTS.items()})


def errors() -> list[str]:
    """What is wrong with the setting, one line each."""
    given = getattr(settings, "TASKS_DASHBOARD", None)
    if given is None:
        return []
    if not isinstance(given, dict):
        return [f"TASKS_DASHBOARD must be a dict, not {type(given).__name__}"]
    found = []
    for name, value in given.items():
        if name not in TYPES:
            known = ", ".join(repr(k) for k in TYPES)
            found.append(f"TASKS_DASHBOARD has no option {name!r} (options: {known})")
        elif not isinstance(value, TYPES[name]):
            found.append(f"TASKS_DASHBOARD[{name!r}] must be a {TYPES[name].__name__}, "
                         f"not {value!r}")  # fmt: skip
    return found
