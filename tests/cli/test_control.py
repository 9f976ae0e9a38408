"""pause, resume, quiet, stop and schedule: what they change in Redis and what they say."""

import pytest

from tests.cli.conftest import WORKER, run
from tests.engine import tasks
from worker import periodic as periodic_module
from worker.ops.api import Ops
from worker.periodic import Every, Periodic


def test_pause_and_resume_queues(backend):
    ops = Ops(backend)
    result = run("pause", "default", "reports")
    assert (result.exit_code, result.stdout) == (0, "default: paused\nreports: paused\n")
    assert set(ops.paused()) == {"default", "reports"}
    assert run("pause", "default").stdout == "default: paused already\n"
    assert run("resume", "default").stdout == "default: resumed\n"
    assert set(ops.paused()) == {"reports"}
    assert run("resume", "default").stdout == "default: not paused\n"
    unknown = run("pause", "nope")
    assert unknown.exit_code == 2 and "nope" in unknown.stderr


def test_quiet_and_stop_leave_an_order_for_a_live_worker_only(jobs, backend):
    keys = backend.broker.keys
    assert run("quiet", WORKER).stdout == f"{WORKER}: told to go quiet\n"
    assert backend.broker.sync.get(keys.order(WORKER)) == b"quiet"
    assert run("stop", WORKER).stdout == f"{WORKER}: told to stop\n"
    assert backend.broker.sync.get(keys.order(WORKER)) == b"stop"
    gone = run("quiet", "elsewhere:1:abc")
    assert gone.exit_code == 2
    assert f"no live worker 'elsewhere:1:abc' (live workers: {WORKER})" in gone.stderr


@pytest.fixture
def declared(monkeypatch):
    every = Periodic("add-hourly", tasks.add, Every(3600), (1, 2), {}, "skip")
    monkeypatch.setattr(periodic_module, "_schedules", {every.name: every})


def test_schedule_run_pause_resume(declared, backend):
    ops = Ops(backend)
    ran = run("schedule", "run", "add-hourly")
    assert ran.exit_code == 0
    [schedule] = ops.schedules()
    assert [job_id for job_id, _ in schedule.runs] == [ran.stdout.strip()]
    assert run("schedule", "pause", "add-hourly").stdout == "add-hourly: paused\n"
    assert ops.schedules()[0].paused_since is not None
    assert run("schedule", "resume", "add-hourly").stdout == "add-hourly: resumed\n"
    missing = run("schedule", "run", "nope")
    assert missing.exit_code == 2 and "no periodic schedule 'nope'" in missing.stderr
