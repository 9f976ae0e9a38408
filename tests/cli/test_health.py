"""The health probe for orchestrators (``jobs health``, ``runworker --check``): exit 0 when
Redis answers and a live worker serves each queue, 1 otherwise, with a one-line reason."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from django.core.management import call_command

from tests.cli.conftest import run
from tests.conftest import tasks_setting
from worker.ops.api import Ops
from worker.protocol.servers import free_port


async def live(backend, count: int = 1) -> None:
    """Until ``count`` workers' heartbeats are in Redis."""
    async with asyncio.timeout(10):
        while len(Ops(backend).workers()) < count:  # noqa: ASYNC110 - polled, with a deadline
            await asyncio.sleep(0.02)


def runworker_check(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        call_command("runworker", "--check", *args)
    return done.value.code, capsys.readouterr().out


def test_no_worker_is_unhealthy(capsys):
    result = run("health")
    assert result.exit_code == 1
    assert result.stdout == "unhealthy: no live worker serves queues default, other, reports\n"
    assert runworker_check(capsys, "-q", "reports") == (
        1, "unhealthy: no live worker serves queue reports\n"
    )  # fmt: skip


async def test_a_live_worker_for_each_queue_is_healthy(backend, run_worker, capsys):
    async with run_worker():
        await live(backend)
        result = run("health")
        assert (result.exit_code, result.stdout) == (
            0, "ok: 1 live worker serves queues default, other, reports\n"
        )  # fmt: skip
        code, out = runworker_check(capsys, "--json")
        assert code == 0
        assert orjson.loads(out) == {
            "ok": True,
            "reason": "1 live worker serves queues default, other, reports",
            "queues": {"default": 1, "other": 1, "reports": 1},
        }
    # A stopped worker takes its heartbeat with it: no worker serves the queues any more.
    assert run("health").exit_code == 1


async def test_a_queue_no_worker_serves_is_unhealthy(backend, run_worker, capsys):
    async with run_worker(queues=["default", "reports"]):
        await live(backend)
        result = run("health", "--json")
        assert result.exit_code == 1
        assert orjson.loads(result.stdout) == {
            "ok": False,
            "reason": "no live worker serves queue other",
            "queues": {"default": 1, "other": 0, "reports": 1},
        }
        # Asked only about the queues it serves, the probe is satisfied.
        assert runworker_check(capsys, "-q", "reports", "-q", "default") == (
            0, "ok: 1 live worker serves queues default, reports\n"
        )  # fmt: skip


def test_redis_unreachable_is_unhealthy_without_the_password(settings, tasks_prefix, capsys):
    settings.TASKS = tasks_setting(f"redis://:secret@127.0.0.1:{free_port()}/0", tasks_prefix)
    result = run("health")
    assert result.exit_code == 1
    assert result.stdout.startswith("unhealthy: Redis at redis://:***@127.0.0.1:")
    assert "is unreachable (" in result.stdout
    assert result.stdout.count("\n") == 1 and "secret" not in result.output
    code, out = runworker_check(capsys, "--json")
    assert code == 1
    assert orjson.loads(out)["ok"] is False and "secret" not in out
