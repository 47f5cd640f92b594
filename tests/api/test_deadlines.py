"""Stage deadlines and lights over HTTP: a report starts a stage from the effective policy
(category, then region overrides), suspension keeps what was left, an extension moves the
stage's end, a reopened case starts a new stage, and lists filter on lights."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update

from server.domain.calendar import add_minutes
from server.extensions import db as _db
from server.models import EscalationOverride, Incident
from server.services.calendar import work_calendar
from server.services.deadlines import forget_cached_overrides
from tests.api.test_incidents import act, report
from tests.builders import standard_categories


def t(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_a_report_starts_its_first_stage_from_the_category_policy(tree, worker):
    incident = report(worker, category="0101")  # defaults: 1 day at the grid, yellow at 75 %, top: district
    start = t(incident["stage_started_at"])
    assert incident["stage_no"] == 1 and start == t(incident["reported_at"])
    assert t(incident["due_at"]) - start == timedelta(days=1)
    assert t(incident["yellow_at"]) - start == timedelta(hours=18)
    assert incident["top_level"] == "district" and incident["light"] == "green"
    assert incident["light_label"] == {"zh": "正常", "en": "On time"}
    assert incident["supervised_at"] is None and incident["escalation_count"] == 0
    gas = report(worker, category="0501", description="燃气味")  # starts at the street, may rise to the city
    assert gas["level"] == "street" and gas["top_level"] == "city"


def test_region_overrides_apply_from_the_city_down_the_deepest_winning(tree, worker, app):
    category = standard_categories()["0101"]
    _db.session.add_all([
        EscalationOverride(region_id=tree["C"].id, category_id=None, policy={"time_basis": "working"}),
        EscalationOverride(region_id=tree["S1"].id, category_id=category.id,
                           policy={"top_level": "street", "yellow_ratio": 0.5}),
        EscalationOverride(region_id=tree["S1"].id, category_id=None, policy={"yellow_ratio": 0.9}),
    ])
    _db.session.commit()
    forget_cached_overrides()
    incident = report(worker, category="0101")
    start = t(incident["stage_started_at"])
    with app.app_context():
        calendar = work_calendar()
    assert incident["top_level"] == "street"
    assert t(incident["due_at"]) == add_minutes("working", calendar, start, 1440)  # 1,440 working minutes
    assert t(incident["yellow_at"]) == add_minutes("working", calendar, start, 720)  # the category's own 50 %
    other = report(worker, category="0102", description="大件垃圾")
    assert t(other["yellow_at"]) == add_minutes("working", calendar, t(other["stage_started_at"]), 1440 * 0.9)


def test_a_suspension_keeps_what_the_stage_had_left(tree, worker, community):
    incident = report(worker, category="0101")
    iid = incident["id"]
    act(community, iid, "accept")
    suspended = act(community, iid, "suspend", note="等待产权单位答复")
    assert suspended["light"] is None  # the clock is stopped
    resumed = act(community, iid, "resume")
    events = {e["action"]: t(e["at"]) for e in resumed["timeline"]}
    paused = events["resume"] - events["suspend"]
    assert abs(t(resumed["due_at"]) - (t(incident["due_at"]) + paused)) < timedelta(milliseconds=1)
    assert abs(t(resumed["yellow_at"]) - (t(incident["yellow_at"]) + paused)) < timedelta(milliseconds=1)
    assert resumed["light"] == "green"


def test_an_approved_extension_ends_the_stage_later_and_moves_yellow_with_it(tree, worker, community):
    iid = report(worker, category="0101")["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    act(worker, iid, "acknowledge")
    until = (datetime.now().astimezone() + timedelta(days=3)).replace(microsecond=0)
    act(worker, iid, "request_extension", note="需要更换配件", until=until.isoformat())
    extended = act(community, iid, "approve_extension")
    start = t(extended["stage_started_at"])
    assert t(extended["due_at"]) == until
    assert abs(t(extended["yellow_at"]) - (start + (until - start) * 0.75)) < timedelta(milliseconds=1)


def test_a_dispatched_task_must_be_acknowledged_within_the_levels_limit(tree, worker, community):
    iid = report(worker, category="0101")["id"]
    act(community, iid, "accept")
    task = act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)["tasks"][0]
    assert t(task["ack_deadline"]) - t(task["created_at"]) == timedelta(hours=1)  # the grid's default


def test_a_reopened_case_starts_a_new_stage(tree, worker, community):
    first = report(worker)
    iid = first["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    act(worker, iid, "acknowledge")
    act(worker, iid, "resolve", note="已调解")
    assert act(community, iid, "verify")["light"] is None  # closed: no clock
    reopened = act(community, iid, "callback", satisfaction=1)  # dissatisfied: reopened
    assert reopened["stage_no"] == 2 and t(reopened["stage_started_at"]) > t(reopened["reported_at"])
    assert t(reopened["due_at"]) - t(reopened["stage_started_at"]) == t(first["due_at"]) - t(first["reported_at"])
    assert reopened["light"] == "green"


def _move_clock(incident_id: int, *, yellow_ago: timedelta, due_ago: timedelta) -> None:
    now = datetime.now().astimezone()
    _db.session.execute(update(Incident).where(Incident.id == incident_id).values(
        yellow_at=now - yellow_ago, due_at=now - due_ago))
    _db.session.commit()


def test_lists_filter_on_lights(tree, worker, community):
    green, yellow, red, stopped = (report(worker, category="0101", description=f"问题{i}")["id"] for i in range(4))
    _move_clock(yellow, yellow_ago=timedelta(hours=1), due_ago=-timedelta(hours=1))
    _move_clock(red, yellow_ago=timedelta(hours=5), due_ago=timedelta(hours=1))
    act(community, stopped, "accept")
    act(community, stopped, "suspend", note="等待答复")
    _move_clock(stopped, yellow_ago=timedelta(hours=5), due_ago=timedelta(hours=1))

    def ids(**params):
        return sorted(i["id"] for i in community.get("/api/v1/incidents", params=params).json()["items"])

    assert ids(light="green") == [green]
    assert ids(light="yellow") == [yellow]
    assert ids(light="red") == [red] == ids(overdue="true")
    assert ids(light=["yellow", "red"]) == sorted([yellow, red])
    assert ids(overdue="false") == sorted([green, yellow, stopped])
    lights = {i["id"]: i["light"] for i in community.get("/api/v1/incidents").json()["items"]}
    assert lights == {green: "green", yellow: "yellow", red: "red", stopped: None}
    assert community.get("/api/v1/incidents", params={"light": "purple"}).status_code == 422
