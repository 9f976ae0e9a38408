"""worker.backfill under real processes: ``manage.py migrate`` starts a backfill (it only
enqueues), ``runworker`` processes do it chunk by chunk, ``manage.py backfill`` shows it
and waits for it, ``jobs status`` shows it. A worker SIGKILLed midway loses no row and
processes none twice, with a function that is not idempotent by nature."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.asyncdjango.helpers import manage, migrate, worker_env
from tests.processes import ROOT, runworker, stop, wait_until
from worker.ops import Ops

ADD_ONE = "tests.asyncdjango.shop.backfills.add_one"
CUSTOMER_KEYS = "jobs.tasks.fill_customer_keys"


def backfill_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "backfill", *args], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.postgres
@pytest.mark.django_db
def test_200000_rows_with_a_worker_killed_midway_each_processed_once(
    process_database, backend, redis_url, tasks_prefix, tmp_path
):
    db = process_database
    total, chunks = 200_000, 200
    assert migrate(db, "shop", "0002").returncode == 0
    db.rows(
        "INSERT INTO shop_item (name, price, checked) "
        f"SELECT 'item-' || g, g, false FROM generate_series(1, {total}) g"
    )
    env = worker_env(db, redis_url, tasks_prefix, TASKS_LEASE="2")
    done = manage("migrate", "--no-input", database=db, REDIS_URL=redis_url,
                  TASKS_PREFIX=tasks_prefix)  # fmt: skip
    assert done.returncode == 0, done.stderr  # shop 0003: RunBackfill(add_one)
    assert db.scalar("SELECT count(*) FROM worker_backfill_backfillchunk") == 0  # only enqueued
    ops = Ops(backend)

    victim = runworker(env, tmp_path / "victim.log", "--no-scheduler", "--concurrency", "8")
    try:
        wait_until(lambda: (s := ops.backfill(ADD_ONE)) and s.done >= chunks // 3, 120, "a third")
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        client = backend.broker.sync
        leases = list(client.scan_iter(backend.broker.keys.wip("default", "*")))
        in_flight = sum(client.hlen(k) for k in leases)
        assert in_flight > 0, "the kill should catch chunks in flight"
        assert ops.backfill(ADD_ONE).done < chunks
    finally:
        if victim.poll() is None:
            victim.kill()

    survivor = runworker(env, tmp_path / "survivor.log", "--no-scheduler", "--concurrency", "8")
    try:
        waited = backfill_command(env, ADD_ONE, "--wait", "--timeout", "240", "--interval", "0.2")
        assert waited.returncode == 0, waited.stderr
        assert waited.stdout.splitlines()[-1].startswith(
            f"{ADD_ONE}: done, {chunks} chunks, 200,000 rows in "
        )
    finally:
        assert stop(survivor) == 0

    # Every row once: its price went from n to n + 1, never n + 2.
    wrong = "SELECT count(*) FROM shop_item WHERE price <> split_part(name, '-', 2)::int + 1"
    assert db.scalar(wrong) == 0
    marks = db.rows(
        "SELECT count(*), count(done_at), sum(rows) FROM worker_backfill_backfillchunk c "
        f"JOIN worker_backfill_backfillrun r ON r.id = c.run_id WHERE r.name = '{ADD_ONE}'"
    )
    assert marks == [(chunks, chunks, total)]
    state = ops.backfill(ADD_ONE)
    assert (state.state, state.chunks, state.done, state.rows) == ("done", chunks, chunks, total)
    assert ops.stats("default").counters["lost"] >= 1  # chunks the kill cut short, run again


@pytest.mark.django_db
def test_the_reference_backfill_fills_customer_keys_and_shows_in_status(
    process_database, backend, redis_url, tasks_prefix, tmp_path
):
    db = process_database
    assert migrate(db, "jobs", "0003").returncode == 0
    values = ", ".join(
        f"('O-{n}', '{name}', 1, 'paid', '2026-01-01', '2026-01-01')"
        for n, name in enumerate(["Ada  Lovelace", "ADA LOVELACE", "Straße"] * 700)
    )
    db.rows(
        "INSERT INTO jobs_order (external_id, customer, total, status, created_at, updated_at) "
        f"VALUES {values}"
    )
    env = worker_env(db, redis_url, tasks_prefix)
    done = manage("migrate", "--no-input", database=db, REDIS_URL=redis_url,
                  TASKS_PREFIX=tasks_prefix)  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = backfill_command(env, CUSTOMER_KEYS).stdout
    assert shown == f"{CUSTOMER_KEYS}: run 1 not planned yet (its plan job waits for a worker)\n"

    burst = runworker(env, tmp_path / "worker.log", "--no-scheduler", "--burst")
    assert burst.wait(120) == 0
    keys = db.rows("SELECT customer_key, count(*) FROM jobs_order GROUP BY 1 ORDER BY 1")
    assert keys == [("ada lovelace", 1400), ("strasse", 700)]

    shown = backfill_command(env, CUSTOMER_KEYS, "--wait")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"{CUSTOMER_KEYS}: done, 3 chunks, 2,100 rows in ")
    status = subprocess.run(
        [sys.executable, "manage.py", "jobs", "status", "--json"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    listed = sorted(Ops(backend).backfills(), key=lambda b: b.name)
    assert [(b.name, b.model, b.state, b.chunks, b.done, b.rows) for b in listed] == [
        (CUSTOMER_KEYS, "jobs.Order", "done", 3, 3, 2100),
        (ADD_ONE, "shop.Item", "done", 0, 0, 0),  # (the shop's table is empty: done at once)
    ]
    assert f'"name": "{CUSTOMER_KEYS}"' in status.stdout

    # Started again: its chunks are done, none runs again.
    again = backfill_command(env, CUSTOMER_KEYS, "--start", "--wait")
    assert again.returncode == 0, again.stderr
    burst = runworker(env, tmp_path / "again.log", "--no-scheduler", "--burst")
    assert burst.wait(120) == 0
    assert Ops(backend).backfill(CUSTOMER_KEYS).rows == 2100


@pytest.mark.django_db
def test_a_migration_reversed_and_applied_again_runs_its_backfill_again(
    process_database, backend, redis_url, tasks_prefix, tmp_path
):
    db = process_database
    assert migrate(db, "jobs", "0003").returncode == 0
    values = ", ".join(
        f"('O-{n}', 'Ada LOVELACE', 1, 'paid', '2026-01-01', '2026-01-01')" for n in range(1500)
    )
    db.rows(
        "INSERT INTO jobs_order (external_id, customer, total, status, created_at, updated_at) "
        f"VALUES {values}"
    )
    env = worker_env(db, redis_url, tasks_prefix)
    on_redis = {"REDIS_URL": redis_url, "TASKS_PREFIX": tasks_prefix}
    unfilled = "SELECT count(*) FROM jobs_order WHERE customer_key IS NULL"

    def deploy(target: str | None = None) -> None:
        done = migrate(db, "jobs", target, **on_redis) if target else manage(
            "migrate", "--no-input", database=db, **on_redis
        )  # fmt: skip
        assert done.returncode == 0, done.stderr

    def burst(log: str) -> None:
        assert runworker(env, tmp_path / log, "--no-scheduler", "--burst").wait(120) == 0

    def latest_run() -> int | None:
        return db.scalar(
            f"SELECT max(id) FROM worker_backfill_backfillrun WHERE name = '{CUSTOMER_KEYS}'"
        )

    deploy()  # 0004: the column, and a run of its backfill
    first = latest_run()
    burst("first.log")
    assert db.scalar(unfilled) == 0
    assert Ops(backend).backfill(CUSTOMER_KEYS).run == first

    deploy("0003")  # rolled back: the column is dropped, the run with it
    assert latest_run() is None
    assert Ops(backend).backfill(CUSTOMER_KEYS) is None
    shown = backfill_command(env, CUSTOMER_KEYS)
    assert shown.returncode == 1 and f"{CUSTOMER_KEYS} was never started" in shown.stderr
    deploy()  # a second run, whose plan job waits for a worker...
    second = latest_run()
    deploy("0003")  # ...when the deploy is rolled back again
    deploy()  # a third run
    third = latest_run()
    burst("again.log")
    assert db.scalar(unfilled) == 0  # the column is new: filled again
    waited = backfill_command(env, CUSTOMER_KEYS, "--wait", "--timeout", "60")
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.startswith(f"{CUSTOMER_KEYS}: done, 2 chunks, 1,500 rows in ")
    state = Ops(backend).backfill(CUSTOMER_KEYS)
    assert (state.run, state.done, state.rows) == (third, 2, 1500)
    plans = Ops(backend).jobs("default", "successful", "worker.backfill.tasks.plan_backfill")
    said = {job.args[1]: job.return_value for job in plans if job.args[0] == CUSTOMER_KEYS}
    assert said == {
        first: {"run": first, "chunks": 2, "enqueued": 2},
        second: {
            "run": second,
            "skipped": "its run is gone (the migration that started it was reversed)",
        },
        third: {"run": third, "chunks": 2, "enqueued": 2},
    }


@pytest.mark.django_db
def test_a_backfill_of_an_empty_table_is_done_once_its_plan_has_run(
    process_database, backend, redis_url, tasks_prefix, tmp_path
):
    db = process_database
    env = worker_env(db, redis_url, tasks_prefix)
    done = manage("migrate", "--no-input", database=db, REDIS_URL=redis_url,
                  TASKS_PREFIX=tasks_prefix)  # fmt: skip
    assert done.returncode == 0, done.stderr
    burst = runworker(env, tmp_path / "worker.log", "--no-scheduler", "--burst")
    assert burst.wait(120) == 0
    waited = backfill_command(env, ADD_ONE, "--wait", "--timeout", "60")
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.startswith(f"{ADD_ONE}: done, 0 chunks, 0 rows in ")
