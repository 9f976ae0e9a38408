"""Snapshots of metrics rendered for Prometheus by prometheus-client (the ``[metrics]``
extra): a worker process's own, the sum of a supervisor's children, the cluster view's."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

try:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.exposition import choose_encoder, start_wsgi_server
except ImportError as e:  # pragma: no cover - the extra is missing
    raise ImportError(
        "metrics need prometheus-client: pip install django-redis-worker[metrics]"
    ) from e

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from worker.observe.metrics import Family, Snapshot

INSTALL = "pip install django-redis-worker[metrics]"


def families(defined: Iterable[Family], snapshot: Snapshot) -> Iterator[Metric]:
    """The metric families ``defined``, with the values ``snapshot`` holds for them (a
    family it lacks is left out)."""
    for family in defined:
        values = snapshot.get(family.name)
        if values is None:
            continue
        labels = list(family.labels)
        metric: CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily
        if family.kind == "histogram":
            metric = HistogramMetricFamily(family.name, family.help, labels=labels)
            for label_values, value in sorted(values.items()):
                assert isinstance(value, list)
                metric.add_metric(list(label_values), _cumulative(family.buckets, value),
                                  value[-1])  # fmt: skip
        else:
            kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
            metric = kind(family.name, family.help, labels=labels)
            for label_values, value in sorted(values.items()):
                assert isinstance(value, float)
                metric.add_metric(list(label_values), value)
        yield metric


def _cumulative(bounds: tuple[float, ...], value: list[float]) -> list[tuple[str, float]]:
    """Prometheus's buckets (``le``, how many at or below) from counts per bucket."""
    found, total = [], 0.0
    for bound, count in zip([*map(str, bounds), "+Inf"], value[:-1], strict=True):
        total += count
        found.append((bound, total))
    return found


class SnapshotCollector:
    """A prometheus-client collector of ``defined`` families, their values from ``take()``
    at each scrape."""

    def __init__(self, defined: Iterable[Family], take: Callable[[], Snapshot]) -> None:
        self.defined = tuple(defined)
        self.take = take

    def collect(self) -> Iterator[Metric]:
        return families(self.defined, self.take())


def registry(defined: Iterable[Family], take: Callable[[], Snapshot]) -> CollectorRegistry:
    found = CollectorRegistry(auto_describe=False)
    found.register(SnapshotCollector(defined, take))
    return found


def serve(
    defined: Iterable[Family], take: Callable[[], Snapshot], port: int, host: str
) -> WSGIServer:
    """Serve the metrics at http://host:port/metrics from a thread of its own (stop it with
    ``shutdown()``); OSError when the port cannot be bound."""
    server, _ = start_wsgi_server(port, host, registry(defined, take))
    return server


def render(defined: Iterable[Family], snapshot: Snapshot, accept: str | None) -> tuple[bytes, str]:
    """The body and content type of a scrape (OpenMetrics when ``accept`` asks for it)."""
    encode, content_type = choose_encoder(accept or "")
    return encode(registry(defined, lambda: snapshot)), content_type
