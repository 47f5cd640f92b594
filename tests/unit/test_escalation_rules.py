"""Escalation rules as pure functions with fixed clocks: policy merging, stages, lights, the
top level, due actions, acknowledgement steps and suspension."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest

from server.domain.calendar import WorkCalendar, parse_work_hours
from server.domain.categories import validate_policy
from server.domain.escalation import (
    ESCALATE, GREEN, RED, REMIND, SUPERVISE, YELLOW, department_takes, due_action, light, merge_policy,
    next_ack_step, next_level, pause, resume, start_stage,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar(SHANGHAI, parse_work_hours("08:30-12:00,13:30-17:30"), chinese_calendar.is_workday)


def at(day: str, hm: str = "09:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{hm}").replace(tzinfo=SHANGHAI)


def test_the_deepest_override_wins_key_by_key_and_levels_whole():
    category = {"yellow_ratio": 0.5, "levels": {"grid": {"ack_minutes": 30, "resolve_minutes": 600},
                                                "community": {"ack_minutes": 60, "resolve_minutes": 900}}}
    district = {"time_basis": "working", "top_level": "street"}
    street = {"yellow_ratio": 0.8, "levels": {"grid": {"ack_minutes": 10, "resolve_minutes": 100}}}
    merged = merge_policy(category, [district, street])
    assert merged["time_basis"] == "working" and merged["top_level"] == "street" and merged["yellow_ratio"] == 0.8
    assert merged["levels"] == {"grid": {"ack_minutes": 10, "resolve_minutes": 100}}  # not merged level by level
    assert merge_policy(None, [])["top_level"] == "district"  # the defaults


def test_a_stage_in_natural_time():
    stage = start_stage({"yellow_ratio": 0.75}, "grid", at("2026-11-23", "10:00"), CAL)
    assert stage.ack_due_at == at("2026-11-23", "11:00")  # 60 minutes by default
    assert stage.due_at == at("2026-11-24", "10:00")  # 1,440 minutes
    assert stage.yellow_at == at("2026-11-24", "04:00")  # 75 % of the time


def test_a_stage_in_working_time_skips_the_night_the_weekend_and_holidays():
    policy = {"time_basis": "working", "yellow_ratio": 0.5,
              "levels": {"grid": {"ack_minutes": 30, "resolve_minutes": 450}}}
    friday = start_stage(policy, "grid", at("2026-11-27", "17:00"), CAL)
    assert friday.ack_due_at == at("2026-11-27", "17:30")
    assert friday.yellow_at == at("2026-11-30", "11:45")  # 225 minutes: 30 on Friday, 195 on Monday
    assert friday.due_at == at("2026-11-30", "17:00")
    national_day = start_stage(policy, "grid", at("2026-09-30", "17:00"), CAL)
    assert national_day.due_at == at("2026-10-08", "17:00")  # 1–7 October off, the 8th worked


@pytest.mark.parametrize("offset, expected", [
    (timedelta(minutes=-1), GREEN), (timedelta(), YELLOW), (timedelta(hours=1), YELLOW),
    (timedelta(hours=2), RED), (timedelta(days=30), RED),
])
def test_lights_change_exactly_at_their_instants(offset, expected):
    yellow_at, due_at = at("2026-11-23", "10:00"), at("2026-11-23", "12:00")
    assert light(yellow_at + offset, yellow_at, due_at, running=True) == expected


def test_no_light_when_the_clock_is_stopped():
    assert light(at("2026-12-01"), at("2026-11-23"), at("2026-11-24"), running=False) is None
    assert light(at("2026-12-01"), None, None, running=True) is None


def test_cases_rise_one_level_at_a_time_up_to_the_top():
    policy = {"top_level": "street"}
    assert next_level(policy, "grid") == "community"
    assert next_level(policy, "community") == "street"
    assert next_level(policy, "street") is None
    assert next_level(policy, "district") is None  # already above the top: no further
    assert next_level({"top_level": "city"}, "district") == "city"
    assert next_level({"top_level": "city"}, "city") is None


@pytest.mark.parametrize("level, lamp, reminded, supervised, expected", [
    ("grid", GREEN, False, False, None),
    ("grid", YELLOW, False, False, REMIND),
    ("grid", YELLOW, True, False, None),  # one reminder a stage
    ("grid", RED, False, False, ESCALATE),  # red without a reminder still escalates
    ("grid", RED, True, False, ESCALATE),
    ("street", RED, True, False, SUPERVISE),  # the top level: 督办
    ("street", RED, True, True, None),  # once
    ("street", None, False, False, None),  # suspended or closed
])
def test_what_the_sweep_owes_a_case(level, lamp, reminded, supervised, expected):
    assert due_action({"top_level": "street"}, level, lamp, reminded=reminded, supervised=supervised) == expected


def test_unacknowledged_tasks_go_through_three_steps():
    assert [next_ack_step(n) for n in range(4)] == ["repush", "backup", "supervisor", None]


def test_suspension_keeps_what_was_left_in_working_time():
    policy = {"time_basis": "working"}
    yellow_at, due_at = at("2026-11-23", "15:30"), at("2026-11-24", "09:30")
    paused = pause(policy, at("2026-11-23", "14:30"), yellow_at, due_at, CAL)
    assert (paused.yellow_minutes, paused.due_minutes) == (60, 240)  # 3 h left today, 1 h tomorrow
    # resumed on the Friday before the 2026 Spring Festival: the make-up Saturday counts, the holiday does not
    yellow, due = resume(policy, at("2026-02-13", "16:30"), paused, CAL)
    assert yellow == at("2026-02-13", "17:30")
    assert due == at("2026-02-14", "11:30")


def test_the_department_takes_escalated_cases_from_the_policys_level_up():
    policy = {"department_from": "street"}
    assert [department_takes(policy, level) for level in ("grid", "community", "street", "district", "city")] == [
        False, False, True, True, True]
    assert not department_takes({}, "city")  # by default the supervisors dispatch


def test_department_from_must_be_a_level_or_null():
    assert validate_policy({"department_from": "street"}, "grid") == []
    assert validate_policy({"department_from": None}, "grid") == []
    assert validate_policy({"department_from": "village"}, "grid") == [
        "department_from must be null or one of city, district, street, community, grid."]
