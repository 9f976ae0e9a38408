"""The PostgreSQL workload of bench/run.py (``--only pool``): the drain of jobs that each do
one read and one write (bench.tasks.read_write) by one runworker on a database of its own,
with psycopg's pool (DB_POOL_MAX_SIZE=10, project/settings.py) and with a connection per
job (DB_POOL_MAX_SIZE=0), one after the other, the order alternating with the run.

It needs a PostgreSQL server: BENCH_POSTGRES_URL, or DATABASE_URL when it names one
(postgres://user@host:port/any-database: a database is created and dropped per drain).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from bench.run import Harness

ROOT = Path(__file__).resolve().parent.parent
POOL_SIZE = 10
# Under PostgreSQL's default max_connections (100) without the pool, one connection a job.
CONCURRENCY = 50


def postgres_url(environ: dict[str, str]) -> str | None:
    url = environ.get("BENCH_POSTGRES_URL") or environ.get("DATABASE_URL") or ""
    return url if urlsplit(url).scheme in ("postgres", "postgresql") else None


class Throwaway:
    """A database created on the server of ``url``, dropped on exit."""

    def __init__(self, url: str) -> None:
        self.server = url
        self.name = f"bench_{uuid.uuid4().hex[:10]}"
        self.url = urlunsplit(urlsplit(url)._replace(path=f"/{self.name}"))

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.server, autocommit=True) as admin:
            admin.execute(statement)

    def __enter__(self) -> Throwaway:
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc: object) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


async def pool_workload(harness: Harness, server: str | None, jobs: int, run: int) -> dict:
    """Jobs/s with the pool and without (``pool_per_s``, ``no_pool_per_s``), and their
    ratio."""
    if server is None:
        raise ValueError("needs PostgreSQL: set BENCH_POSTGRES_URL (or DATABASE_URL) to "
                         "postgres://user@host:port/db")  # fmt: skip
    got = {}
    for pooled in (True, False) if run % 2 else (False, True):
        got[pooled] = await _drain(harness, server, jobs, pooled)
    return {"pool_per_s": got[True], "no_pool_per_s": got[False], "ratio": got[True] / got[False]}


async def _drain(harness: Harness, server: str, jobs: int, pooled: bool) -> float:
    with Throwaway(server) as database:
        env = {**harness.env, "DATABASE_URL": database.url,
               "DB_POOL_MAX_SIZE": str(POOL_SIZE if pooled else 0)}  # fmt: skip
        await asyncio.to_thread(
            subprocess.run, [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT, env=env, check=True, timeout=120,
        )  # fmt: skip
        await harness.clean()
        await harness.enqueue_many(harness.tasks.read_write, [], jobs)
        name = f"database-{'pool' if pooled else 'no-pool'}"
        process = harness.start_worker(name, CONCURRENCY, env=env)
        try:
            elapsed, _, _ = await harness.timed_drain(jobs, process, 1, 300)
        finally:
            harness.stop(process)
        await harness.clean()
    return jobs / elapsed


if __name__ == "__main__":
    sys.exit("run it through bench/run.py: python bench/run.py --only pool")
