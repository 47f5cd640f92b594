"""Places to check in at and check-ins on patrol, and the worker's upkeep of patrols: those
left on too long ended, and points past the retention period deleted (docs/FIELD.md)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from server.extensions import db as _db
from server.models import Patrol, PatrolCheckin, PatrolPoint
from server.models._base import utcnow
from server.services.patrols import close_abandoned, purge_expired
from tests.builders import make_user

DEG_LAT_M = 111_195.0
GATE = [-118.3875, 34.025]  # the middle of G1
PLACES = "/api/v1/patrol-places"


def north(metres: float, of=GATE) -> list[float]:
    return [of[0], of[1] + metres / DEG_LAT_M]


def start(client, at):
    response = client.post("/api/v1/patrols", json={"client_uuid": str(uuid.uuid4()), "started_at": at.isoformat()})
    assert response.status_code == 201, response.text
    return response.json()


def place(client, **body):
    payload = {"name": "第一小学校门", "name_en": "No. 1 Primary School gate",
               "location": {"type": "Point", "coordinates": GATE}, "radius_m": 50} | body
    return client.post(PLACES, json=payload)


def test_supervisors_set_places_that_workers_of_the_area_see(tree, worker, community, client_for):
    made = place(community)
    assert made.status_code == 201, made.text
    gate = made.json()
    assert gate["region_id"] == tree["G1"].id and gate["location"]["coordinates"] == pytest.approx(GATE)
    assert [p["id"] for p in worker.get(PLACES).json()] == [gate["id"]]
    assert [p["id"] for p in community.get(f"{PLACES}?region_id={tree['G1'].id}").json()] == [gate["id"]]
    assert community.get(f"{PLACES}?region_id={tree['G2'].id}").json() == []
    other = client_for(make_user("district2", "district", tree["D2"]))
    assert other.get(PLACES).json() == []
    assert other.delete(f"{PLACES}/{gate['id']}").status_code == 404
    for body, status, code in [
        ({"location": {"type": "Point", "coordinates": [-117.0, 33.0]}}, 422, "place.outside_grid"),
        ({"radius_m": 0}, 422, "request.invalid"),
        ({"radius_m": 5000}, 422, "request.invalid"),
        ({"name": "   "}, 422, "request.invalid"),
        ({"location": {"type": "Point", "coordinates": [-118.3875, 95]}}, 422, None),
    ]:
        response = place(community, **body)
        assert response.status_code == status and (code is None or response.json()["code"] == code), body
    refused = place(worker)
    assert refused.status_code == 403 and refused.json()["code"] == "auth.forbidden"
    assert len(community.get(PLACES).json()) == 1
    assert community.delete(f"{PLACES}/{gate['id']}").status_code == 204
    assert community.delete(f"{PLACES}/{gate['id']}").status_code == 204
    assert worker.get(PLACES).json() == []


def test_a_worker_checks_in_within_the_radius_once_per_client_uuid(tree, worker, community, client_for):
    gate = place(community).json()
    t0 = utcnow() - timedelta(hours=1)
    patrol = start(worker, t0)
    url = f"/api/v1/patrols/{patrol['id']}/checkins"

    def check_in(**body):
        payload = {"client_uuid": str(uuid.uuid4()), "place_id": gate["id"],
                   "location": {"type": "Point", "coordinates": north(30)}, "accuracy_m": 8} | body
        return worker.post(url, json=payload)

    key = str(uuid.uuid4())
    first = check_in(client_uuid=key)
    assert first.status_code == 201, first.text
    assert first.json()["distance_m"] == pytest.approx(30, abs=0.5) and first.json()["place_name"] == "第一小学校门"
    again = check_in(client_uuid=key)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    # 55 m away with a 10 m fix: within 50 + 10; 65 m away with a 10 m fix: outside
    assert check_in(location={"type": "Point", "coordinates": north(55)}, accuracy_m=10).status_code == 201
    far = check_in(location={"type": "Point", "coordinates": north(65)}, accuracy_m=10)
    assert (far.status_code, far.json()["code"]) == (422, "patrol.outside_geofence")
    assert "65 m" in far.json()["message"]
    rough = check_in(accuracy_m=80)
    assert (rough.status_code, rough.json()["code"]) == (422, "patrol.inaccurate_fix")
    early = check_in(t=(t0 - timedelta(hours=1)).isoformat())
    assert (early.status_code, early.json()["code"]) == (422, "patrol.outside_patrol")
    assert check_in(place_id=999999).status_code == 404
    elsewhere = client_for(tree["street"]).post(PLACES, json={
        "name": "河堤", "location": {"type": "Point", "coordinates": [-118.3625, 34.025]}, "radius_m": 100}).json()
    assert elsewhere["region_id"] == tree["G2"].id  # G2 is in the worker's community: allowed
    assert check_in(place_id=elsewhere["id"], location={"type": "Point",
                                                        "coordinates": [-118.3625, 34.025]}).status_code == 201
    other_worker = client_for(make_user("worker2", "grid_worker", tree["K1"]))
    stolen = other_worker.post(url, json={"client_uuid": str(uuid.uuid4()), "place_id": gate["id"],
                                          "location": {"type": "Point", "coordinates": GATE}})
    assert stolen.status_code == 404
    replayed_elsewhere = other_worker.post(f"/api/v1/patrols/{start(other_worker, t0)['id']}/checkins",
                                           json={"client_uuid": key, "place_id": gate["id"],
                                                 "location": {"type": "Point", "coordinates": GATE}})
    assert replayed_elsewhere.status_code == 409
    read = worker.get(f"/api/v1/patrols/{patrol['id']}").json()
    assert [c["place_id"] for c in read["checkins"]] == [gate["id"], gate["id"], elsewhere["id"]]
    _db.session.rollback()
    assert _db.session.scalar(select(func.count()).select_from(PatrolCheckin)) == 3
    community.delete(f"{PLACES}/{gate['id']}")
    assert check_in().status_code == 404  # retired


def test_the_worker_ends_patrols_left_on_and_deletes_points_past_the_retention(tree, worker, community, app):
    t0 = utcnow() - timedelta(hours=20)
    left_on = start(worker, t0)
    fixes = [{"t": (t0 + timedelta(minutes=m)).isoformat(), "lon": GATE[0], "lat": GATE[1] + m * 20 / DEG_LAT_M,
              "accuracy_m": 5} for m in range(0, 180, 1)]
    assert worker.post(f"/api/v1/patrols/{left_on['id']}/points", json={"points": fixes}).json()["stored"] == 180
    now = utcnow()
    assert close_abandoned(now) == 1 and close_abandoned(now) == 0
    read = worker.get(f"/api/v1/patrols/{left_on['id']}").json()
    assert read["state"] == "abandoned"
    assert datetime.fromisoformat(read["ended_at"]) == datetime.fromisoformat(fixes[-1]["t"])  # at the last point
    assert read["points_kept"] == 180 and read["track"] is not None
    old = start(worker, utcnow() - timedelta(minutes=5))  # a new patrol may start
    gate = place(community).json()
    worker.post(f"/api/v1/patrols/{old['id']}/checkins", json={
        "client_uuid": str(uuid.uuid4()), "place_id": gate["id"], "location": {"type": "Point", "coordinates": GATE}})
    worker.post(f"/api/v1/patrols/{old['id']}/end", json={})
    retention = timedelta(days=app.config["PATROL_RETENTION_DAYS"])
    assert purge_expired(utcnow() + retention - timedelta(hours=1)) == 1  # only the abandoned one, 20 h older
    assert purge_expired(utcnow() + retention + timedelta(hours=1)) == 1
    assert purge_expired(utcnow() + retention + timedelta(hours=2)) == 0
    _db.session.rollback()
    assert _db.session.scalar(select(func.count()).select_from(PatrolPoint)) == 0
    checkin = _db.session.scalars(select(PatrolCheckin)).one()
    assert checkin.geom is None and checkin.distance_m == 0
    purged = worker.get(f"/api/v1/patrols/{left_on['id']}").json()
    assert purged["purged"] is True and purged["track"] is None and purged["distance_m"] > 3000
    assert _db.session.scalar(select(func.count()).select_from(Patrol).where(Patrol.purged_at.is_(None))) == 0


def test_a_patrol_abandoned_while_the_phone_was_offline_takes_its_points_later(tree, worker):
    t0 = utcnow() - timedelta(hours=16)
    patrol = start(worker, t0)
    assert close_abandoned(utcnow()) == 1
    url = f"/api/v1/patrols/{patrol['id']}"
    guessed = worker.get(url).json()
    assert guessed["state"] == "abandoned" and guessed["ended_at"] == guessed["started_at"] and guessed["track"] is None
    fixes = [{"t": (t0 + timedelta(minutes=m)).isoformat(), "lon": GATE[0], "lat": GATE[1] + m * 30 / DEG_LAT_M,
              "accuracy_m": 5} for m in range(10, 400, 10)]  # 300 m each 10 minutes
    beyond = [{"t": (t0 + timedelta(hours=15)).isoformat(), "lon": GATE[0], "lat": GATE[1], "accuracy_m": 5}]
    got = worker.post(url + "/points", json={"points": fixes + beyond}).json()
    assert got == {"stored": 39, "duplicates": 0, "refused": 1}  # the hour past the 14 is not the shift's
    read = worker.get(url).json()
    assert read["state"] == "abandoned" and datetime.fromisoformat(read["ended_at"]) == \
        datetime.fromisoformat(fixes[-1]["t"])
    assert read["points_kept"] == 39 and read["distance_m"] == pytest.approx(38 * 300, rel=0.01)
