"""The working-time calendar over HTTP: days with their source, administrators' entries,
bad dates and ranges, and the calendar deadlines are counted with."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from server.services.calendar import work_calendar
from tests.builders import build_tree

DAYS = "/api/v1/calendar/days"


@pytest.fixture
def tree(db):
    return build_tree()


def test_days_say_whether_they_are_worked_and_on_whose_word(tree, client_for):
    worker = client_for(tree["grid_worker"])
    body = worker.get(DAYS, params={"from": "2026-02-13", "to": "2026-02-16"}).json()
    days = {d["day"]: d for d in body["items"]}
    assert list(days) == ["2026-02-13", "2026-02-14", "2026-02-15", "2026-02-16"]
    assert days["2026-02-14"]["is_workday"] and days["2026-02-14"]["weekday"] == 6  # a make-up Saturday (调休)
    assert days["2026-02-14"]["name"] == "Spring Festival"
    assert not days["2026-02-16"]["is_workday"] and days["2026-02-16"]["source"] == "chinesecalendar"
    assert days["2026-02-16"]["source_label"] == {"zh": "国务院放假安排", "en": "State Council holiday schedule"}
    later = worker.get(DAYS, params={"from": "2031-05-01", "to": "2031-05-01"}).json()["items"][0]
    assert later["source"] == "weekdays" and later["is_workday"]  # no schedule that far ahead


@pytest.mark.parametrize("params", [
    {"from": "2026-03-01", "to": "2026-02-01"},  # backwards
    {"from": "2026-01-01", "to": "2027-01-02"},  # 367 days
    {"from": "2026-02-30", "to": "2026-03-01"},  # no such day
    {"from": "2026-01-01"},
    {"from": "yesterday", "to": "2026-01-01"},
])
def test_bad_ranges_are_422(tree, client_for, params):
    response = client_for(tree["grid_worker"]).get(DAYS, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("calendar.invalid_range", "request.invalid")


def test_administrators_set_and_clear_days(tree, client_for, app):
    admin = client_for(tree["admin"])
    response = admin.put(f"{DAYS}/2027-02-08", json={"is_workday": False, "name": "春节"})
    assert response.status_code == 200, response.text
    assert response.json() | {"source_label": None} == {
        "day": "2027-02-08", "weekday": 1, "is_workday": False, "source": "admin", "source_label": None, "name": "春节"}
    with app.app_context():  # the deadlines of this process see it at once
        assert not work_calendar().is_workday(date(2027, 2, 8))
    assert admin.put(f"{DAYS}/2027-02-08", json={"is_workday": True, "name": None}).json()["is_workday"]
    cleared = admin.delete(f"{DAYS}/2027-02-08")
    assert cleared.status_code == 200 and cleared.json()["source"] == "weekdays"
    assert admin.delete(f"{DAYS}/2027-02-08").json()["code"] == "calendar.no_entry"


@pytest.mark.parametrize("role", ["city", "district", "street", "community", "grid_worker", "department"])
def test_only_administrators_change_the_calendar(tree, client_for, role):
    response = client_for(tree[role]).put(f"{DAYS}/2027-02-08", json={"is_workday": False})
    assert (response.status_code, response.json()["code"]) == (403, "auth.forbidden")
    assert client_for(tree["admin"]).get(DAYS, params={"from": "2027-02-08", "to": "2027-02-08"}).json()[
        "items"][0]["source"] == "weekdays"


@pytest.mark.parametrize("path, body", [
    ("2026-02-30", {"is_workday": False}),  # no such day: no such resource
    ("20260214", {"is_workday": False}),
    ("2026-02-14", {"is_workday": "maybe"}),
    ("2026-02-14", {"is_workday": False, "name": "x" * 101}),
    ("2026-02-14", {"is_workday": False, "extra": 1}),
])
def test_bad_days_and_bodies_change_nothing(tree, client_for, path, body):
    admin = client_for(tree["admin"])
    response = admin.put(f"{DAYS}/{path}", json=body)
    assert response.status_code in (404, 422), response.text
    assert admin.get(DAYS, params={"from": "2026-02-14", "to": "2026-02-14"}).json()["items"][0]["source"] == \
        "chinesecalendar"


def test_the_calendar_counts_in_the_configured_zone_and_hours(tree, app):
    with app.app_context():
        calendar = work_calendar()
    shanghai = ZoneInfo("Asia/Shanghai")
    assert calendar.zone == shanghai and calendar.minutes_per_day == 450
    friday = datetime(2026, 2, 13, 17, 0, tzinfo=shanghai)
    assert calendar.add_working(friday, 60) == datetime(2026, 2, 14, 9, 0, tzinfo=shanghai)


def test_anonymous_callers_get_401(http):
    assert http.get(DAYS, params={"from": "2026-01-01", "to": "2026-01-02"}).status_code == 401
