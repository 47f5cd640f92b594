"""Working time: work days, work hours and deadlines counted in them (fixed clocks only)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from server.domain.calendar import (
    CalendarError, WorkCalendar, add_minutes, minutes_between, parse_work_hours, weekdays_only,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOURS = parse_work_hours("08:30-12:00,13:30-17:30")  # 7.5 working hours a day


def at(day: str, hm: str = "09:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{hm}").replace(tzinfo=SHANGHAI)


def china(day: date) -> bool:
    return chinese_calendar.is_workday(day)


CAL = WorkCalendar(SHANGHAI, HOURS, china)
WEEKDAYS = WorkCalendar(SHANGHAI, HOURS, weekdays_only)


def test_work_hours_parse_sort_and_refuse_nonsense():
    assert parse_work_hours(" 13:30-17:30 , 08:30-12:00") == HOURS
    assert WEEKDAYS.minutes_per_day == 450
    for bad in ("8-12", "08:30-25:00", "12:00-08:00", "08:00-12:00,11:00-13:00", "08:61-09:00", ""):
        with pytest.raises(CalendarError):
            parse_work_hours(bad)


def test_natural_time_is_the_clock():
    start = at("2026-02-13", "17:00")  # a Friday before the Spring Festival
    assert add_minutes("natural", CAL, start, 1440) == start + timedelta(days=1)
    assert minutes_between("natural", CAL, start, start + timedelta(hours=2)) == 120
    assert minutes_between("natural", CAL, start, start - timedelta(hours=2)) == 0


def test_working_time_within_a_day_skips_the_lunch_break():
    assert add_minutes("working", WEEKDAYS, at("2026-11-23", "11:00"), 90) == at("2026-11-23", "14:00")
    assert add_minutes("working", WEEKDAYS, at("2026-11-23", "11:00"), 60) == at("2026-11-23", "12:00")


def test_a_start_outside_work_hours_counts_from_the_next_period():
    assert add_minutes("working", WEEKDAYS, at("2026-11-23", "07:00"), 30) == at("2026-11-23", "09:00")
    assert add_minutes("working", WEEKDAYS, at("2026-11-23", "12:30"), 30) == at("2026-11-23", "14:00")
    assert add_minutes("working", WEEKDAYS, at("2026-11-23", "20:00"), 30) == at("2026-11-24", "09:00")


def test_weekends_are_skipped():
    friday_afternoon = at("2026-11-27", "17:00")
    assert add_minutes("working", WEEKDAYS, friday_afternoon, 60) == at("2026-11-30", "09:00")  # Monday
    assert minutes_between("working", WEEKDAYS, friday_afternoon, at("2026-11-30", "09:00")) == 60


def test_one_working_day_is_the_whole_day_and_zero_is_now():
    start = at("2026-11-23", "08:30")
    assert add_minutes("working", WEEKDAYS, start, 450) == at("2026-11-23", "17:30")
    assert add_minutes("working", WEEKDAYS, start, 451) == at("2026-11-24", "08:31")
    assert add_minutes("working", WEEKDAYS, at("2026-11-28", "03:00"), 0) == at("2026-11-28", "03:00")


def test_public_holidays_and_make_up_workdays():
    # 2026 Spring Festival: 15–23 February off; Saturday 14 February and Saturday 28 February are worked (调休)
    assert china(date(2026, 2, 14)) and not china(date(2026, 2, 16)) and china(date(2026, 2, 28))
    friday = at("2026-02-13", "17:00")
    assert add_minutes("working", CAL, friday, 60) == at("2026-02-14", "09:00")  # the make-up Saturday
    saturday = at("2026-02-14", "17:00")
    assert add_minutes("working", CAL, saturday, 60) == at("2026-02-24", "09:00")  # after the holiday
    assert add_minutes("working", WEEKDAYS, saturday, 60) == at("2026-02-16", "09:30")  # weekdays alone are wrong
    assert minutes_between("working", CAL, saturday, at("2026-02-24", "09:00")) == 60


def test_counting_forward_then_back_agrees_over_a_year():
    start = at("2026-01-05", "10:17")
    for minutes in (1, 59, 450, 451, 2250, 10000, 60000):
        end = add_minutes("working", CAL, start, minutes)
        assert minutes_between("working", CAL, start, end) == pytest.approx(minutes)


def test_the_answer_does_not_depend_on_the_zone_of_the_input():
    start = at("2026-11-23", "11:00")
    utc = start.astimezone(timezone.utc)
    assert add_minutes("working", CAL, utc, 90) == add_minutes("working", CAL, start, 90)


def test_a_calendar_without_work_days_is_refused_not_looped_on():
    never = WorkCalendar(SHANGHAI, HOURS, lambda day: False)
    with pytest.raises(CalendarError):
        add_minutes("working", never, at("2026-11-23"), 10)
    with pytest.raises(CalendarError):
        add_minutes("lunar", CAL, at("2026-11-23"), 10)
