"""An async-native Redis backend and worker for Django's Tasks API."""

from worker.exceptions import PermanentFailure

__all__ = ["PermanentFailure"]
