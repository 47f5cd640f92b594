"""Working time (工作时间): which days are work days, work hours, and deadlines counted in them.

Pure rules: no Flask, no database. Which days are work days is given to ``WorkCalendar``
as a function (``services/calendar.py`` builds it from admin overrides, the
``chinesecalendar`` package's holidays and make-up work days, and weekdays).

A deadline ``minutes`` after ``start``:

- natural time: ``start + minutes``;
- working time: the instant at which ``minutes`` of work periods on work days have passed
  since ``start`` (a start outside work time counts from the next work period). Zero
  minutes is ``start`` itself.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

NATURAL, WORKING = "natural", "working"
# A calendar without a single work day in this many days in a row is a mistake, not a calendar.
MAX_IDLE_DAYS = 60

_PERIOD = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class CalendarError(ValueError):
    """Work hours that do not parse, or a calendar without work days."""


def parse_work_hours(text: str) -> tuple[tuple[time, time], ...]:
    """``"08:30-12:00,13:30-17:30"`` → ordered, non-overlapping (start, end) periods of a day."""
    periods = []
    for part in text.split(","):
        match = _PERIOD.match(part)
        if not match:
            raise CalendarError(f"work hours: {part.strip()!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = map(int, match.groups())
        if not (h1 < 24 and h2 <= 24 and m1 < 60 and m2 < 60) or (h2 == 24 and m2):
            raise CalendarError(f"work hours: {part.strip()!r} is not a time of day")
        start, end = time(h1, m1), (time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2))
        if end <= start:
            raise CalendarError(f"work hours: {part.strip()!r} ends before it starts")
        periods.append((start, end))
    periods.sort()
    for (_, end), (start, _) in zip(periods, periods[1:]):
        if start < end:
            raise CalendarError("work hours: periods overlap")
    return tuple(periods)


@dataclass(frozen=True)
class WorkCalendar:
    """Work days (``is_workday(date)``) and their work periods, in ``zone``."""

    zone: ZoneInfo
    periods: tuple[tuple[time, time], ...]
    is_workday: Callable[[date], bool]

    @property
    def minutes_per_day(self) -> float:
        return sum(_span(start, end) for start, end in self.periods) / 60

    def _day_periods(self, day: date):
        """The work periods of ``day`` as aware UTC (start, end), none on a day off."""
        if not self.is_workday(day):
            return
        for start, end in self.periods:
            yield (datetime.combine(day, start, self.zone).astimezone(timezone.utc),
                   datetime.combine(day, end, self.zone).astimezone(timezone.utc))

    def add_working(self, start: datetime, minutes: float) -> datetime:
        """The instant when ``minutes`` of working time have passed since ``start``."""
        if minutes <= 0:
            return start
        left = timedelta(minutes=minutes)
        day, idle = start.astimezone(self.zone).date(), 0
        while True:
            worked = False
            for period_start, period_end in self._day_periods(day):
                worked = True
                begin = max(period_start, start)
                if begin >= period_end:
                    continue
                if begin + left <= period_end:
                    return begin + left
                left -= period_end - begin
            idle = 0 if worked else idle + 1
            if idle > MAX_IDLE_DAYS:
                raise CalendarError(f"no work day in the {MAX_IDLE_DAYS} days after {day - timedelta(days=idle)}")
            day += timedelta(days=1)

    def working_minutes(self, start: datetime, end: datetime) -> float:
        """Minutes of working time between two instants (0 when ``end`` ≤ ``start``)."""
        if end <= start:
            return 0.0
        total = timedelta()
        day, last = start.astimezone(self.zone).date(), end.astimezone(self.zone).date()
        while day <= last:
            for period_start, period_end in self._day_periods(day):
                overlap = min(period_end, end) - max(period_start, start)
                if overlap > timedelta():
                    total += overlap
            day += timedelta(days=1)
        return total.total_seconds() / 60


def _span(start: time, end: time) -> float:
    return (datetime.combine(date.min, end) - datetime.combine(date.min, start)).total_seconds()


def add_minutes(basis: str, calendar: WorkCalendar, start: datetime, minutes: float) -> datetime:
    """``start`` plus ``minutes`` of ``basis`` time (natural or working)."""
    if basis == NATURAL:
        return start + timedelta(minutes=minutes)
    if basis == WORKING:
        return calendar.add_working(start, minutes)
    raise CalendarError(f"unknown time basis {basis!r}")


def minutes_between(basis: str, calendar: WorkCalendar, start: datetime, end: datetime) -> float:
    """Minutes of ``basis`` time from ``start`` to ``end`` (0 when ``end`` ≤ ``start``)."""
    if basis == NATURAL:
        return max(0.0, (end - start).total_seconds() / 60)
    if basis == WORKING:
        return calendar.working_minutes(start, end)
    raise CalendarError(f"unknown time basis {basis!r}")


def weekdays_only(day: date) -> bool:
    """Monday to Friday: the fallback for years no holiday schedule covers."""
    return day.weekday() < 5
