"""Periodic jobs: schedule arithmetic (cron across day, month and DST boundaries), the
declaration, and the scheduler's once-per-fire-time and missed-fire rules on a real Redis."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.tasks import task_backends

from tests.engine import tasks
from worker import periodic as periodic_module
from worker.periodic import Cron, Every, Periodic, periodic
from worker.runtime.scheduler import Scheduler

PARIS = ZoneInfo("Europe/Paris")


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def fires(cron: Cron, start: datetime, n: int) -> list[datetime]:
    out, t = [], start
    for _ in range(n):
        t = cron.next_after(t)
        out.append(t.astimezone(PARIS))
    return out


def test_cron_across_a_day_and_a_month():
    cron = Cron("15 23 * * *", PARIS)
    assert fires(cron, paris(2026, 1, 30, 23, 15), 3) == [
        paris(2026, 1, 31, 23, 15), paris(2026, 2, 1, 23, 15), paris(2026, 2, 2, 23, 15)
    ]  # fmt: skip
    monthly = Cron("0 0 1 * *", PARIS)
    assert fires(monthly, paris(2026, 1, 15), 2) == [paris(2026, 2, 1), paris(2026, 3, 1)]
    leap = Cron("0 12 29 2 *", PARIS)
    assert fires(leap, paris(2026, 1, 1), 1) == [paris(2028, 2, 29, 12)]


def test_cron_across_dst_in_a_non_utc_zone():
    # 2026-03-29: Paris jumps from 02:00 to 03:00. 02:30 does not exist: it fires at 03:00.
    nightly = Cron("30 2 * * *", PARIS)
    spring = fires(nightly, paris(2026, 3, 28, 12), 3)
    assert spring == [
        paris(2026, 3, 29, 3, 0),
        paris(2026, 3, 30, 2, 30),
        paris(2026, 3, 31, 2, 30),
    ]
    assert spring[1] - spring[0] == timedelta(hours=23, minutes=30)
    # 2026-10-25: 02:00-03:00 happens twice. 02:30 fires once, on its first pass.
    autumn = fires(nightly, paris(2026, 10, 24, 12), 2)
    assert [t.astimezone(UTC) for t in autumn] == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)
    ]  # fmt: skip
    # Wall-clock hours keep their wall time across the change: 09:00 stays 09:00.
    morning = fires(Cron("0 9 * * 1-5", PARIS), paris(2026, 3, 27, 10), 2)
    assert morning == [paris(2026, 3, 30, 9), paris(2026, 3, 31, 9)]  # Monday, Tuesday


def test_last_fire_at_or_before():
    cron = Cron("*/15 * * * *", PARIS)
    assert cron.last_at_or_before(paris(2026, 5, 1, 10, 44, 59)) == paris(2026, 5, 1, 10, 30)
    assert cron.last_at_or_before(paris(2026, 5, 1, 10, 45)) == paris(2026, 5, 1, 10, 45)
    every = Every(300)
    moment = datetime(2026, 5, 1, 10, 7, 3, tzinfo=UTC)
    assert every.last_at_or_before(moment) == datetime(2026, 5, 1, 10, 5, tzinfo=UTC)
    assert every.next_after(moment) == datetime(2026, 5, 1, 10, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"every": 5, "cron": "* * * * *"}, "exactly one of every= or cron="),
        ({"cron": "* * *"}, "expected 5 fields"),
        ({"cron": "61 * * * *"}, "not a valid input"),
        ({"cron": "0 0 30 2 *"}, "never fires"),
        ({"every": 0}, ">= 1"),
        ({"every": 5, "missed": "later"}, "'skip' or 'run_once'"),
        ({"every": 5, "args": [1]}, "missing a required argument"),
    ],
)
def test_bad_declarations_are_clear_errors(options, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        periodic(**options)(tasks.add)


def job(schedule, missed="skip", name=None) -> Periodic:
    return Periodic(name or f"test-{id(schedule)}", tasks.add, schedule, (1, 2), {}, missed)


def queued(backend) -> list[str]:
    return backend.broker.queue("default").ids("ready", 0, -1)


async def test_each_fire_time_enqueues_one_job_however_many_schedulers(backend):
    every = job(Every(60))
    schedulers = [Scheduler(backend.broker, jobs=[every]) for _ in range(3)]
    now = datetime(2020, 1, 1, 12, 0, 5, tzinfo=UTC)
    answers = [await s.check(every, now) for s in schedulers]
    assert sorted(answers) == [0, 0, 2]
    [job_id] = queued(backend)
    result = await backend.aget_result(job_id)
    assert result.args == [1, 2]
    assert result.task.func is tasks.add.func
    fire = await backend.broker.aclient().hget(backend.broker.keys.job(job_id), "r")
    assert int(fire) == int(datetime(2020, 1, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
    # The next minute: one more job.
    later = now + timedelta(minutes=1)
    assert sorted([await s.check(every, later) for s in schedulers]) == [0, 0, 2]
    assert len(queued(backend)) == 2


@pytest.mark.parametrize(("missed", "runs"), [("skip", 0), ("run_once", 1)])
async def test_missed_fires_are_skipped_or_run_once_never_a_burst(backend, missed, runs):
    daily = job(Cron("0 6 * * *", UTC), missed=missed, name=f"daily-{missed}")
    first = datetime(2020, 1, 1, 6, 0, 1, tzinfo=UTC)
    assert await Scheduler(backend.broker, jobs=[daily]).check(daily, first) == 2
    # Every worker down from then until three days later, 09:00: three fires missed.
    back = datetime(2020, 1, 4, 9, 0, tzinfo=UTC)
    scheduler = Scheduler(backend.broker, jobs=[daily])
    assert await scheduler.check(daily, back) == (2 if runs else 1)
    assert len(queued(backend)) == 1 + runs
    assert (
        await Scheduler(backend.broker, jobs=[daily]).check(daily, back) == 0
    )  # handled, by anyone


@pytest.mark.parametrize("missed", ["skip", "run_once"])
async def test_a_new_schedule_does_not_run_for_times_before_it_existed(backend, missed):
    daily = job(Cron("0 6 * * *", UTC), missed=missed, name=f"new-{missed}")
    assert (
        await Scheduler(backend.broker, jobs=[daily]).check(
            daily, datetime(2020, 1, 1, 9, tzinfo=UTC)
        )
        == 3
    )
    assert queued(backend) == []


async def test_a_changed_schedule_takes_over_from_the_last_fire(backend):
    hourly = job(Cron("0 * * * *", UTC), name="edited")
    await Scheduler(backend.broker, jobs=[hourly]).check(
        hourly, datetime(2020, 1, 1, 10, 0, 1, tzinfo=UTC)
    )
    edited = job(Cron("30 * * * *", UTC), name="edited")  # deployed at 10:20
    scheduler = Scheduler(backend.broker, jobs=[edited])
    assert await scheduler.check(edited, datetime(2020, 1, 1, 10, 20, tzinfo=UTC)) == 0  # 09:30
    assert await scheduler.check(edited, datetime(2020, 1, 1, 10, 30, 1, tzinfo=UTC)) == 2
    assert len(queued(backend)) == 2


@pytest.fixture
def declared(monkeypatch):
    """``declared(job)``: a periodic job declared for this test only."""
    known = dict(periodic_module._schedules)
    monkeypatch.setattr(periodic_module, "_schedules", known)
    return lambda job: known.__setitem__(job.name, job)


def test_a_periodic_job_of_another_backend_is_left_to_it(settings, backend, declared):
    settings.TASKS = {**settings.TASKS, "second": settings.TASKS["default"]}
    theirs = tasks.add.using(backend="second")
    declared(Periodic("test-theirs", theirs, Every(60), (1, 2), {}, "skip"))
    declared(job(Every(60), name="test-mine"))
    assert "test-mine" in [j.name for j in backend.worker().periodic]
    assert "test-theirs" not in [j.name for j in backend.worker().periodic]
    assert "test-theirs" in [j.name for j in task_backends["second"].worker().periodic]


def test_a_periodic_job_of_a_task_refused_for_its_options_is_not_fired(backend, declared):
    from worker.task import Task

    wrong = Task(func=tasks.add.func, backend="default", max_attempts="3")
    declared(Periodic("test-wrong", wrong, Every(60), (1, 2), {}, "skip"))
    assert "test-wrong" not in [j.name for j in backend.worker().periodic]
