import pytest

from tests import processes
from tests.conftest import tasks_setting
from tests.processes import runworker
from worker.protocol.servers import RedisServer


@pytest.fixture
def worker_env(redis_url, tasks_prefix):
    """Environment of worker processes: this test's Redis keys, the test tasks, a short lease."""
    return processes.worker_env(redis_url, tasks_prefix, TASKS_LEASE="2")


@pytest.fixture
def start_worker(worker_env, tmp_path):
    """Start ``manage.py runworker`` processes; all are killed at the end of the test.
    They fire no periodic jobs (the project's would add jobs to the counts) unless asked."""
    started = []

    def start(*options: str, env: dict | None = None, scheduler: bool = False):
        log = tmp_path / f"worker-{len(started)}.log"
        options = options if scheduler else ("--no-scheduler", *options)
        process = runworker(env or worker_env, log, *options)
        process.log = log
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def own_redis(tmp_path, settings, tasks_prefix):
    """A redis-server of the test's own, with an append-only file (it may be stopped, killed
    and started again with its data); TASKS points at it."""
    server = RedisServer(tmp_path / "redis", persist=True).start()
    settings.TASKS = tasks_setting(server.url, tasks_prefix)
    yield server
    server.stop()
