"""Operating the queues: the Python API (``api``) and the click CLI over it (``cli``)."""

from worker.ops.api import Ops

__all__ = ["Ops"]
