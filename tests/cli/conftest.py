"""Real jobs in every state for the CLI to look at and steer, and a way to run it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import orjson
import pytest
from click.testing import CliRunner, Result
from django.utils import timezone

from tests.engine import tasks
from tests.engine.helpers import finished
from worker.ops.cli import cli, output

WORKER = "cli-test-host:4242:abcdef"


@dataclass(frozen=True)
class Jobs:
    ready: str
    delayed: str
    running: str  # in queue "reports", leased to WORKER
    dead: str
    successful: str


@pytest.fixture
async def jobs(backend, run_worker) -> Jobs:
    dead = await tasks.permanent.aenqueue()
    successful = await tasks.add.aenqueue(2, 3)
    # No scheduler: the project's periodic jobs would add jobs of their own.
    async with run_worker(scheduler=False):
        await finished(dead)
        await finished(successful)
    ready = await tasks.add.aenqueue(1, 2)
    later = timezone.now() + timedelta(hours=1)
    delayed = await tasks.add.using(run_after=later).aenqueue(3, 4)
    running = await tasks.record.using(queue_name="reports").aenqueue("busy")
    # A real fetch leases it, as a worker's would; the heartbeat makes that worker live.
    broker = backend.broker
    [lease] = (await broker.queue("reports").fetch(1, WORKER)).leases
    assert lease.id == running.id
    beat = {"id": WORKER, "host": "cli-test-host", "pid": 4242, "queues": ["reports"],
            "concurrency": 10, "in_flight": 1, "processed": 7,
            "started_at": time.time() - 3600, "seen_at": time.time()}  # fmt: skip
    await broker.heartbeat(WORKER, orjson.dumps(beat), 60_000)
    return Jobs(ready.id, delayed.id, running.id, dead.id, successful.id)


@pytest.fixture
def on_a_terminal(monkeypatch):
    """Questions are asked as on a terminal (CliRunner's stdin is not one): the answers
    come from the test's ``input``."""
    monkeypatch.setattr(output, "can_ask", lambda: True)


def run(*args: str, input: str | None = None) -> Result:
    """The CLI as a shell runs it (stdout not a terminal): exit code, stdout, stderr."""
    return CliRunner().invoke(cli, list(args), input=input)


def run_json(*args: str):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)
