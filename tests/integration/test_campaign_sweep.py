"""The overdue escalation of inspection campaign tasks on a real PostGIS, with the sweep told
what "now" is: overdue at the deadline (the community told), then the street, then the
district, one stage each interval and never twice; answered tasks leave the escalation;
late answers are recorded as late; two sweeps side by side take each stage once."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.domain.permissions import Actor
from server.extensions import db as _db
from server.models import Campaign, CampaignTask, Notification
from server.models._base import utcnow
from server.services import campaigns
from server.services.sweep import sweep
from tests.builders import build_tree, make_region, standard_categories
from tests.campaign_builders import grow_street
from tests.images import jpeg


@pytest.fixture
def tree(db):
    tree = build_tree()
    standard_categories()
    tree.regions.update(grow_street(tree))
    return tree


def actor(user) -> Actor:
    return Actor(user_id=user.id, role=user.role, scope_path=user.region.path, department_id=user.department_id)


def launched(tree, region, hours: float = 2) -> Campaign:
    campaign, _ = campaigns.launch_campaign(actor(tree["street"]), {
        "client_uuid": None, "region_id": region.id, "title": "汛期安全隐患排查", "category_groups": ["05"],
        "deadline": utcnow() + timedelta(hours=hours)})
    return campaign


def tasks(campaign: Campaign) -> dict[str, CampaignTask]:
    _db.session.expire_all()
    return {t.cell.code: t for t in _db.session.scalars(
        select(CampaignTask).where(CampaignTask.campaign_id == campaign.id))}


def told(user, kind: str = "campaign_overdue") -> list[str]:
    _db.session.expire_all()
    return list(_db.session.scalars(select(Notification.cause).where(
        Notification.user_id == user.id, Notification.kind == kind).order_by(Notification.id)))


def test_an_overdue_task_reminds_one_level_higher_each_stage_and_never_twice(tree, app):
    campaign = launched(tree, tree["S1"])
    deadline, every = campaign.deadline, timedelta(hours=app.config["CAMPAIGN_ESCALATE_HOURS"])
    g1, g4 = tree["G1"].code, tree["G4"].code
    campaigns.report_nothing_found(actor(tree["grid_worker"]), campaign.id, tasks(campaign)[g1].id, jpeg(), None)
    assert sweep(deadline - timedelta(seconds=1)).done == 0  # not yet

    first = sweep(deadline)
    assert (first.campaign_overdue, first.campaign_escalated, first.failed) == (3, 0, [])
    states = {code: (t.state, t.escalation_stage) for code, t in tasks(campaign).items()}
    assert states == {g1: ("nothing_found", 0), tree["G2"].code: ("overdue", 1), g4: ("overdue", 1),
                      tree["G5"].code: ("overdue", 1)}
    cause = f"campaign:{campaign.id}:overdue"
    assert told(tree["community"]) == told(tree["community3"]) == [f"{cause}:stage:1"]  # each community's own
    assert told(tree["worker2"]) == told(tree["worker4"]) == [f"{cause}:worker"]
    assert told(tree["grid_worker"]) == [] and told(tree["street"]) == []
    assert sweep(deadline).done == 0 and sweep(deadline + every - timedelta(seconds=1)).done == 0

    # answered late: recorded late, and out of the escalation
    late = campaigns.report_nothing_found(actor(tree["worker4"]), campaign.id, tasks(campaign)[g4].id, jpeg(), "补报")
    assert (late.state, late.late, late.next_escalation_at) == ("nothing_found", True, None)

    second = sweep(deadline + every)
    assert (second.campaign_overdue, second.campaign_escalated) == (0, 2)
    assert told(tree["street"]) == [f"{cause}:stage:2"]  # once, for both its communities' cells
    assert told(tree["community"]) == [f"{cause}:stage:1"]
    third = sweep(deadline + 2 * every)
    assert third.campaign_escalated == 2 and told(tree["district"]) == [f"{cause}:stage:3"]
    assert {t.escalation_stage for t in tasks(campaign).values() if t.state == "overdue"} == {3}
    assert sweep(deadline + 30 * every).done == 0  # the district was the last stage
    assert told(tree["city"]) == []


def test_closing_a_campaign_stops_its_escalation(tree, app):
    campaign = launched(tree, tree["K1"])
    sweep(campaign.deadline)
    campaigns.close_campaign(actor(tree["street"]), campaign.id)
    every = timedelta(hours=app.config["CAMPAIGN_ESCALATE_HOURS"])
    assert sweep(campaign.deadline + every).done == 0
    assert {t.state for t in tasks(campaign).values()} == {"cancelled"}
    assert told(tree["street"]) == []


def test_two_sweeps_side_by_side_take_each_stage_of_each_task_once(tree, app):
    for i in range(30):  # 30 more cells in K3, nobody covering them
        x = -118.375 + i * 0.0008
        make_region(f"4401010010029{i:02d}", "grid", (x, 34.06, x + 0.0007, 34.07), tree["K3"])
    campaign = launched(tree, tree["S1"])
    every = timedelta(hours=app.config["CAMPAIGN_ESCALATE_HOURS"])
    for stage, now in ((1, campaign.deadline), (2, campaign.deadline + every)):
        reports = []

        def run(at=now, reports=reports):
            with app.app_context():
                reports.append(sweep(at, batch=4))
                _db.session.remove()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(r.campaign_overdue + r.campaign_escalated for r in reports) == 34
        assert not any(r.failed for r in reports)
        assert {t.escalation_stage for t in tasks(campaign).values()} == {stage}
    _db.session.expire_all()
    rows = _db.session.execute(select(Notification.user_id, Notification.cause, func.count()).where(
        Notification.kind == "campaign_overdue").group_by(Notification.user_id, Notification.cause)).all()
    assert all(n == 1 for *_, n in rows)
    assert told(tree["community3"]) == [f"campaign:{campaign.id}:overdue:stage:1"]
    assert told(tree["street"]) == [f"campaign:{campaign.id}:overdue:stage:2"]
