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

    before = await sync_to_async(other_connections)()
    results = [await tasks.db_job.aenqueue() for _ in range(50)]
    async with run_worker(concurrency=10):
        for r in results:
            await finished(r)
        during = await sync_to_async(other_connections)()
    # CONN_MAX_AGE = 0: closed after each job, as after each request; none found open.
    assert [r.return_value for r in results] == [False] * 50
    assert during <= before
