"""Five-field cron expressions (minute hour day-of-month month day-of-week), numeric.

Each field is `*` or a comma list of `N`, `A-B`, `*/S`, `A-B/S` or `N/S` (N up to the
maximum, every S). Day of week runs 0-7 with both 0 and 7 for Sunday. As in Vixie
cron, when both day fields are restricted, a day matching either of them fires.
Times are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SETTING = "redis-ha:backupSchedule"
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_ALLOWED = "five fields (minute hour day-of-month month day-of-week) of numbers, *, lists a,b, ranges a-b and steps /n"


class ScheduleError(ValueError):
    pass


def _field(text: str, name: str, low: int, high: int, expression: str) -> frozenset[int]:
    def fail(why: str) -> ScheduleError:
        return ScheduleError(f"{SETTING} {expression!r}: the {name} field {text!r} {why}; allowed: {_ALLOWED}")

    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise fail(f"has a bad step {step_text!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            if not (first.isdigit() and last.isdigit()):
                raise fail(f"has a bad range {base!r}")
            start, end = int(first), int(last)
            if start > end:
                raise fail(f"has a range {base!r} that runs backwards")
        elif base.isdigit():
            start = int(base)
            end = high if step_text else start
        else:
            raise fail(f"has {base!r}, which is not a number" if base else "has an empty item")
        if start < low or end > high:
            raise fail(f"is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def _day_matches(self, moment: datetime) -> bool:
        if moment.month not in self.months:
            return False
        weekday = (moment.weekday() + 1) % 7  # Python: Monday 0; cron: Sunday 0
        day_ok, weekday_ok = moment.day in self.days, weekday in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def matches(self, moment: datetime) -> bool:
        return moment.minute in self.minutes and moment.hour in self.hours and self._day_matches(moment)

    def next_after(self, moment: datetime) -> datetime:
        """The first whole minute strictly after `moment` that the schedule fires at."""
        moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
        start = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        for _ in range(366 * 8):  # a 29 February on a given weekday comes within 28 years; cap far lower
            if self._day_matches(day):
                for hour in hours:
                    for minute in minutes:
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        raise ScheduleError(f"{SETTING} {self.expression!r} never fires within eight years")


def parse(expression: str) -> Schedule:
    fields = expression.split()
    if len(fields) != 5:
        raise ScheduleError(f"{SETTING} {expression!r} has {len(fields)} fields; allowed: {_ALLOWED}")
    parsed = [_field(text, *spec, expression) for text, spec in zip(fields, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in parsed[4])
    schedule = Schedule(
        expression,
        parsed[0],
        parsed[1],
        parsed[2],
        parsed[3],
        weekdays,
        days_restricted=fields[2] != "*",
        weekdays_restricted=fields[4] != "*",
    )
    possible = any(day <= _longest(month) for month in schedule.months for day in schedule.days)
    if not possible and not schedule.weekdays_restricted:
        raise ScheduleError(f"{SETTING} {expression!r} names no day that exists in its months")
    return schedule


def _longest(month: int) -> int:
    return 29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31


def next_fire(expression: str, after: datetime | None = None) -> datetime:
    return parse(expression).next_after(after or datetime.now(UTC))
