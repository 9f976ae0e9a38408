"""PostgreSQL's connection pool (project/settings.py: psycopg 3's, through Django) under a
real ``runworker``: a hundred jobs at once share ten connections, and a job that gets none
within the pool's timeout fails with DatabasePoolExhausted and is retried."""

from __future__ import annotations

import psycopg_pool
import pytest
from django.db.utils import OperationalError

from tests.asyncdjango.helpers import manage, worker_env
from tests.asyncdjango.shop import tasks
from tests.processes import runworker, stop, wait_until
from worker.db.pool import explained
from worker.exceptions import DatabasePoolExhausted
from worker.ops import Ops

SESSIONS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND pid <> pg_backend_pid()"
)


@pytest.fixture
def shop_db(process_database):
    done = manage("migrate", "--no-input", database=process_database)
    assert done.returncode == 0, done.stderr
    return process_database


@pytest.mark.postgres
@pytest.mark.django_db
def test_100_slots_run_2000_database_jobs_on_a_pool_of_10(
    shop_db, backend, redis_url, tasks_prefix, tmp_path
):
    total = 2000
    for n in range(total):
        tasks.write_item.enqueue(n)
    env = worker_env(shop_db, redis_url, tasks_prefix, DB_POOL_MAX_SIZE="10")
    log = tmp_path / "worker.log"
    worker = runworker(env, log, "--no-scheduler", "--concurrency", "100")
    peak = 0

    def all_written() -> bool:
        nonlocal peak
        peak = max(peak, shop_db.scalar(SESSIONS))
        return shop_db.scalar("SELECT count(*) FROM shop_item") == total

    try:
        wait_until(all_written, 180, "every job's item")
        wait_until(lambda: Ops(backend).stats("default").running == 0, 30, "the last acks")
        stats = Ops(backend).stats("default")
    finally:
        assert stop(worker) == 0
    output = log.read_text()
    assert "too many clients" not in output, output
    assert peak <= 10  # the worker's connections, however many jobs ran at once
    assert shop_db.scalar("SELECT count(DISTINCT name) FROM shop_item") == total
    assert stats.counters["succeeded"] == total  # no job lost, none failed
    assert stats.counters["failed"] == stats.counters["retried"] == 0
    assert stats.ready == stats.delayed == stats.dead == 0


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_job_without_a_connection_in_time_fails_clearly_and_is_retried(
    shop_db, backend, redis_url, tasks_prefix, tmp_path
):
    env = worker_env(shop_db, redis_url, tasks_prefix, DB_POOL_MAX_SIZE="1",
                     DB_POOL_TIMEOUT="0.5")  # fmt: skip
    worker = runworker(env, tmp_path / "worker.log", "--no-scheduler", "--concurrency", "2")
    try:
        holder = tasks.hold_connection.enqueue(3)
        has_it = "SELECT count(*) FROM shop_item WHERE name = 'holding'"
        wait_until(lambda: shop_db.scalar(has_it), 30, "the job holding the one connection")
        waiter = tasks.count_items.enqueue()
        for result in (holder, waiter):
            wait_until(lambda r=result: r.refresh() or r.is_finished, 60, "both jobs")
    finally:
        assert stop(worker) == 0
    assert (holder.status, holder.attempts) == ("SUCCESSFUL", 1)
    assert waiter.status == "SUCCESSFUL" and waiter.attempts > 1
    errors = {e.exception_class_path for e in waiter.errors}
    assert errors == {"worker.exceptions.DatabasePoolExhausted"}
    text = waiter.errors[0].traceback
    assert "no database connection within the pool's timeout (couldn't get a connection " \
        "after 0.50 sec; DATABASES['default'] pool max_size 1, timeout 0.5s)" in text  # fmt: skip
    assert "psycopg_pool.PoolTimeout" in text  # the cause, below


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_only_the_pools_timeout_is_explained(settings):
    settings.DATABASES = {"default": {"OPTIONS": {"pool": {"max_size": 4, "timeout": 2}}}}
    try:
        try:
            raise psycopg_pool.PoolTimeout("couldn't get a connection after 2.00 sec")
        except psycopg_pool.PoolTimeout as e:
            raise OperationalError(str(e)) from e  # as Django's DatabaseErrorWrapper does
    except OperationalError as e:
        wrapped = e
    explanation = explained(wrapped)
    assert isinstance(explanation, DatabasePoolExhausted)
    assert explanation.__cause__ is wrapped
    assert explanation.__traceback__ is wrapped.__traceback__
    assert "(couldn't get a connection after 2.00 sec; DATABASES['default'] pool max_size 4, " \
        "timeout 2s)" in str(explanation)  # fmt: skip
    other = OperationalError("connection refused")
    assert explained(other) is other
