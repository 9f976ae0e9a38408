"""Database connections in the worker are handled as Django handles them per request."""

import pytest
from django.db import connection

from tests.engine import tasks
from tests.engine.helpers import finished

pytestmark = pytest.mark.django_db(transaction=True)


def other_connections() -> int:
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]
    finally:
        connection.close()


def open_elsewhere() -> int:
    """Connections to the test database in use by other threads: checked out of the pool
    (project/settings.py has one on PostgreSQL unless DB_POOL_MAX_SIZE=0), else open."""
    if connection.pool is None:
        return other_connections()
    connection.close()  # this thread's goes back to the pool
    stats = connection.pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


async def test_orm_jobs_run_concurrently(run_worker):
    results = [await tasks.db_job.aenqueue() for _ in range(30)]
    async with run_worker(concurrency=5):
        for r in results:
            await finished(r)
    assert all(r.status == "SUCCESSFUL" for r in results)


@pytest.mark.postgres
async def test_each_job_gets_a_fresh_connection_and_none_leak_on_postgresql(run_worker):
    # (An in-memory SQLite test database is never closed by Django, hence PostgreSQL.)
    from asgiref.sync import sync_to_async

    before = await sync_to_async(open_elsewhere)()
    results = [await tasks.db_job.aenqueue() for _ in range(50)]
    async with run_worker(concurrency=10):
        for r in results:
            await finished(r)
        during = await sync_to_async(open_elsewhere)()
    # CONN_MAX_AGE = 0: closed (with a pool: handed back) after each job, as after each
    # request; none found open.
    assert [r.return_value for r in results] == [False] * 50
    assert during <= before
