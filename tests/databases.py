"""A database of their own for the processes a test starts (migrate, runworker, uvicorn): a
temporary SQLite file, or a fresh PostgreSQL database when the suite runs on PostgreSQL
(pytest-django's in-memory SQLite test database is invisible to other processes). The test
reads and writes it with plain SQL, never through the ORM (which is on the test database)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection


class SqliteFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{quote(str(path))}"

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """The rows of ``query`` (a statement that writes is committed)."""
        with closing(sqlite3.connect(self.path, timeout=20)) as db, db:
            return db.execute(query).fetchall()

    def scalar(self, query: str) -> Any:
        return self.rows(query)[0][0]


class PostgresDatabase:
    """A database created for the test on the suite's PostgreSQL server, dropped after it."""

    def __init__(self) -> None:
        import psycopg
        from psycopg import sql

        self._sql = sql
        conf = settings.DATABASES["default"]
        self._params = {
            "user": conf.get("USER") or None,
            "password": conf.get("PASSWORD") or None,
            "host": conf.get("HOST") or None,
            "port": conf.get("PORT") or None,
        }
        self.name = f"e2e_{uuid.uuid4().hex[:12]}"
        # Any database of the server will do to create another: the test database exists.
        self._admin = psycopg.connect(dbname=conf["NAME"], autocommit=True, **self._params)
        self._admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        self._reader = None
        user = quote(conf.get("USER") or "", safe="")
        password = f":{quote(conf['PASSWORD'], safe='')}" if conf.get("PASSWORD") else ""
        credentials = f"{user}{password}@" if user else ""
        port = f":{conf['PORT']}" if conf.get("PORT") else ""
        self.url = f"postgres://{credentials}{conf.get('HOST') or ''}{port}/{self.name}"

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """The rows of ``query`` (autocommit: a statement that writes is committed)."""
        import psycopg

        if self._reader is None:
            self._reader = psycopg.connect(dbname=self.name, autocommit=True, **self._params)
        cursor = self._reader.execute(query)
        return cursor.fetchall() if cursor.description else []

    def scalar(self, query: str) -> Any:
        return self.rows(query)[0][0]

    def drop(self) -> None:
        if self._reader is not None:
            self._reader.close()
        statement = "DROP DATABASE IF EXISTS {} WITH (FORCE)"
        self._admin.execute(self._sql.SQL(statement).format(self._sql.Identifier(self.name)))
        self._admin.close()


@pytest.fixture
def process_database(tmp_path) -> Iterator[SqliteFile | PostgresDatabase]:
    if connection.vendor == "postgresql":
        database = PostgresDatabase()
        try:
            yield database
        finally:
            database.drop()
    else:
        yield SqliteFile(tmp_path / "e2e.sqlite3")
