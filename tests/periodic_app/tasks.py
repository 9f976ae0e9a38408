"""Periodic jobs for the scheduler's process test (tests/faults/test_periodic_workers.py);
an app of its own so that no other worker the tests start fires them."""

from django.tasks import task

from worker.periodic import periodic


@periodic(every=1)
@task()
async def tick() -> None:
    pass


@periodic(every=2, name="tock-every-2s", kwargs={"label": "tock"})
@task()
async def tock(label: str) -> str:
    return label
