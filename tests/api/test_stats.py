"""Evaluation figures (docs/STATS.md) on hand-built histories: every number worked out by
hand from the timelines below, through suspension, extension, rework, escalation by the
sweep and by hand, a rejection, a case of the period before and one of the year before."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from server.extensions import db
from server.models import IncidentEvent, Mediation
from tests.incident_builders import make_incident, make_task

CST = timezone(timedelta(hours=8))  # the test app's zone is the default, Asia/Shanghai
Q1 = {"from": "2026-01-01", "to": "2026-04-01"}


def at(month: int, day: int, hour: int = 9, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, tzinfo=CST)


def history(category, cell, reported: datetime, steps: list[tuple], reporter=None, *, actor_id: int, **final):
    """An incident reported at ``reported`` whose timeline is ``steps``: (action, at, to_level
    [, data]) — no actor for the sweep's escalations, ``actor_id`` otherwise — and
    whose row ends as ``final`` says (status, level, due_at, resolved_level…)."""
    final = {"status": "closed", "level": "grid"} | final
    incident = make_incident(category, cell, reporter, reported_at=reported, occurred_at=reported, **final)
    level = "grid"
    for action, when, to_level, *data in steps:
        actor = None if action == "escalate" and data and data[0].get("sweep") else actor_id
        db.session.add(IncidentEvent(incident_id=incident.id, at=when, actor_id=actor, action=action,
                                     from_status=None, to_status=final["status"], from_level=level,
                                     to_level=to_level, data=data[0] if data else {}))
        level = to_level
    db.session.commit()
    return incident


@pytest.fixture
def cases(tree):
    """The cases of the city; comments give what each adds to the first quarter of 2026."""
    from functools import partial

    from server.models import Category

    case = partial(history, actor_id=tree["street"].id)  # the street supervisor acts

    fight = db.session.scalars(db.select(Category).where(Category.code == "0701")).one()
    dispute = db.session.scalars(db.select(Category).where(Category.code == "0601")).one()
    g1, g2, g3 = tree["G1"], tree["G2"], tree["G3"]
    made = {
        # on time, resolved at the grid, satisfied (5)
        "A": case(fight, g1, at(1, 5, 9), [("accept", at(1, 5, 10), "grid"), ("dispatch", at(1, 5, 12), "grid"),
                                             ("acknowledge", at(1, 5, 12) + timedelta(minutes=30), "grid"),
                                             ("resolve", at(1, 6, 10), "grid"), ("verify", at(1, 6, 12), "grid"),
                                             ("callback", at(1, 7), "grid", {"satisfaction": 5})],
                     due_at=at(1, 8), resolved_level="grid", reporter=tree["grid_worker"]),
        # reworked once, then on time; resolved at the community; satisfied (4)
        "B": case(fight, g1, at(1, 10, 8), [("accept", at(1, 10, 9), "grid"), ("dispatch", at(1, 10, 10), "grid"),
                                              ("acknowledge", at(1, 10, 11), "grid"),
                                              ("resolve", at(1, 11), "grid"), ("rework", at(1, 11, 12), "grid"),
                                              ("resolve", at(1, 12, 9), "grid"), ("verify", at(1, 12, 10), "grid"),
                                              ("callback", at(1, 13), "grid", {"satisfaction": 4})],
                     due_at=at(1, 20), resolved_level="community"),
        # escalated by the sweep (overdue): closed, not on time; a dispute mediated without agreement
        "C": case(dispute, g2, at(2, 1, 9), [("accept", at(2, 1, 11), "grid"), ("dispatch", at(2, 1, 12), "grid"),
                                               ("acknowledge", at(2, 1, 15), "grid"),
                                               ("escalate", at(2, 5), "community", {"sweep": True}),
                                               ("resolve", at(2, 10), "community"), ("verify", at(2, 11), "community")],
                     level="community", due_at=at(2, 15), resolved_level="community"),
        # suspended (缓办) now: out of the closure rates' base
        "D": case(fight, g2, at(2, 20, 9), [("accept", at(2, 20, 10), "grid"), ("suspend", at(2, 21), "grid")],
                     status="suspended", due_at=None),
        # an approved extension: resolved before the new deadline, on time
        "E": case(fight, g1, at(3, 1, 9), [("accept", at(3, 1, 10), "grid"), ("dispatch", at(3, 1, 11), "grid"),
                                             ("acknowledge", at(3, 1, 11) + timedelta(minutes=30), "grid"),
                                             ("approve_extension", at(3, 3), "grid"), ("resolve", at(3, 10), "grid"),
                                             ("verify", at(3, 11), "grid")],
                     due_at=at(3, 12), resolved_level="grid"),
        # the other district: accepted at the community, escalated by hand, resolved at the street;
        # a dispute mediated with an agreement
        "F": case(dispute, g3, at(3, 5, 9), [("accept", at(3, 5, 12), "community"),
                                               ("dispatch", at(3, 5, 13), "community"),
                                               ("escalate", at(3, 8), "street"), ("resolve", at(3, 20), "street"),
                                               ("verify", at(3, 21), "street")],
                     level="street", due_at=at(3, 25), resolved_level="street"),
        # the other district, still open
        "G": case(fight, g3, at(3, 28, 9), [("accept", at(3, 28, 10), "grid"), ("dispatch", at(3, 29), "grid")],
                     status="dispatched", due_at=at(4, 10)),
        # rejected: reported, not a valid report
        "H": case(fight, g1, at(3, 30, 9), [("reject", at(3, 30, 10), "grid")], status="rejected",
                     reporter=tree["grid_worker"]),
        # accepted in the period before, closed in this one: resolved and closed here, not accepted here
        "I": case(fight, g1, at(12, 28, 9, 2025), [("accept", at(12, 28, 10, 2025), "grid"),
                                                     ("dispatch", at(12, 28, 11, 2025), "grid"),
                                                     ("resolve", at(1, 3), "grid"), ("verify", at(1, 4), "grid")],
                     due_at=at(1, 5), resolved_level="grid"),
        # the year before: accepted and closed on time
        "J": case(fight, g1, at(2, 1, 9, 2025), [("accept", at(2, 1, 10, 2025), "grid"),
                                                   ("resolve", at(2, 2, 9, 2025), "grid"),
                                                   ("verify", at(2, 3, 9, 2025), "grid")],
                     due_at=at(2, 5, 9, 2025), resolved_level="grid"),
    }
    db.session.add_all([Mediation(incident_id=made["C"].id, mode="people", parties_count=2, agreement_reached=False),
                        Mediation(incident_id=made["F"].id, mode="people", parties_count=3, agreement_reached=True)])
    worker = tree["grid_worker"]
    make_task(made["A"], worker, status="done", created_at=at(1, 5, 12), ack_deadline=at(1, 5, 13),
              acknowledged_at=at(1, 5, 12) + timedelta(minutes=30), finished_at=at(1, 6, 10))
    make_task(made["B"], worker, status="done", created_at=at(1, 10, 10), ack_deadline=at(1, 10, 10) + timedelta(minutes=30), acknowledged_at=at(1, 10, 11), finished_at=at(1, 12, 9))
    police = tree.department  # late to acknowledge C, on time for E
    make_task(made["C"], department=police, status="done", created_at=at(2, 1, 12), ack_deadline=at(2, 1, 14),
              acknowledged_at=at(2, 1, 15), finished_at=at(2, 10, 9))
    make_task(made["E"], department=police, status="done", created_at=at(3, 1, 11), ack_deadline=at(3, 1, 12),
              acknowledged_at=at(3, 1, 11) + timedelta(minutes=30), finished_at=at(3, 10, 9))
    db.session.commit()
    return made


def stats(client, region, **params):
    response = client.get(f"/api/v1/stats/regions/{region.id}", params=Q1 | params)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_citys_figures_for_a_quarter_worked_out_by_hand(tree, cases, client_for):
    got = stats(client_for(tree["city"]), tree["C"])
    counts, rates, hours = got["figures"]["counts"], got["figures"]["rates"], got["figures"]["hours"]
    assert counts == {"reported": 8, "valid_reports": 7, "accepted": 7, "suspended": 1, "closed": 5,
                      "closed_on_time": 4, "dispatched": 6, "disposed": 5, "resolved": 6, "reworked": 1,
                      "extended": 1, "escalated": 2, "closed_in_period": 6, "resolved_in_village": 5,
                      "resolved_in_town": 6, "callbacks": 2, "mediated": 2}
    assert rates == pytest.approx({
        "closure": 5 / 6, "on_time": 4 / 6, "disposal": 5 / 6, "rework": 1 / 6, "extension": 1 / 7,
        "escalation": 2 / 7, "local": 5 / 6, "within_town": 1.0, "valid_reports": 7 / 8, "satisfied": 1.0,
        "mediation_success": 0.5})
    # report → accept: 1, 1, 2, 1, 1, 3, 1 hours; the 90th percentile between the 6th and 7th
    assert hours["accept"] == {"mean": round(10 / 7, 2), "p90": 2.4}
    # first 派遣 → first 签收: 0.5 (A), 1 (B), 3 (C, by the police) and 0.5 (E, the police) hours
    assert hours["ack"] == {"mean": 1.25, "p90": 2.4}
    # first accept → last 处置反馈 of A, B, C, E, F and I: 24, 48, 214, 215, 357 and 143 hours
    assert hours["resolve"]["mean"] == round((24 + 48 + 214 + 215 + 357 + 143) / 6, 2)
    assert got["figures"]["satisfaction_mean"] == 4.5
    assert got["escalation_by_level"] == {
        "grid": {"handled": 6, "escalated": 1, "rate": 1 / 6},
        "community": {"handled": 2, "escalated": 1, "rate": 0.5},
        "street": {"handled": 1, "escalated": 0, "rate": 0.0}}


def test_the_districts_are_scored_and_ranked(tree, cases, client_for):
    got = stats(client_for(tree["city"]), tree["C"])
    children = {c["region"]["id"]: c for c in got["children"]}
    d1, d2 = children[tree["D1"].id], children[tree["D2"].id]
    assert d1["figures"]["rates"]["closure"] == 1.0 and d1["figures"]["rates"]["on_time"] == 0.75
    # 25 × 1 + 25 × 0.75 + 20 × 1 + 10 × (1 − 0.2) + 20 × (4.5 − 1) / 4
    assert (d1["score"], d1["rank"]) == (89.25, 1)
    # no call-back in D2: satisfaction drops out, the other weights (80) rescaled
    assert (d2["score"], d2["rank"]) == (pytest.approx(100 * (12.5 + 12.5 + 0 + 10) / 80), 2)
    assert [c["rank"] for c in got["children"]] == [1, 2]
    weighted = stats(client_for(tree["city"]), tree["C"], weights="local:1")
    assert {c["region"]["id"]: c["score"] for c in weighted["children"]} == {tree["D1"].id: 100.0,
                                                                             tree["D2"].id: 0.0}


def test_the_period_before_and_the_year_before(tree, cases, client_for):
    got = stats(client_for(tree["city"]), tree["C"])
    assert got["previous"]["period"] == {"from": "2025-10-01", "to": "2026-01-01"}  # the quarter before
    assert got["previous"]["figures"]["counts"]["accepted"] == 1  # I
    assert got["previous"]["change_pp"]["closure"] == pytest.approx(100 * (5 / 6 - 1), abs=0.01)
    assert got["year_before"]["period"] == {"from": "2025-01-01", "to": "2025-04-01"}
    assert got["year_before"]["figures"]["rates"]["on_time"] == 1.0  # J
    assert got["year_before"]["change_pp"]["on_time"] == pytest.approx(100 * (4 / 6 - 1), abs=0.01)


def test_each_child_is_compared_with_its_own_past(tree, cases, client_for):
    city = client_for(tree["city"])
    got = stats(city, tree["C"])
    for when in ("previous", "year_before"):
        before = {c["region"]["id"]: c["figures"]["rates"] for c in stats(city, tree["C"], **{
            "from": got[when]["period"]["from"], "to": got[when]["period"]["to"]})["children"]}
        for child in got["children"]:
            then = before[child["region"]["id"]]
            assert child["change_pp"][when] == pytest.approx({
                name: None if now is None or then[name] is None else round(100 * (now - then[name]), 2)
                for name, now in child["figures"]["rates"].items()})
    d1 = next(c for c in got["children"] if c["region"]["id"] == tree["D1"].id)
    assert d1["change_pp"]["previous"]["closure"] == 0.0  # I closed in the quarter before, all of D1's too
    assert d1["change_pp"]["year_before"]["on_time"] == -25.0  # J on time a year before; 3 of 4 now


def test_a_street_sees_its_own_figures_and_nothing_else(tree, cases, client_for):
    street = client_for(tree["street"])
    got = stats(street, tree["S1"])
    assert got["figures"]["counts"]["accepted"] == 5 and got["figures"]["counts"]["suspended"] == 1
    assert [c["region"]["id"] for c in got["children"]] == [tree["K1"].id]
    assert street.get(f"/api/v1/stats/regions/{tree['D2'].id}", params=Q1).json()["code"] == "region.not_found"
    worker = client_for(tree["grid_worker"])
    assert worker.get(f"/api/v1/stats/regions/{tree['K1'].id}", params=Q1).json()["code"] == "auth.forbidden"


@pytest.mark.parametrize("params, field", [
    ({"from": "2026-04-01", "to": "2026-01-01"}, "to"),
    ({"from": "2020-01-01", "to": "2026-01-01"}, "to"),
    ({"from": "2026-13-01", "to": "2026-04-01"}, "from"),
    ({"to": "2026-04-01"}, "from"),
    ({"from": "0001-01-01", "to": "0001-04-01"}, "from"),
    ({"from": "9999-01-01", "to": "9999-04-01"}, "from"),
    (Q1 | {"weights": "closure:25,bribes:75"}, "weights"),
    (Q1 | {"weights": "closure:abc"}, "weights"),
    (Q1 | {"weights": "closure:0"}, "weights"),
    (Q1 | {"weights": "closure:101"}, "weights"),
])
def test_bad_periods_and_weights_are_422(tree, client_for, params, field):
    response = client_for(tree["city"]).get(f"/api/v1/stats/regions/{tree['C'].id}", params=params)
    assert response.status_code == 422 and field in response.json()["errors"], response.text


def test_departments_and_workers(tree, cases, client_for):
    city = client_for(tree["city"])
    got = city.get(f"/api/v1/stats/regions/{tree['C'].id}/departments", params=Q1).json()
    (police,) = got["departments"]
    assert police["department"]["id"] == tree.department.id
    # C acknowledged in 3 h (late), E in 0.5 h (on time); done in 213 and 214 hours
    assert {k: police[k] for k in ("tasks", "acknowledged", "done", "ack_on_time")} == {
        "tasks": 2, "acknowledged": 2, "done": 2, "ack_on_time": 0.5}
    assert police["ack_hours"]["mean"] == 1.75 and police["done_hours"]["mean"] == 213.5
    workers = city.get(f"/api/v1/stats/regions/{tree['C'].id}/workers", params=Q1).json()["workers"]
    (worker,) = workers  # the one grid worker, in K1
    assert worker["worker"]["id"] == tree["grid_worker"].id
    assert {k: worker[k] for k in ("reports", "valid_reports", "valid_rate", "resolved_on_spot", "tasks",
                                   "acknowledged", "ack_on_time", "done")} == {
        "reports": 2, "valid_reports": 1, "valid_rate": 0.5, "resolved_on_spot": 0, "tasks": 2,
        "acknowledged": 2, "ack_on_time": 0.5, "done": 2}  # B acknowledged after its 30 minutes
    elsewhere = city.get(f"/api/v1/stats/regions/{tree['D2'].id}/workers", params=Q1).json()
    assert elsewhere["workers"] == []
    assert city.get(f"/api/v1/stats/regions/{tree['D2'].id}/departments", params=Q1).json()["departments"] == []
    bad = city.get(f"/api/v1/stats/regions/{tree['C'].id}/workers", params={"from": "2026-01-01"})
    assert bad.status_code == 422 and "to" in bad.json()["errors"]


def test_trends_by_category_group_and_month_or_week(tree, cases, client_for):
    city = client_for(tree["city"])
    got = city.get(f"/api/v1/stats/regions/{tree['C'].id}/trends", params=Q1 | {"interval": "month"}).json()
    assert got["buckets"] == ["2026-01-01", "2026-02-01", "2026-03-01"]
    # fights: A and B in January, D in February, E and G in March (H, rejected, is no problem);
    # disputes: C in February, F in March
    assert [(s["category_group"]["code"], s["reports"], s["total"]) for s in got["series"]] == [
        ("07", [2, 1, 2], 5), ("06", [0, 1, 1], 2)]
    weekly = city.get(f"/api/v1/stats/regions/{tree['C'].id}/trends", params=Q1).json()
    assert weekly["buckets"][0] == "2025-12-29" and len(weekly["buckets"]) == 14  # Mondays meeting the quarter
    # A (Monday 5 January) and B (Saturday 10 January) in the week of 5 January
    assert sum(weekly["series"][0]["reports"]) == 5 and weekly["series"][0]["reports"][1] == 2
    bad = city.get(f"/api/v1/stats/regions/{tree['C'].id}/trends", params=Q1 | {"interval": "day"})
    assert bad.status_code == 422 and "interval" in bad.json()["errors"]


def test_a_child_without_a_case_has_zeros_and_no_rank(tree, cases, client_for):
    got = stats(client_for(tree["district"]), tree["D1"])
    children = {c["region"]["id"]: c for c in got["children"]}
    s2 = children[tree["S2"].id]  # S2 has no cell and no case
    assert set(s2["figures"]["counts"].values()) == {0} and set(s2["figures"]["rates"].values()) == {None}
    assert (s2["score"], s2["rank"]) == (None, None) and children[tree["S1"].id]["rank"] == 1
    assert [c["region"]["id"] for c in got["children"]] == [tree["S1"].id, tree["S2"].id]  # the ranked first


def milestones() -> dict[int, dict]:
    rows = db.session.execute(db.text("SELECT * FROM incident_milestones ORDER BY incident_id")).mappings()
    return {r["incident_id"]: {k: sorted(v) if isinstance(v, list) else v for k, v in r.items()} for r in rows}


def test_the_milestones_kept_event_by_event_equal_those_made_from_the_whole_timelines(tree, cases):
    kept = milestones()
    assert set(kept) == {c.id for c in cases.values()}
    for case in cases.values():
        db.session.execute(db.text("SELECT incident_milestones_refresh(:id)"), {"id": case.id})
    assert milestones() == kept
    c = cases["C"]
    assert (kept[c.id]["handled_levels"], kept[c.id]["escalated_from"]) == (["community", "grid"], ["grid"])
    assert (kept[cases["A"].id]["satisfaction"], kept[cases["A"].id]["status"]) == (5, "closed")


def test_a_corrected_timeline_corrects_the_figures(tree, cases, client_for):
    """An event removed or its time corrected, or a case moved to another cell: the
    milestones are made again, and the figures follow."""
    city = client_for(tree["city"])
    assert stats(city, tree["C"])["figures"]["counts"]["reworked"] == 1
    rework = db.session.scalars(db.select(IncidentEvent).where(IncidentEvent.incident_id == cases["B"].id,
                                                               IncidentEvent.action == "rework")).one()
    db.session.delete(rework)
    accept = db.session.scalars(db.select(IncidentEvent).where(IncidentEvent.incident_id == cases["G"].id,
                                                               IncidentEvent.action == "accept")).one()
    accept.at = at(4, 2)  # G accepted in the next quarter after all
    db.session.commit()
    got = stats(city, tree["C"])["figures"]["counts"]
    assert (got["reworked"], got["accepted"]) == (0, 6)
    cases["E"].region_id, cases["E"].region_path = tree["G3"].id, tree["G3"].path  # E moved to the other district
    db.session.commit()
    moved = {c["region"]["id"]: c["figures"]["counts"]["accepted"] for c in stats(city, tree["C"])["children"]}
    assert moved == {tree["D1"].id: 4, tree["D2"].id: 2}  # A, B, C, D | F, E (G accepted in April now)
    cases["D"].status = "dispatched"  # D resumed: the incident's status now, copied to its milestones
    db.session.commit()
    assert stats(city, tree["C"])["figures"]["counts"]["suspended"] == 0
