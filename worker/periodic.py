"""Periodic jobs: declaring them, and the arithmetic of their fire times.

    from django.tasks import task
    from worker.periodic import periodic

    @periodic(every=300)                               # every 5 minutes
    @task()
    async def sync_orders() -> dict: ...

    @periodic(cron="0 6 * * *", missed="run_once")     # daily at 06:00, TIME_ZONE
    @task(queue_name="reports")
    async def daily_report() -> dict: ...

Every ``runworker`` process runs the scheduler (worker/scheduler.py); Redis makes each fire
time enqueue one job however many run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from huey import crontab

from worker.task import Task, arguments_error

MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
# How far a cron expression is searched for its next or last fire (Feb 29 needs 4 years).
HORIZON = timedelta(days=4 * 366 + 1)

Missed = Literal["skip", "run_once"]


@dataclass(frozen=True, slots=True)
class Every:
    """Every ``seconds``, at multiples of it since the epoch: every worker agrees on the
    fire times without talking to the others."""

    seconds: int

    def __post_init__(self) -> None:
        if not isinstance(self.seconds, int) or self.seconds < 1:
            raise ImproperlyConfigured("every= must be a whole number of seconds >= 1")

    def next_after(self, moment: datetime) -> datetime:
        step = math.floor(moment.timestamp() / self.seconds) + 1
        return datetime.fromtimestamp(step * self.seconds, UTC)

    def last_at_or_before(self, moment: datetime) -> datetime:
        step = math.floor(moment.timestamp() / self.seconds)
        return datetime.fromtimestamp(step * self.seconds, UTC)

    @property
    def period(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def __str__(self) -> str:
        return f"every {self.seconds}s"

    def in_words(self) -> str:
        """In words: "every 5 minutes", "every 90 seconds", "every day"."""
        for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
            if self.seconds % size == 0:
                return _every(self.seconds // size, unit)
        return _every(self.seconds, "second")


@dataclass(frozen=True, slots=True)
class Cron:
    """A five-field cron expression (minute hour day month day-of-week, 0 = Sunday), read by
    huey's crontab, in the wall time of ``tz``. A wall time that a DST change skips fires
    at the first minute after the jump; one that happens twice fires once (the first)."""

    expression: str
    tz: ZoneInfo
    matches: Any = field(init=False, repr=False, compare=False)
    days: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = self.expression.split()
        if len(fields) != 5:
            raise ImproperlyConfigured(
                f"cron {self.expression!r}: expected 5 fields (minute hour day month weekday)"
            )
        try:
            object.__setattr__(self, "matches", crontab(*fields, strict=True))
            # The date part alone, to pass over whole days that cannot fire.
            object.__setattr__(self, "days", crontab("*", "*", *fields[2:], strict=True))
        except ValueError as e:
            raise ImproperlyConfigured(f"cron {self.expression!r}: {e}") from None
        self.next_after(datetime.now(UTC))  # one that never fires (Feb 30) fails here

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(), self.tz).astimezone(UTC)

    def _fires_at(self, minute: datetime) -> bool:
        """Whether the UTC ``minute`` is a fire time."""
        wall = minute.astimezone(self.tz)
        if wall.fold:  # the second pass through a repeated wall hour
            return False
        if self.matches(wall):
            return True
        # Wall minutes skipped by a jump forward (DST) fire at the first minute after it.
        before = (minute - MINUTE).astimezone(self.tz).replace(tzinfo=None)
        skipped = before + MINUTE
        naive = wall.replace(tzinfo=None)
        while skipped < naive:
            if self.matches(skipped):
                return True
            skipped += MINUTE
        return False

    def next_after(self, moment: datetime) -> datetime:
        minute = moment.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE
        end = minute + HORIZON
        while minute < end:
            day = minute.astimezone(self.tz).date()
            if not self.days(day):
                # On to the next day (an hour early, in case midnight is a DST jump).
                minute = max(minute + MINUTE, self._midnight(day + DAY) - HOUR)
            elif self._fires_at(minute):
                return minute
            else:
                minute += MINUTE
        raise ImproperlyConfigured(f"cron {self.expression!r} never fires")

    def last_at_or_before(self, moment: datetime) -> datetime | None:
        minute = moment.astimezone(UTC).replace(second=0, microsecond=0)
        end = minute - HORIZON
        while minute > end:
            day = minute.astimezone(self.tz).date()
            if not self.days(day):
                minute = min(minute - MINUTE, self._midnight(day) + HOUR - MINUTE)
            elif self._fires_at(minute):
                return minute
            else:
                minute -= MINUTE
        return None

    @property
    def period(self) -> timedelta:
        return MINUTE

    def __str__(self) -> str:
        return f"cron {self.expression} ({self.tz.key})"

    def in_words(self) -> str:
        """The common shapes of cron in words ("every day at 06:00 (Europe/Paris)"); any
        other, as the expression itself."""
        minute, hour, day, month, weekday = self.expression.split()
        when = None
        if (day, month) == ("*", "*"):
            days = "every day" if weekday == "*" else _weekdays(weekday)
            if days is not None:
                when = _at(minute, hour, days)
        elif month == "*" and weekday == "*" and day.isdigit():
            when = _at(minute, hour, f"on day {day} of every month")
        if when is None:
            return f"cron {self.expression} ({self.tz.key})"
        return f"{when} ({self.tz.key})" if " at " in when else when  # a wall time


def _every(n: int, unit: str) -> str:
    return f"every {unit}" if n == 1 else f"every {n} {unit}s"


_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def _weekdays(field: str) -> str | None:
    """Days in words: "on weekdays", "on Monday, Wednesday"; None: another shape."""
    if field == "1-5":
        return "on weekdays"
    names = []
    for part in field.split(","):
        first, _, last = part.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            return None
        if int(first) > 7 or (last and int(last) > 7):
            return None
        name = _DAY_NAMES[int(first) % 7]
        names.append(f"{name} to {_DAY_NAMES[int(last) % 7]}" if last else name)
    return "on " + ", ".join(names)


def _at(minute: str, hour: str, days: str) -> str | None:
    """When in the day, with ``days`` before it; None: a shape not put in words."""
    if minute == "*" and hour == "*":
        return "every minute" if days == "every day" else f"every minute {days}"
    if minute.startswith("*/") and minute[2:].isdigit() and hour == "*":
        every = _every(int(minute[2:]), "minute")
        return every if days == "every day" else f"{every} {days}"
    if not minute.isdigit():
        return None
    if hour == "*":
        return f"every hour at minute {int(minute)}" + ("" if days == "every day" else f" {days}")
    if hour.isdigit():
        return f"{days} at {int(hour):02d}:{int(minute):02d}"
    return None


@dataclass(frozen=True, slots=True)
class Periodic:
    """One periodic job: ``task`` called with ``args``/``kwargs`` at each fire time."""

    name: str
    task: Task
    schedule: Every | Cron
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    # All workers down over a fire time: "skip" it, or "run_once" on return (never more).
    missed: Missed = "skip"

    @property
    def grace(self) -> timedelta:
        """How late a fire may still count as on time (the scheduler wakes at fire times,
        so only a worker that was not running at all is later than this)."""
        return min(timedelta(seconds=60), max(self.schedule.period, timedelta(seconds=2)))

    def next_fire(self, after: datetime) -> datetime:
        return self.schedule.next_after(after)

    def describe(self) -> str:
        return f"{self.schedule}, missed: {self.missed}"


_schedules: dict[str, Periodic] = {}


def periodic(
    *,
    every: int | None = None,
    cron: str | None = None,
    tz: str | None = None,
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: dict[str, Any] | None = None,
    missed: Missed = "skip",
    name: str | None = None,
) -> Callable[[Task], Task]:
    """Run the decorated task (``@periodic`` goes above ``@task``) on a schedule: ``every``
    N seconds, or at each time of a ``cron`` expression in ``tz`` (default TIME_ZONE)."""
    if (every is None) == (cron is None):
        raise ImproperlyConfigured("@periodic takes exactly one of every= or cron=")
    if missed not in ("skip", "run_once"):
        raise ImproperlyConfigured("@periodic missed= must be 'skip' or 'run_once'")
    schedule: Every | Cron
    if every is not None:
        schedule = Every(every)
    else:
        assert cron is not None
        schedule = Cron(cron, ZoneInfo(tz or settings.TIME_ZONE))

    def register(task: Task) -> Task:
        if not isinstance(task, Task):
            raise ImproperlyConfigured("@periodic goes above @task (it takes a Task)")
        if error := arguments_error(task, list(args), kwargs or {}):
            raise ImproperlyConfigured(f"@periodic: {error}")
        job = Periodic(name or task.module_path, task, schedule, tuple(args), kwargs or {}, missed)
        known = _schedules.get(job.name)
        if known is not None and known.task.func is not task.func:
            raise ImproperlyConfigured(f"two periodic jobs are named {job.name!r}; pass name=")
        _schedules[job.name] = job
        return task

    return register


def schedules() -> list[Periodic]:
    """Every periodic job this project declares."""
    return list(_schedules.values())
