"""The working-time calendar (工作日历): which days are work days, and the admins' word on them.

A day is a work day by, in order: an admin's entry (``calendar_days``); the
``chinesecalendar`` package (public holidays and make-up work days, 调休) for the years it
covers; Monday to Friday otherwise. ``work_calendar()`` is what deadlines are counted
with; each process keeps it for ``CALENDAR_CACHE_SECONDS`` and forgets it at once when
this process writes a day.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
from flask import current_app
from sqlalchemy import select

from server.domain.calendar import WorkCalendar, parse_work_hours, weekdays_only
from server.domain.permissions import CALENDAR_MANAGE, CALENDAR_READ, Actor
from server.errors import InvalidInput, NotFound
from server.extensions import db
from server.models import CalendarDay

from .access import TERRITORY, require
from .cache import ProcessCache

CALENDAR_CACHE_SECONDS = 60
MAX_RANGE_DAYS = 366
SOURCES = ("admin", "chinesecalendar", "weekdays")
SOURCE_LABELS = {"admin": ("管理员设定", "Set by an administrator"),
                 "chinesecalendar": ("国务院放假安排", "State Council holiday schedule"),
                 "weekdays": ("仅按周一至周五", "Weekdays only (no schedule for this year)")}
PACKAGE_YEARS = range(min(chinese_calendar.holidays).year, max(chinese_calendar.holidays).year + 1)


@dataclass(frozen=True)
class DayInfo:
    day: date
    is_workday: bool
    source: str  # one of SOURCES
    name: str | None = None


def _package_day(day: date) -> tuple[bool, str | None] | None:
    """(work day?, holiday name) from the package, or None for a year it does not cover."""
    if day.year not in PACKAGE_YEARS:
        return None
    on_holiday, name = chinese_calendar.get_holiday_detail(day)
    workday = chinese_calendar.is_workday(day)
    return workday, (name if (on_holiday and name) or (workday and day.weekday() >= 5) else None)


def describe(day: date, entries: dict[date, CalendarDay]) -> DayInfo:
    """What ``day`` is, and on whose word."""
    entry = entries.get(day)
    if entry is not None:
        return DayInfo(day, entry.is_workday, "admin", entry.name)
    package = _package_day(day)
    if package is not None:
        return DayInfo(day, package[0], "chinesecalendar", package[1])
    return DayInfo(day, weekdays_only(day), "weekdays")


def _load_entries() -> dict[date, bool]:
    return dict(db.session.execute(select(CalendarDay.day, CalendarDay.is_workday)).all())


_cache = ProcessCache(_load_entries, CALENDAR_CACHE_SECONDS)


def forget_cached_entries() -> None:
    """Read the administrators' entries again at the next use (after rows changed elsewhere)."""
    _cache.clear()


def work_calendar() -> WorkCalendar:
    """The calendar deadlines are counted with: work hours and zone from the config."""
    entries = _cache.get()

    def is_workday(day: date) -> bool:
        if day in entries:
            return entries[day]
        if day.year in PACKAGE_YEARS:
            return chinese_calendar.is_workday(day)
        return weekdays_only(day)

    cfg = current_app.config
    return WorkCalendar(ZoneInfo(cfg["TIMEZONE"]), parse_work_hours(cfg["WORK_HOURS"]), is_workday)


def list_days(actor: Actor, start: date, end: date) -> list[DayInfo]:
    """Every day from ``start`` to ``end`` (at most a year) and whether it is a work day.
    Errors: calendar.invalid_range."""
    require(actor, CALENDAR_READ, TERRITORY)
    if end < start or (end - start).days >= MAX_RANGE_DAYS:
        raise InvalidInput("calendar.invalid_range", f"Give a range of 1 to {MAX_RANGE_DAYS} days, start first.")
    entries = {e.day: e for e in db.session.scalars(
        select(CalendarDay).where(CalendarDay.day.between(start, end)))}
    return [describe(start + timedelta(days=i), entries) for i in range((end - start).days + 1)]


def set_day(actor: Actor, day: date, is_workday: bool, name: str | None) -> DayInfo:
    """Make ``day`` a work day or a day off, whatever the schedule says (administrators)."""
    require(actor, CALENDAR_MANAGE, TERRITORY)
    entry = db.session.get(CalendarDay, day, with_for_update=True)
    if entry is None:
        entry = CalendarDay(day=day)
        db.session.add(entry)
    entry.is_workday, entry.name, entry.updated_by = is_workday, name, actor.user_id or None
    db.session.commit()
    _cache.clear()
    return describe(day, {day: entry})


def clear_day(actor: Actor, day: date) -> DayInfo:
    """Drop the admins' entry for ``day``: the schedule (or weekdays) decides again.
    Errors: calendar.no_entry (404)."""
    require(actor, CALENDAR_MANAGE, TERRITORY)
    entry = db.session.get(CalendarDay, day, with_for_update=True)
    if entry is None:
        raise NotFound("calendar.no_entry", "No administrator's entry for this day.")
    db.session.delete(entry)
    db.session.commit()
    _cache.clear()
    return describe(day, {})


@dataclass(frozen=True)
class YearCoverage:
    year: int
    source: str  # chinesecalendar, admin (entries but no schedule), weekdays
    entries: int  # the admins' entries in the year


def coverage(years) -> list[YearCoverage]:
    """On whose word each year's work days stand: a year without the package's schedule and
    without admin entries counts weekdays only (holidays would be taken for work days)."""
    result = []
    for year in years:
        entries = db.session.scalar(select(db.func.count()).select_from(CalendarDay).where(
            CalendarDay.day.between(date(year, 1, 1), date(year, 12, 31))))
        source = "chinesecalendar" if year in PACKAGE_YEARS else ("admin" if entries else "weekdays")
        result.append(YearCoverage(year, source, entries))
    return result
