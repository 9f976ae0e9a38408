"""worker.db.operations.RunAsync: an async data migration (tests/asyncdjango/shop's 0002),
run by real ``manage.py migrate`` processes on a database of their own, SQLite or
PostgreSQL. Its async ORM calls are on the migration's connection, in its transaction: the
migration checks that itself, and a failure rolls back every write it made."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.asyncdjango.helpers import migrate
from worker.db.operations import RunAsync

pytestmark = pytest.mark.django_db  # the test database tells SQLite from PostgreSQL


def prices(database) -> list[Decimal]:
    """As Django reads them: SQLite keeps decimals as floating-point numbers."""
    rows = database.rows("SELECT price FROM shop_item ORDER BY id")
    return [Decimal(str(p)).quantize(Decimal("0.01")) for (p,) in rows]


def applied(database) -> list[str]:
    rows = database.rows("SELECT name FROM django_migrations WHERE app = 'shop' ORDER BY id")
    return [name for (name,) in rows]


def columns(database) -> set[str]:
    if hasattr(database, "path"):  # SQLite
        return {row[1] for row in database.rows("PRAGMA table_info(shop_item)")}
    query = "SELECT column_name FROM information_schema.columns WHERE table_name = 'shop_item'"
    return {name for (name,) in database.rows(query)}


@pytest.fixture
def items(process_database):
    """The database at shop's 0001 with three items priced in cents."""
    done = migrate(process_database, "shop", "0001")
    assert done.returncode == 0, done.stderr
    process_database.rows(
        "INSERT INTO shop_item (name, price) VALUES ('a', 1999), ('b', 250), ('c', 5)"
    )
    return process_database


def test_a_failing_async_migration_rolls_back_everything_it_wrote(items):
    failed = migrate(items, "shop", "0002", SHOP_MIGRATION_FAILS="1")

    assert failed.returncode == 1
    assert "RuntimeError: failing after fixing 3 items" in failed.stderr
    assert prices(items) == [Decimal("1999"), Decimal("250"), Decimal("5")]  # none divided
    assert "checked" not in columns(items)  # the schema change of the same migration too
    assert applied(items) == ["0001_initial"]


def test_an_async_migration_runs_forwards_and_backwards(items):
    forwards = migrate(items, "shop", "0002")
    assert forwards.returncode == 0, forwards.stderr
    assert prices(items) == [Decimal("19.99"), Decimal("2.50"), Decimal("0.05")]
    assert items.rows("SELECT checked FROM shop_item") == [(True,)] * 3
    assert applied(items) == ["0001_initial", "0002_prices_in_units"]

    backwards = migrate(items, "shop", "0001")
    assert backwards.returncode == 0, backwards.stderr
    assert prices(items) == [Decimal("1999"), Decimal("250"), Decimal("5")]
    assert applied(items) == ["0001_initial"]


def test_it_deconstructs_to_its_own_functions_and_says_what_it_is():
    async def forwards(apps, schema_editor) -> None: ...

    operation = RunAsync(forwards, RunAsync.noop, atomic=True)
    name, args, kwargs = operation.deconstruct()
    assert (name, args) == ("RunAsync", [])
    assert kwargs == {"code": forwards, "reverse_code": RunAsync.noop, "atomic": True}
    assert operation.describe() == "Raw async Python operation"
    assert operation.reversible


def test_a_function_that_is_not_callable_is_refused():
    with pytest.raises(ValueError, match="must be supplied with a callable"):
        RunAsync("shop.fix")
