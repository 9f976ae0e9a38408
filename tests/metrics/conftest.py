import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.conftest import own_redis, start_worker, worker_env  # noqa: F401 - fixtures
from tests.processes import wait_until
from worker.protocol.servers import free_port as a_free_port


@pytest.fixture
def free_port() -> int:
    return a_free_port()


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape: (sample name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the scrape has no such sample (a series never touched)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(port: int) -> Samples:
    return parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)


def scrape_when_up(port: int, timeout: float = 30) -> Samples:
    def attempt() -> Samples | None:
        try:
            return scrape(port)
        except httpx.TransportError:
            return None

    return wait_until(attempt, timeout, f"metrics served on port {port}")  # type: ignore[return-value]
