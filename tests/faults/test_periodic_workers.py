"""Three workers fire every-second schedules while one is SIGKILLed and another restarted:
each fire time makes exactly one job."""

import signal
import time
from collections import Counter

import orjson

from tests.processes import stop, wait_until


def fired_jobs(backend) -> Counter:
    """(task path, fire time in ms) of every job in the queue, counted."""
    client = backend.broker.sync
    seen: Counter = Counter()
    for key in client.scan_iter(backend.broker.keys.jobs_glob("default"), count=1000):
        payload, run_after = client.hmget(key, "m", "r")
        if run_after is not None:
            seen[(orjson.loads(payload)["task"], int(run_after))] += 1
    return seen


def ticks(backend) -> int:
    """How many fire times of the every-second schedule have made a job so far."""
    return sum(1 for task, _ in fired_jobs(backend) if task == "tests.periodic_app.tasks.tick")


def test_every_fire_time_makes_one_job_while_workers_die_and_return(
    backend, start_worker, worker_env
):
    env = {**worker_env, "DJANGO_SETTINGS_MODULE": "tests.periodic_settings"}
    workers = [start_worker("--concurrency", "5", env=env, scheduler=True) for _ in range(3)]
    began = time.time()
    wait_until(lambda: ticks(backend) >= 6, 30, "the schedules firing")
    workers[0].send_signal(signal.SIGKILL)  # dies mid-schedule
    after_kill = ticks(backend)
    wait_until(lambda: ticks(backend) >= after_kill + 3, 30, "firing without the dead one")
    assert stop(workers[1]) == 0
    workers[1] = start_worker("--concurrency", "5", env=env, scheduler=True)  # restarted
    after_restart = ticks(backend)
    wait_until(lambda: ticks(backend) >= after_restart + 8, 30, "firing after the restart")
    for w in workers[1:]:
        assert stop(w) == 0
    ended = time.time()

    jobs = fired_jobs(backend)
    assert set(jobs.values()) == {1}, [k for k, n in jobs.items() if n > 1]
    ticks_ms = sorted(t for task, t in jobs if task == "tests.periodic_app.tasks.tick")
    tocks_ms = sorted(t for task, t in jobs if task == "tests.periodic_app.tasks.tock")
    # No gap: one job per second (and per 2 s) from the first fire to the last.
    assert ticks_ms == list(range(ticks_ms[0], ticks_ms[-1] + 1, 1000))
    assert tocks_ms == list(range(tocks_ms[0], tocks_ms[-1] + 1, 2000))
    assert ticks_ms[0] <= (began + 3) * 1000 and ticks_ms[-1] >= (ended - 3) * 1000
    assert len(ticks_ms) >= 17
