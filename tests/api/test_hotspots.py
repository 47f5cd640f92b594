"""Hotspots of a region (docs/STATS.md) on hand-built report histories: a cell hot against
its own past, one busy but as busy as ever, one new and judged against the floor, a rejected
report that does not count, and a spot reported again and again."""
from __future__ import annotations

from datetime import timedelta

import pytest
from shapely.geometry import Point

from server.extensions import db
from server.models import Category
from server.models._base import utcnow
from tests.incident_builders import make_incident, point_in

END = utcnow().replace(microsecond=0)


def reports(category, cell, weeks_ago: int, count: int, at=None, status="reported"):
    """``count`` reports in ``cell``, ``weeks_ago`` weeks before the window (0: in it)."""
    when = END - timedelta(days=3) - timedelta(weeks=weeks_ago)
    for n in range(count):
        make_incident(category, cell, None, status=status, reported_at=when - timedelta(minutes=n),
                      at=at(n) if at else point_in(cell, 0.1 + 0.08 * (n % 10), 0.5))


@pytest.fixture
def history(tree):
    fight = db.session.scalars(db.select(Category).where(Category.code == "0701")).one()
    litter = db.session.scalars(db.select(Category).where(Category.code == "0101")).one()
    for week in range(1, 9):
        reports(fight, tree["G1"], week, 1)  # G1: one fight a week for eight weeks…
        reports(litter, tree["G2"], week, 2)  # G2: two litter reports a week
    reports(fight, tree["G1"], 0, 6)  # …then six this week: hot
    reports(litter, tree["G2"], 0, 3)  # three this week: as usual
    reports(litter, tree["G3"], 0, 3)  # G3: three, never any before: p ≈ 0.014 against the floor
    reports(litter, tree["G3"], 0, 5, status="rejected")  # refused reports are no problems
    corner = point_in(tree["G2"], 0.9, 0.9)
    reports(fight, tree["G2"], 0, 4, at=lambda n: Point(corner.x + 0.00005 * n, corner.y))  # within ~15 m
    return {"fight": fight, "litter": litter}


def hotspots(client, region, **params):
    response = client.get(f"/api/v1/stats/regions/{region.id}/hotspots", params={"end": END.isoformat()} | params)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_cell_hot_against_its_own_past(tree, history, client_for):
    got = hotspots(client_for(tree["city"]), tree["C"])
    # most surprising first: G1's six fights against one a week (p ≈ 0.0006), then G2's four
    # fights (the repeated spot), none before, against the floor of 0.5 a week (p ≈ 0.0018)
    hot, second = got["hotspots"]["features"]
    assert (second["properties"]["region"]["id"], second["properties"]["category_group"]["code"],
            second["properties"]["baseline_mean"], second["properties"]["ratio"]) == (tree["G2"].id, "07", 0.0, None)
    assert second["properties"]["p_value"] == pytest.approx(0.001752, abs=1e-6)
    p = hot["properties"]
    assert (p["region"]["id"], p["category_group"]["code"], p["reports"], p["baseline_mean"], p["ratio"]) == (
        tree["G1"].id, "07", 6, 1.0, 6.0)
    assert p["p_value"] == pytest.approx(0.000594, abs=1e-6) and hot["geometry"]["type"] == "Point"
    # at 5 %, the new cell G3's litter too: three against the floor (p ≈ 0.014); G2's litter,
    # three against two a week, never
    lenient = hotspots(client_for(tree["city"]), tree["C"], alpha=0.05)["hotspots"]["features"]
    assert {(f["properties"]["region"]["id"], f["properties"]["category_group"]["code"]) for f in lenient} == {
        (tree["G1"].id, "07"), (tree["G3"].id, "01"), (tree["G2"].id, "07")}


def test_the_spot_reported_again_and_again(tree, history, client_for):
    got = hotspots(client_for(tree["city"]), tree["C"], radius_m=30, repeat_min=4)
    (spot,) = got["repeated"]["features"]
    assert spot["properties"]["reports"] == 4 and spot["properties"]["category_group"]["code"] == "07"
    assert hotspots(client_for(tree["city"]), tree["C"], radius_m=2, repeat_min=4)["repeated"]["features"] == []


def test_streets_scope_and_bad_arguments(tree, history, client_for):
    city = client_for(tree["city"])
    streets = hotspots(city, tree["C"], level="street")["hotspots"]["features"]
    # S1's fights: ten this week against one a week (G1's); S3 (G3) has litter only, three
    assert [f["properties"]["region"]["id"] for f in streets] == [tree["S1"].id]
    street = client_for(tree["street"])
    assert street.get(f"/api/v1/stats/regions/{tree['D2'].id}/hotspots").json()["code"] == "region.not_found"
    assert [f["properties"]["region"]["id"] for f in hotspots(street, tree["S1"])["hotspots"]["features"]] == [
        tree["G1"].id, tree["G2"].id]
    bad = city.get(f"/api/v1/stats/regions/{tree['K1'].id}/hotspots", params={"level": "street"})
    assert bad.status_code == 422 and bad.json()["code"] == "stats.invalid_level"
    for params in ({"alpha": 0}, {"days": 0}, {"level": "planet"}, {"end": "2026-01-01T00:00:00"},
                   {"radius_m": 5000}, {"end": "0001-01-02T00:00:00+00:00"}, {"end": "9999-12-31T00:00:00+00:00"}):
        response = city.get(f"/api/v1/stats/regions/{tree['C'].id}/hotspots", params=params)
        assert response.status_code == 422, params


def test_a_cell_turning_hot_warns_its_supervisors_once(tree, history, app, client_for):
    from sqlalchemy import func, select

    from server.domain.hotspots import HotspotRules
    from server.models import Device, HotspotAlert, Notification, OutboxMessage
    from server.services.hotspots import raise_alerts

    db.session.add(Device(user_id=tree["community"].id, token="community-phone", token_kind="registration_token",
                          platform="android"))
    db.session.commit()
    rules = HotspotRules()
    assert raise_alerts(END, rules) == 2  # G1's fights and G2's: the cells of the hot pairs
    db.session.commit()
    alerts = db.session.scalars(select(HotspotAlert).order_by(HotspotAlert.p_value)).all()
    assert [(a.region_id, a.reports) for a in alerts] == [(tree["G1"].id, 6), (tree["G2"].id, 4)]
    told = db.session.execute(select(Notification.user_id, Notification.kind, Notification.body, Notification.title)
                              .order_by(Notification.id)).all()
    # the community's and the street's supervisors of each cell, in their inbox, in Chinese and English
    assert sorted((row.user_id, row.kind) for row in told) == sorted(
        [(tree["community"].id, "hotspot"), (tree["street"].id, "hotspot")] * 2)
    assert told[0].title == "风险预警" and "6起" in told[0].body and tree["G1"].name in told[0].body
    pushes = db.session.scalars(select(OutboxMessage)).all()
    assert len(pushes) == 2 and all(p.payload["type"] == "hotspot" and p.payload["incident_id"] == "" for p in pushes)
    inbox = client_for(tree["community"]).get("/api/v1/me/notifications").json()["items"]
    assert [(n["kind"], n["incident_id"]) for n in inbox] == [("hotspot", None)] * 2
    # still hot an hour later: no storm, nothing new
    assert raise_alerts(END + timedelta(hours=1), rules) == 0
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 4
