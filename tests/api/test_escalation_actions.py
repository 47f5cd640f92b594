"""Escalating by hand (升级) and sending down (下派): the case changes level with a reason,
its task out is cancelled, a new stage starts, and supervision follows the level."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from server.extensions import db as _db
from server.models import Category
from tests.api.test_incidents import act, report


def test_a_supervisor_escalates_with_a_reason_and_the_task_out_is_cancelled(tree, worker, community, street):
    iid = report(worker)["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    assert act(community, iid, "escalate", expect=422)["code"] == "incident.reason_required"
    escalated = act(community, iid, "escalate", note="涉及多个网格，需社区统筹")
    assert escalated["level"] == "community" and escalated["status"] == "accepted"
    assert escalated["stage_no"] == 2 and escalated["escalation_count"] == 1
    assert escalated["tasks"][0]["status"] == "cancelled"
    event = escalated["timeline"][-1]
    assert (event["action"], event["from_level"], event["to_level"]) == ("escalate", "grid", "community")
    assert event["data"]["reason"] == "涉及多个网格，需社区统筹" and event["action_label"]["zh"] == "升级上报"
    assert datetime.fromisoformat(escalated["stage_started_at"]) == datetime.fromisoformat(event["at"])
    up = act(community, iid, "escalate", note="社区无法协调")
    assert up["level"] == "street"
    # the community no longer supervises a street case; the street does
    assert "dispatch" not in community.get(f"/api/v1/incidents/{iid}").json()["actions"]
    assert act(community, iid, "dispatch", expect=403, assignee_id=tree["grid_worker"].id)["code"] == "auth.forbidden"
    assert "dispatch" in street.get(f"/api/v1/incidents/{iid}").json()["actions"]


def test_a_report_not_yet_accepted_is_reported_at_the_level_above(tree, worker, community):
    iid = report(worker)["id"]
    escalated = act(community, iid, "escalate", note="超出社区职权")
    assert escalated["status"] == "reported" and escalated["level"] == "community"


def test_no_escalation_above_the_policy_top_level(tree, worker, client_for):
    district = client_for(tree["district"])
    iid = report(worker)["id"]  # the default top level: district
    for note in ("上报社区", "上报街道", "上报区"):
        act(district, iid, "escalate", note=note)
    at_top = district.get(f"/api/v1/incidents/{iid}").json()
    assert at_top["level"] == "district" and "escalate" not in at_top["actions"]
    refused = act(district, iid, "escalate", expect=409, note="再上报")
    assert refused["code"] == "incident.at_top_level"
    assert district.get(f"/api/v1/incidents/{iid}").json()["version"] == at_top["version"]  # nothing changed


def test_sending_down_needs_instructions_and_stops_at_the_grid(tree, worker, community, street):
    iid = report(worker)["id"]
    act(community, iid, "escalate", note="上报社区")
    act(community, iid, "escalate", note="上报街道")
    assert act(street, iid, "return_down", expect=422)["code"] == "incident.reason_required"
    down = act(street, iid, "return_down", note="请社区组织物业和业主协商")
    assert down["level"] == "community" and down["stage_no"] == 4 and down["escalation_count"] == 2
    assert down["timeline"][-1]["data"] == {"from_level": "street", "to_level": "community"}
    down = act(community, iid, "return_down", note="请网格员上门了解情况")
    assert down["level"] == "grid" and "return_down" not in down["actions"]
    assert act(community, iid, "return_down", expect=409, note="再下派")["code"] == "incident.at_lowest_level"


def test_handlers_and_reporters_do_not_move_cases_between_levels(tree, worker, community):
    iid = report(worker)["id"]
    act(community, iid, "accept")
    act(community, iid, "dispatch", assignee_id=tree["grid_worker"].id)
    assert act(worker, iid, "escalate", expect=403, note="处理不了")["code"] == "auth.forbidden"
    assert act(worker, iid, "return_down", expect=403, note="x")["code"] == "auth.forbidden"


def test_the_policy_can_send_escalated_cases_to_the_department_of_their_kind(tree, worker, community,
                                                                              client_for):
    """0701 (noise) is a police matter: from the street up, an escalated case goes at once
    to the street's police station (派出所), whose handlers hear of it."""
    assert _db.session.scalars(select(Category.department_kind).where(Category.code == "0701")).one() == "police"
    tree.department.kind = "police"  # the street's station
    _db.session.commit()
    street_override = {"policy": {"department_from": "street"}}
    assert client_for(tree["street"]).put(f"/api/v1/regions/{tree['S1'].id}/escalation-overrides",
                                          json={"category": "0701", **street_override}).status_code == 200
    iid = report(worker, category="0701", attributes={"source": "square_dance"})["id"]
    act(community, iid, "accept")
    at_community = act(community, iid, "escalate", note="社区协调无果")
    assert at_community["status"] == "accepted" and at_community["tasks"] == []  # not yet: below the street
    at_street = act(community, iid, "escalate", note="需派出所处理")
    assert at_street["level"] == "street" and at_street["status"] == "dispatched"
    task = at_street["tasks"][-1]
    assert task["department"]["id"] == tree.department.id and task["status"] == "open"
    assert [e["action"] for e in at_street["timeline"]][-2:] == ["escalate", "dispatch"]
    assert at_street["timeline"][-1]["actor"] is None  # the system, by the policy
    police = client_for(tree["department"])
    assert "acknowledge" in police.get(f"/api/v1/incidents/{iid}").json()["actions"]
