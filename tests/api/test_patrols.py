"""Patrols over HTTP (docs/FIELD.md): start and end a shift, GPS batches sent twice, out of
order, late and with bad fixes, the track made from the points kept, who may see it."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from server.models._base import utcnow
from tests.builders import make_user

DEG_LAT_M = 111_195.0


def start(client, **body):
    return client.post("/api/v1/patrols", json={"client_uuid": str(uuid.uuid4())} | body)


def fixes(t0, n, *, step_m=12.0, every_s=10, lon=113.3, lat=23.1, accuracy=5.0):
    """``n`` fixes walking north ``step_m`` metres every ``every_s`` seconds from ``t0``."""
    return [{"t": (t0 + timedelta(seconds=every_s * k)).isoformat(), "lon": lon, "lat": lat + k * step_m / DEG_LAT_M,
             "accuracy_m": accuracy} for k in range(n)]


def test_a_shift_with_its_points_sent_twice_out_of_order_with_bad_fixes(tree, worker):
    t0 = utcnow() - timedelta(hours=2)
    first = start(worker, started_at=t0.isoformat())
    assert first.status_code == 201, first.text
    patrol = first.json()
    again = worker.post("/api/v1/patrols", json={"client_uuid": None})  # a bad start changes nothing
    assert again.status_code == 422
    points = fixes(t0 + timedelta(minutes=1), 30)
    points[10]["lat"] += 3000 / DEG_LAT_M  # a spike 3 km away and back in 20 s
    points[20]["accuracy_m"] = 400  # a cell-tower fix
    outside = fixes(t0 - timedelta(hours=1), 1)  # before the patrol began
    same_slot = dict(points[5])  # the same fix twice in one batch
    batch = list(reversed(points)) + outside + [same_slot]
    url = f"/api/v1/patrols/{patrol['id']}/points"
    got = worker.post(url, json={"points": batch})
    assert got.json() == {"stored": 30, "duplicates": 1, "refused": 1}, got.text
    assert worker.post(url, json={"points": batch}).json() == {"stored": 0, "duplicates": 31, "refused": 1}
    read = worker.get(f"/api/v1/patrols/{patrol['id']}").json()
    assert read["state"] == "on" and read["points_kept"] == 28  # the spike and the tower fix left out
    (line,) = read["track"]["coordinates"]
    assert len(line) == 28 and read["distance_m"] == pytest.approx(29 * 12, rel=0.01)  # 12 m a step, one joined
    ended = worker.post(f"/api/v1/patrols/{patrol['id']}/end", json={})
    assert ended.status_code == 200 and ended.json()["state"] == "ended"
    assert ended.json()["points_kept"] == 28 and ended.json()["track"] == read["track"]


def test_a_late_batch_after_the_end_joins_the_track_in_time_order(tree, worker):
    t0 = utcnow() - timedelta(hours=30)
    patrol = start(worker, started_at=t0.isoformat()).json()
    url = f"/api/v1/patrols/{patrol['id']}"
    worker.post(url + "/points", json={"points": fixes(t0, 5)})
    worker.post(url + "/end", json={"ended_at": (t0 + timedelta(hours=4)).isoformat()})
    # a day later the phone comes back online with the hour in between: 20 minutes after the first fixes
    late = fixes(t0 + timedelta(minutes=20), 5, lat=23.2)
    assert worker.post(url + "/points", json={"points": late}).json()["stored"] == 5
    read = worker.get(url).json()
    assert read["points_kept"] == 10 and len(read["track"]["coordinates"]) == 2  # a gap of 20 min: two lines


def test_a_patrol_ended_long_ago_takes_no_points(tree, worker):
    t0 = utcnow() - timedelta(hours=60)
    patrol = start(worker, started_at=t0.isoformat()).json()
    url = f"/api/v1/patrols/{patrol['id']}"
    worker.post(url + "/end", json={"ended_at": (t0 + timedelta(hours=8)).isoformat()})
    late = worker.post(url + "/points", json={"points": fixes(t0, 3)})
    assert late.status_code == 409 and late.json()["code"] == "patrol.closed"


def test_one_patrol_on_at_a_time_and_a_repeat_is_the_same(tree, worker):
    key = str(uuid.uuid4())
    first = worker.post("/api/v1/patrols", json={"client_uuid": key})
    repeat = worker.post("/api/v1/patrols", json={"client_uuid": key})
    assert (first.status_code, repeat.status_code) == (201, 200) and first.json()["id"] == repeat.json()["id"]
    other = start(worker)
    assert other.status_code == 409 and other.json()["code"] == "patrol.already_on"


def test_who_may_see_and_write_a_patrol(tree, worker, community, street, client_for):
    patrol = start(worker).json()
    url = f"/api/v1/patrols/{patrol['id']}"
    assert community.get(url).status_code == 200 and street.get(url).status_code == 200
    elsewhere = client_for(make_user("district2", "district", tree["D2"]))
    assert elsewhere.get(url).json()["code"] == "patrol.not_found"
    assert community.post(url + "/points", json={"points": fixes(utcnow(), 1)}).json()["code"] == "auth.forbidden"
    assert community.post("/api/v1/patrols", json={"client_uuid": str(uuid.uuid4())}).json()["code"] == \
        "auth.forbidden"


@pytest.mark.parametrize("body, field", [
    ({"points": []}, "points"),
    ({"points": [{"t": "2026-11-24T08:00:00", "lon": 113.3, "lat": 23.1}]}, "points"),  # no zone
    ({"points": [{"t": "2026-11-24T08:00:00Z", "lon": 200, "lat": 23.1}]}, "points"),
    ({"points": [{"t": "2026-11-24T08:00:00Z", "lon": 113.3, "lat": 23.1, "accuracy_m": -1}]}, "points"),
    ({"points": [{"t": "2026-11-24T08:00:00Z", "lon": 113.3, "lat": 23.1}] * 1001}, "points"),
])
def test_bad_batches_are_422_and_store_nothing(tree, worker, body, field):
    patrol = start(worker).json()
    got = worker.post(f"/api/v1/patrols/{patrol['id']}/points", json=body)
    assert got.status_code == 422 and field in got.json()["errors"], got.text
    assert worker.get(f"/api/v1/patrols/{patrol['id']}").json()["points_kept"] == 0


@pytest.mark.parametrize("started_at", ["0001-01-01T00:00:00+00:00", "2000-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_a_start_long_ago_or_ahead_is_422(tree, worker, started_at):
    got = start(worker, started_at=started_at)
    assert got.status_code == 422 and "started_at" in got.json()["errors"], got.text


def test_an_end_before_the_start_is_422(tree, worker):
    patrol = start(worker).json()
    got = worker.post(f"/api/v1/patrols/{patrol['id']}/end",
                      json={"ended_at": (utcnow() - timedelta(days=1)).isoformat()})
    assert got.status_code == 422 and "ended_at" in got.json()["errors"]


def test_patrols_are_listed_to_their_worker_and_the_managers_of_the_area(tree, worker, community, client_for):
    t0 = utcnow() - timedelta(hours=3)
    first = start(worker, started_at=t0.isoformat()).json()
    worker.post(f"/api/v1/patrols/{first['id']}/end", json={"ended_at": (t0 + timedelta(hours=1)).isoformat()})
    second = start(worker).json()
    other = make_user("worker2", "grid_worker", tree["K2"])
    start(client_for(other))
    assert [p["id"] for p in worker.get("/api/v1/patrols").json()["items"]] == [second["id"], first["id"]]
    mine = community.get(f"/api/v1/patrols?user_id={tree['grid_worker'].id}&state=ended").json()
    assert [p["id"] for p in mine["items"]] == [first["id"]] and mine["total"] == 1 and "track" not in mine["items"][0]
    assert {p["user_id"] for p in community.get("/api/v1/patrols").json()["items"]} == {tree["grid_worker"].id}
    late = community.get("/api/v1/patrols", params={"from": (t0 + timedelta(hours=2)).isoformat()}).json()
    assert [p["id"] for p in late["items"]] == [second["id"]]
    district2 = client_for(make_user("district2", "district", tree["D2"]))
    assert {p["user_id"] for p in district2.get("/api/v1/patrols").json()["items"]} == {other.id}
    assert client_for(tree["department"]).get("/api/v1/patrols").json()["items"] == []
    for bad in ("state=lost", "from=yesterday", "page=0", "user_id=abc"):
        assert community.get(f"/api/v1/patrols?{bad}").status_code == 422, bad


def test_batches_in_any_order_are_judged_as_the_whole_patrol_at_once(tree, worker):
    """Each batch judges only the points it can change (server/services/patrols.py _judge):
    after shuffled, overlapping batches with spikes and tower fixes, every stored reason is
    what judging the whole patrol in one go gives."""
    import random

    from sqlalchemy import text

    from server.domain.patrols import Fix, judge
    from server.extensions import db as _db

    rng = random.Random(7)
    t0 = utcnow() - timedelta(hours=3)
    patrol = start(worker, started_at=t0.isoformat()).json()
    points = fixes(t0 + timedelta(seconds=5), 400, every_s=5, step_m=4)
    # batches of 25 (batch c holds points 25c … 25c + 24), the even ones sent first, each half shuffled:
    # - a spike ending an even batch is kept when it lands (its next fix is two minutes away) and must
    #   become a jump when the odd batch after it fills the gap: the batch's neighbour judged again;
    # - a pair of spikes side by side across an odd/even boundary is kept (each has a near neighbour);
    # - lone spikes and tower fixes anywhere.
    spikes = {25 * c + 24 for c in range(0, 16, 2)} | set(rng.sample(range(400), 20))
    pairs = {k for j in range(0, 16, 4) for k in (25 * j + 49, 25 * j + 50)}
    for k in spikes - pairs:
        points[k]["lat"] += rng.choice((1, -1)) * rng.uniform(500, 3000) / DEG_LAT_M
    for k in pairs:
        points[k]["lat"] += 2000 / DEG_LAT_M
    for k in rng.sample(sorted(set(range(400)) - spikes - pairs), 40):
        points[k]["accuracy_m"] = rng.uniform(60, 500)
    even, odd = [points[k:k + 25] for k in range(0, 400, 50)], [points[k:k + 25] for k in range(25, 400, 50)]
    rng.shuffle(even)
    rng.shuffle(odd)
    chunks = even + odd
    url = f"/api/v1/patrols/{patrol['id']}/points"
    for chunk in chunks:
        assert worker.post(url, json={"points": chunk}).status_code == 200
    _db.session.rollback()
    rows = _db.session.execute(text(
        "SELECT t AS at, ST_X(geom) AS lon, ST_Y(geom) AS lat, accuracy_m, reason FROM patrol_points "
        "WHERE patrol_id = :id ORDER BY t"), {"id": patrol["id"]}).all()
    whole = judge([Fix(r.at, r.lon, r.lat, r.accuracy_m) for r in rows], 50)
    assert len(rows) == 400 and [r.reason for r in rows] == whole
    assert all(whole[k] == "jump" for k in (24, 74, 124)) and not any(whole[k] for k in pairs)
    assert whole.count("inaccurate") == 40
