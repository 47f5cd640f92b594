"""An inspection campaign end to end: a street office launches it over HTTP, the workers'
phones get one push each through the real FCM sender (against the fake FCM), one worker
reports a finding, one reports nothing found with a photo, the others go overdue and the
reminder climbs community → street → district on the worker's passes (a controlled clock);
the progress figures and the map's cells follow."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from server.extensions import db as _db
from server.models import Campaign
from server.models._base import utcnow
from tests.api.test_incidents import report
from tests.builders import build_tree, standard_categories
from tests.campaign_builders import CAMPAIGNS, IN_G1, grow_street, launch, tasks_by_cell
from tests.images import jpeg
from tests.worker_passes import one_pass, phone_of


def kinds(fake, token) -> list[tuple[str, str]]:
    """The campaign pushes a phone received (the finding, an incident, escalates on its own clock too)."""
    return [(m["data"]["type"], m["data"]["campaign_id"]) for m in fake.sent_to(token)
            if m["data"]["type"].startswith("campaign_")]


def test_a_campaign_from_launch_to_the_district(db, app, client_for, fake, sender):
    tree = build_tree()
    standard_categories()
    extra = grow_street(tree)
    people = {"worker1": tree["grid_worker"], "worker2": extra["worker2"], "worker4": extra["worker4"],
              "community1": tree["community"], "community3": extra["community3"], "street1": tree["street"],
              "district1": tree["district"]}
    tokens = {name: phone_of(user) for name, user in people.items()}
    street, worker1, worker4 = (client_for(tree["street"]), client_for(tree["grid_worker"]),
                                client_for(extra["worker4"]))
    codes = {name: tree[name].code if name in ("G1", "G2") else extra[name].code for name in ("G1", "G2", "G4", "G5")}

    campaign = launch(street, tree["S1"], category_groups=["05", "02"])
    cid = str(campaign["id"])
    assert one_pass(sender, utcnow()).push.sent == 4  # three workers and the supervisor of the uncovered cell
    for name in ("worker1", "worker2", "worker4"):
        assert kinds(fake, tokens[name]) == [("campaign_task", cid)]  # one push per worker
    assert kinds(fake, tokens["community3"]) == [("campaign_unassigned", cid)]
    assert fake.sent_to(tokens["worker1"])[0]["data"]["title"] == "新排查任务"

    tasks = tasks_by_cell(worker1, campaign["id"])
    found = report(worker1, category="0503", description="楼道堆放杂物堵塞消防通道",
                   location={"type": "Point", "coordinates": IN_G1}, campaign_task_id=tasks[codes["G1"]]["id"])
    mine = worker4.get("/api/v1/me/campaign-tasks").json()["items"]
    answered = worker4.post(f"{CAMPAIGNS}/{campaign['id']}/tasks/{mine[0]['id']}/nothing-found",
                            files={"photo": ("g4.jpg", jpeg(), "image/jpeg"), "note": (None, "已逐户检查")})
    assert answered.status_code == 200, answered.text

    deadline = _db.session.scalar(select(Campaign.deadline).where(Campaign.id == campaign["id"]))
    every = timedelta(hours=app.config["CAMPAIGN_ESCALATE_HOURS"])
    assert one_pass(sender, deadline).sweep.campaign_overdue == 2  # G2 (worker2) and G5 (nobody)
    assert one_pass(sender, deadline + every).sweep.campaign_escalated == 2
    assert one_pass(sender, deadline + 2 * every).sweep.campaign_escalated == 2
    assert one_pass(sender, deadline + 3 * every).sweep.done == 0

    assert kinds(fake, tokens["worker2"]) == [("campaign_task", cid), ("campaign_overdue", cid)]
    assert kinds(fake, tokens["worker1"]) == [("campaign_task", cid)]  # answered: never overdue
    assert kinds(fake, tokens["community1"]) == [("campaign_overdue", cid)]  # stage 1: G2's community
    assert kinds(fake, tokens["community3"]) == [("campaign_unassigned", cid), ("campaign_overdue", cid)]
    assert kinds(fake, tokens["street1"]) == [("campaign_overdue", cid)]  # stage 2, once for both cells
    assert kinds(fake, tokens["district1"]) == [("campaign_overdue", cid)]  # stage 3
    stages = [m["data"]["stage"] for name in ("community1", "street1", "district1")
              for m in fake.sent_to(tokens[name]) if m["data"]["type"] == "campaign_overdue"]
    assert stages == ["1", "2", "3"]
    assert len({s.message["data"]["message_id"] for s in fake.received}) == len(fake.received)

    progress = street.get(f"{CAMPAIGNS}/{campaign['id']}").json()["progress"]
    assert progress["by_state"] == {"open": 0, "found": 1, "nothing_found": 1, "overdue": 2, "cancelled": 0}
    assert (progress["percent_done"], progress["overdue"], progress["findings"]) == (50.0, 2, 1)
    cells = street.get(f"{CAMPAIGNS}/{campaign['id']}/cells.geojson").json()
    assert {f["properties"]["code"]: f["properties"]["state"] for f in cells["features"]} == {
        codes["G1"]: "found", codes["G2"]: "overdue", codes["G4"]: "nothing_found", codes["G5"]: "overdue"}
    overdue = street.get(f"{CAMPAIGNS}/{campaign['id']}/tasks", params={"state": "overdue"}).json()["items"]
    assert {(t["cell"]["code"], t["escalation_stage"], t["escalation_level"]) for t in overdue} == {
        (codes["G2"], 3, "district"), (codes["G5"], 3, "district")}
    assert street.get(f"/api/v1/incidents/{found['id']}").json()["campaign_task_id"] == tasks[codes["G1"]]["id"]
