"""Declaring backfills and the migration operation: mistakes are told where they are made."""

from types import SimpleNamespace

import pytest
from django.db import connection, models
from django.db.migrations.state import ProjectState

from jobs.models import Order
from worker.backfill import backfill
from worker.backfill.operations import RunBackfill
from worker.backfill.registry import lookup


class Coupon(models.Model):
    code = models.CharField(max_length=20, primary_key=True)

    class Meta:
        app_label = "jobs"
        managed = False


def test_the_reference_backfill_is_declared_by_its_module_path():
    declared = lookup("jobs.tasks.fill_customer_keys")
    assert (declared.model, declared.chunk_size, declared.label) == (Order, 1000, "jobs.Order")
    where = 'WHERE ("jobs_order"."id" >= 1 AND "jobs_order"."id" <= 1000)'
    assert str(declared.rows(1, 1000).query).endswith(f'{where} ORDER BY "jobs_order"."id" ASC')


def test_an_unknown_name_is_refused_with_the_close_ones():
    with pytest.raises(LookupError, match=r"did you mean jobs\.tasks\.fill_customer_keys\?"):
        lookup("jobs.tasks.fill_customer_key")


def test_chunks_need_an_integer_primary_key():
    with pytest.raises(TypeError, match=r"jobs\.Coupon's is a CharField"):
        backfill(Coupon)


@pytest.mark.parametrize("size", [0, -5, 2.5, True])
def test_a_chunk_size_must_be_a_whole_number(size):
    with pytest.raises(ValueError, match="chunk_size must be a whole number >= 1"):
        backfill(Order, chunk_size=size)


def test_backfill_takes_a_model_class():
    with pytest.raises(TypeError, match=r"takes a model class, not 'jobs\.Order'"):
        backfill("jobs.Order")


def test_the_operation_takes_a_name_and_deconstructs_to_it():
    operation = RunBackfill("jobs.tasks.fill_customer_keys")
    assert operation.deconstruct() == ("RunBackfill", ["jobs.tasks.fill_customer_keys"], {})
    assert operation.describe() == "Start the backfill jobs.tasks.fill_customer_keys"
    assert operation.migration_name_fragment == "backfill_fill_customer_keys"
    with pytest.raises(TypeError, match="takes the backfill's name"):
        RunBackfill(lookup("jobs.tasks.fill_customer_keys").function)


def test_a_migration_whose_backfill_function_is_gone_says_what_to_do():
    editor = SimpleNamespace(connection=connection)  # all the operation reads of it
    with pytest.raises(LookupError, match="delete the operation from the migration rather"):
        RunBackfill("jobs.tasks.gone").database_forwards(
            "jobs", editor, ProjectState(), ProjectState()
        )
