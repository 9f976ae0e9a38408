"""What ``runworker --metrics-port`` sets up in each kind of process: a worker serving its
own metrics, a supervisor serving its children's, a child writing its own for the
supervisor (worker/observe/multiprocess.py)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from worker.observe import metrics, multiprocess

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

logger = logging.getLogger("worker")


class Export:
    """The metrics of this process, if it exports any: ``meter`` for the worker to record
    to, ``children`` for a supervisor. ``close()`` stops serving and writing."""

    def __init__(
        self, address: tuple[str, int] | None, concurrency: int, supervising: bool
    ) -> None:
        """``address`` (host, port) to serve at, if any. ImportError without
        prometheus-client, OSError when the port cannot be bound."""
        self.meter: metrics.Meter | None = None
        self.children: multiprocess.Children | None = None
        self._server: WSGIServer | None = None
        self._flusher: multiprocess.Flusher | None = None
        directory = os.environ.get(multiprocess.DIR_ENV)
        if directory and not supervising:  # a child of a supervisor that serves metrics
            self.meter = metrics.Meter(concurrency)
            self._flusher = multiprocess.Flusher(self.meter, directory)
        elif address is None:
            return
        elif supervising:
            self.children = multiprocess.Children()
            self._serve(address, self.children.snapshot)
        else:
            self.meter = metrics.Meter(concurrency)
            self._serve(address, self.meter.snapshot)
        if self.meter is not None:
            metrics.enable(self.meter)
        if self._flusher is not None:
            self._flusher.start()

    def _serve(self, address: tuple[str, int], take: metrics.Taker) -> None:
        from worker.observe import exposition  # the [metrics] extra: only when serving

        host, port = address
        try:
            self._server = exposition.serve(metrics.FAMILIES, take, port, host)
        except BaseException:
            if self.children is not None:
                self.children.close()
            raise
        logger.info("Metrics served at http://%s:%d/metrics", host or "0.0.0.0", port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._flusher is not None:
            self._flusher.stop()
        if self.children is not None:
            self.children.close()
        if self.meter is not None:
            metrics.disable()
