"""An async-native Redis backend and worker for Django's Tasks API.

The names below are imported on first use: the package's pytest plugin, which every pytest
run in the environment loads, costs nothing where it does not run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.exceptions import BrokerUnavailable, PermanentFailure, RateLimited

__all__ = ["BrokerUnavailable", "PermanentFailure", "RateLimited"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'worker' has no attribute {name!r}")
    from worker import exceptions

    return getattr(exceptions, name)
