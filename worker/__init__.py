"""An async-native Redis backend and worker for Django's Tasks API."""

from worker.exceptions import BrokerUnavailable, PermanentFailure, RateLimited

__all__ = ["BrokerUnavailable", "PermanentFailure", "RateLimited"]
