"""Patrol coverage and missed reports (docs/FIELD.md): walks with known answers worked out by
hand, sent over HTTP as a phone sends them, computed by the worker's pass, read over HTTP.

The cell walked is G1 of tests.builders (lon -118.400…-118.375, lat 34.00…34.05: a box about
2.3 km wide and 5.5 km tall). A straight walk due north across it covers a band 60 m wide
(30 m either side): the share is 60 m × the cell's height ÷ its area. Both sides are measured
on the spheroid here (pyproj's Geod; the cell's area_m2 is geodesic) and in the cell's UTM
zone by the service, where lengths are 0.02 % short at this longitude: the shares agree within
0.2 %.
"""
from __future__ import annotations

import math
import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pyproj import Geod
from shapely.geometry import Point
from sqlalchemy import select

from server import worker as background
from server.extensions import db
from server.models import Category, PatrolCoverage
from server.models._base import utcnow
from server.notifications.senders import LoggingSender
from server.services import coverage
from tests.builders import make_user
from tests.incident_builders import make_incident

GEOD = Geod(ellps="WGS84")
LON = -118.3875  # the middle of G1
STEP = 0.0009  # degrees of latitude a minute: about 100 m


def zone(app) -> ZoneInfo:
    return ZoneInfo(app.config["TIMEZONE"])


def local(app, day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), zone(app))


def today(app) -> date:
    return utcnow().astimezone(zone(app)).date()


def walk(t0: datetime, lat0: float, n: int, *, step: float = STEP, every_s: int = 60) -> list[dict]:
    """``n`` fixes ``every_s`` seconds apart walking due north along LON, ``step`` degrees a fix
    from ``lat0``."""
    return [{"t": (t0 + timedelta(seconds=every_s * k)).isoformat(), "lon": LON, "lat": lat0 + k * step,
             "accuracy_m": 5.0} for k in range(n)]


def patrol(client, started_at: datetime, *batches: list[dict], ended_at: datetime | None = None) -> int:
    answer = client.post("/api/v1/patrols", json={"client_uuid": str(uuid.uuid4()),
                                                  "started_at": started_at.isoformat()})
    assert answer.status_code == 201, answer.text
    patrol_id = answer.json()["id"]
    for batch in batches:
        sent = client.post(f"/api/v1/patrols/{patrol_id}/points", json={"points": batch})
        assert sent.status_code == 200 and sent.json()["refused"] == 0, sent.text
    if ended_at:
        assert client.post(f"/api/v1/patrols/{patrol_id}/end", json={"ended_at": ended_at.isoformat()}).ok
    return patrol_id


def worker_pass(at: datetime | None = None) -> background.PassReport:
    reports = []
    background.run(interval_s=0, sender=LoggingSender(), clock=lambda: at or utcnow(), passes=1, listen=False,
               on_pass=reports.append)
    (report,) = reports
    return report


def stored(day: date) -> dict[int, tuple]:
    db.session.expire_all()
    return {row.region_id: (row.share, row.minutes, row.metres, row.workers, row.patrols)
            for row in db.session.scalars(select(PatrolCoverage).where(PatrolCoverage.day == day))}


def ids(tree, *names: str) -> list[int]:
    """The ids of regions of the tree, read before a worker's pass (which ends the session)."""
    return [tree[name].id for name in names]


def metres_north(lat0: float, lat1: float) -> float:
    return GEOD.inv(LON, lat0, LON, lat1)[2]


def test_a_straight_walk_across_a_cell_covers_a_band_60_m_wide(app, tree, worker, community):
    day = today(app) - timedelta(days=3)
    start = local(app, day, 9)
    points = walk(start + timedelta(minutes=1), 33.995, 68)  # from 555 m south of G1 to 590 m north of it
    # left out: a fix 400 m inaccurate in G2, and a spike in G3 (10 km away and back in a minute)
    points.append({"t": (start + timedelta(minutes=20, seconds=30)).isoformat(), "lon": -118.3625, "lat": 34.02,
                   "accuracy_m": 400})
    points.append({"t": (start + timedelta(minutes=40, seconds=30)).isoformat(), "lon": -118.275, "lat": 34.03,
                   "accuracy_m": 5})
    patrol(worker, start, points, ended_at=start + timedelta(hours=2))
    g1, g2, k1 = ids(tree, "G1", "G2", "K1")
    area1, area2 = tree["G1"].area_m2, tree["G2"].area_m2

    report = worker_pass()
    assert report.coverage == (day, 1)  # G1 alone: the bad fixes in G2 and G3 count nowhere
    height = metres_north(34.00, 34.05)
    share, minutes, metres, workers, patrols = stored(day)[g1]
    assert share == pytest.approx(60 * height / area1, rel=2e-3)
    # the fixes inside are k = 6 (lat 34.0004) … 61 (lat 34.0499): 55 minutes between them
    assert minutes == pytest.approx(55) and (workers, patrols) == (1, 1)
    assert metres == pytest.approx(height, rel=1e-3)

    got = community.get(f"/api/v1/regions/{k1}/patrol-coverage", params={"day": day.isoformat()})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["live"] is False and body["computed_at"] and body["cells_walked"] == 1
    cells = {c["cell"]["id"]: c for c in body["cells"]}
    assert cells[g1]["share"] == pytest.approx(share) and cells[g1]["minutes"] == 55
    assert cells[g2] == {"cell": cells[g2]["cell"], "share": 0, "minutes": 0, "metres": 0, "workers": 0, "patrols": 0}
    assert body["share"] == pytest.approx(share * area1 / (area1 + area2), rel=1e-9)

    geo = community.get(f"/api/v1/regions/{k1}/patrol-coverage.geojson", params={"day": day.isoformat()})
    assert geo.status_code == 200 and geo.headers["Content-Type"].startswith("application/geo+json")
    features = {f["id"]: f for f in geo.json()["features"]}
    assert set(features) == {g1, g2} and features[g1]["geometry"]["type"] == "MultiPolygon"
    assert features[g1]["properties"]["share"] == pytest.approx(share) and features[g2]["properties"]["share"] == 0


def test_a_patrol_across_midnight_counts_on_each_day_for_its_own_points(app, tree, worker):
    day = today(app) - timedelta(days=5)
    start = local(app, day, 23, 30)
    step = 0.0005  # about 55 m a minute, inside G1 all along
    patrol(worker, start, walk(start, 34.01, 61, step=step), ended_at=start + timedelta(hours=1, minutes=1))
    (g1,) = ids(tree, "G1")

    first, second = worker_pass(), worker_pass()
    assert (first.coverage, second.coverage) == ((day, 1), (day + timedelta(days=1), 1))  # a day a pass
    assert worker_pass().coverage is None  # nothing left to do
    before, after = stored(day)[g1], stored(day + timedelta(days=1))[g1]
    # 23:30 … 23:59 on the day (29 minutes), 00:00 … 00:30 the next (30); 23:59 → 00:00 on neither
    assert before[1] == pytest.approx(29) and after[1] == pytest.approx(30)
    assert before[2] == pytest.approx(metres_north(34.01, 34.01 + 29 * step), rel=1e-3)
    assert after[2] == pytest.approx(metres_north(34.01 + 30 * step, 34.01 + 60 * step), rel=1e-3)
    assert before[3:] == after[3:] == (1, 1)


def test_a_late_batch_after_the_computation_is_counted_by_the_next_pass(app, tree, worker, community):
    day = today(app) - timedelta(days=1)
    start = local(app, day, 8)
    first_half = walk(start, 34.001, 30)
    patrol_id = patrol(worker, start, first_half, ended_at=start + timedelta(hours=2))
    (g1,) = ids(tree, "G1")
    assert worker_pass().coverage == (day, 1)
    assert stored(day)[g1][1] == pytest.approx(29)

    late = walk(start + timedelta(minutes=30), 34.001 + 30 * STEP, 20)  # the phone comes back online
    assert worker.post(f"/api/v1/patrols/{patrol_id}/points", json={"points": late}).json()["stored"] == 20
    url = f"/api/v1/regions/{g1}/patrol-coverage"
    pending = community.get(url, params={"day": day.isoformat()}).json()
    assert pending["live"] is True and pending["cells"][0]["minutes"] == 49  # computed for the answer

    assert worker_pass().coverage == (day, 1)
    assert stored(day)[g1][1] == pytest.approx(49)  # 50 fixes a minute apart
    assert worker_pass().coverage is None
    settled = community.get(url, params={"day": day.isoformat()}).json()
    assert settled["live"] is False and settled["cells"][0]["minutes"] == 49


def test_computing_a_day_twice_gives_the_same_rows_and_today_is_never_stored(app, tree, worker, community):
    day = today(app) - timedelta(days=2)
    start = local(app, day, 14)
    patrol(worker, start, walk(start, 33.999, 40), ended_at=start + timedelta(hours=1))
    (g1,) = ids(tree, "G1")
    runner = app.test_cli_runner()
    first = runner.invoke(args=["patrols", "coverage", "--day", day.isoformat()])
    assert first.exit_code == 0, first.output
    once = stored(day)
    again = runner.invoke(args=["patrols", "coverage", "--day", day.isoformat()])
    assert again.exit_code == 0 and stored(day) == once and len(once) == 1
    assert worker_pass().coverage is None  # the command computed it: no mark is left

    refused = runner.invoke(args=["patrols", "coverage", "--day", today(app).isoformat()])
    assert refused.exit_code != 0 and "coverage.future_day" in refused.output

    now = utcnow()  # today: computed for the answer, never stored (20 fixes 10 s apart: 190 s)
    patrol(worker, now - timedelta(seconds=200), walk(now - timedelta(seconds=195), 34.01, 20, step=0.0001,
                                                      every_s=10))
    got = community.get(f"/api/v1/regions/{g1}/patrol-coverage").json()
    assert got["live"] is True and got["day"] == today(app).isoformat() and got["cells"][0]["minutes"] == 3.2
    assert stored(today(app)) == {}
    assert coverage.compute_due(now) is None  # today is not due before midnight


def test_who_may_read_coverage_and_a_day_ahead(app, tree, worker, community, client_for):
    url = f"/api/v1/regions/{tree['G1'].id}/patrol-coverage"
    elsewhere = client_for(make_user("district2", "district", tree["D2"]))
    for path in (url, url + ".geojson"):
        hidden = elsewhere.get(path)
        assert hidden.status_code == 404 and hidden.json()["code"] == "region.not_found"
        refused = worker.get(path)
        assert refused.status_code == 403 and refused.json()["code"] == "auth.forbidden"
    above = community.get(f"/api/v1/regions/{tree['D1'].id}/patrol-coverage")
    assert above.status_code == 404 and above.json()["code"] == "region.not_found"
    ahead = community.get(url, params={"day": (today(app) + timedelta(days=2)).isoformat()})
    assert ahead.status_code == 422 and ahead.json()["code"] == "coverage.future_day"
    assert community.get(url, params={"day": "2026-02-30"}).status_code == 422


# ---------------------------------------------------------------- missed reports (漏报)

def east(metres: float, lat: float) -> float:
    """Degrees of longitude ``metres`` east at ``lat``."""
    lon, _, _ = GEOD.fwd(LON, lat, 90, metres)
    return lon - LON


def test_missed_reports_known_answer(app, tree, worker, community, client_for):
    categories = {c.code: c for c in db.session.scalars(select(Category))}
    g1, worker_user = tree["G1"], tree["grid_worker"]
    reported = utcnow() - timedelta(hours=1)
    # 30 hours before the cases: a walk past where case D will be
    earlier = reported - timedelta(hours=31)
    patrol(worker, earlier, walk(earlier, 34.038, 9, step=0.0005), ended_at=earlier + timedelta(minutes=30))
    # 2-3 hours before: a walk north along LON from lat 34.020 to 34.0245
    start = reported - timedelta(hours=3)
    patrol(worker, start, walk(start, 34.020, 10, step=0.0005), ended_at=start + timedelta(hours=1))

    def case(code: str, source: str, lon: float, lat: float, reporter=None, at=reported):
        return make_incident(categories[code], g1, reporter, at=Point(lon, lat), source=source, reported_at=at,
                             occurred_at=at).id

    a = case("0101", "hotline", LON + east(10, 34.022), 34.022)  # 10 m from the track: missed
    b = case("0101", "hotline", LON - east(10, 34.023), 34.023)  # the worker reported 01 20 m away: not missed
    make_incident(categories["0102"], g1, worker_user, at=Point(LON + east(10, 34.023), 34.023), source="phone",
                  reported_at=reported - timedelta(minutes=90))
    f = case("0702", "open311", LON - east(10, 34.023), 34.023)  # there too, but of group 07: missed
    case("0101", "web", LON + east(100, 34.021), 34.021)  # 100 m from the track: not missed
    case("0101", "open311", LON, 34.040)  # on the walk of 30 hours before: not missed
    case("0101", "phone", LON, 34.022)  # a worker's own report: not looked at

    period = {"from": (reported.astimezone(zone(app)).date() - timedelta(days=1)).isoformat(),
              "to": (today(app) + timedelta(days=1)).isoformat()}
    url = f"/api/v1/stats/regions/{tree['K1'].id}/missed-reports"
    got = community.get(url, params=period)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["cases_checked"], body["missed"]) == (5, 2)
    assert [(w["worker"]["id"], w["incident_ids"]) for w in body["workers"]] == [(worker_user.id, [a, f])]
    assert [(c["cell"]["id"], c["incident_ids"]) for c in body["cells"]] == [(g1.id, [a, f])]
    assert b not in body["workers"][0]["incident_ids"]

    elsewhere = client_for(make_user("district2", "district", tree["D2"]))
    assert elsewhere.get(url, params=period).json()["code"] == "region.not_found"
    assert worker.get(url, params=period).json()["code"] == "auth.forbidden"
    too_long = community.get(url, params={"from": "2026-01-01", "to": "2026-06-01"})
    assert too_long.status_code == 422 and "to" in too_long.json()["errors"]


def test_a_worker_standing_still_covers_a_disc_not_the_whole_cell(app, tree, worker):
    """Fixes at one spot for ten minutes: no line, a disc of 30 m (the buffer's polygon, 32
    sides: 16 sin(2π/32) / π = 0.9936 of the circle); a cell next to it stays at 0."""
    day = today(app) - timedelta(days=2)
    start = local(app, day, 9)
    still = [{"t": (start + timedelta(minutes=k)).isoformat(), "lon": LON, "lat": 34.025, "accuracy_m": 5.0}
             for k in range(11)]
    patrol(worker, start, still, ended_at=start + timedelta(hours=1))
    g1, area1 = tree["G1"].id, tree["G1"].area_m2
    assert worker_pass().coverage == (day, 1)
    share, minutes, metres, workers, patrols = stored(day)[g1]
    disc = 32 / 2 * math.sin(2 * math.pi / 32) * 30 ** 2  # the 32-sided polygon of ST_Buffer
    assert share == pytest.approx(disc / area1, rel=0.01) and share < 0.001
    assert (minutes, metres, workers) == (pytest.approx(10), 0, 1)


def test_days_past_the_retention_keep_their_figures_and_are_never_computed_again(app, tree, worker, community):
    day = today(app) - timedelta(days=3)
    start = local(app, day, 9)
    patrol(worker, start, walk(start, 34.001, 20), ended_at=start + timedelta(hours=1))
    (g1,) = ids(tree, "G1")
    assert worker_pass().coverage == (day, 1)
    figures = stored(day)[g1]
    later = utcnow() + timedelta(days=app.config["PATROL_RETENTION_DAYS"] + 1)
    from server.services.patrols import purge_expired

    assert purge_expired(later) == 1
    with pytest.raises(Exception) as refused:
        coverage.compute_day(day, later)
    assert getattr(refused.value, "code", None) == "coverage.past_retention"
    db.session.rollback()
    db.session.execute(coverage.text("INSERT INTO patrol_coverage_marks (day, patrol_id) "
                                     "SELECT :day, id FROM patrols"), {"day": day})  # a mark outliving the points
    db.session.commit()
    assert worker_pass(later).coverage is None  # the mark dropped, the day not computed from nothing
    assert stored(day)[g1] == figures


def test_a_large_region_reads_today_refused_and_a_pending_day_as_stored(app, tree, worker, community, client_for):
    day = today(app) - timedelta(days=1)
    start = local(app, day, 8)
    patrol_id = patrol(worker, start, walk(start, 34.001, 30), ended_at=start + timedelta(hours=2))
    s1, g1 = ids(tree, "S1", "G1")
    street = client_for(tree["street"])
    assert worker_pass().coverage == (day, 1)
    late = walk(start + timedelta(minutes=30), 34.001 + 30 * STEP, 20)
    assert worker.post(f"/api/v1/patrols/{patrol_id}/points", json={"points": late}).json()["stored"] == 20
    app.config["COVERAGE_LIVE_MAX_CELLS"] = 1  # S1 has two cells
    try:
        now = street.get(f"/api/v1/regions/{s1}/patrol-coverage")
        assert (now.status_code, now.json()["code"]) == (422, "coverage.too_large_live")
        pending = street.get(f"/api/v1/regions/{s1}/patrol-coverage", params={"day": day.isoformat()}).json()
        assert pending["live"] is False and pending["pending"] is True
        assert {c["cell"]["id"]: c["minutes"] for c in pending["cells"]}[g1] == 29  # as stored, before the batch
        small = street.get(f"/api/v1/regions/{g1}/patrol-coverage", params={"day": day.isoformat()}).json()
        assert small["live"] is True and small["cells"][0]["minutes"] == 49
    finally:
        app.config["COVERAGE_LIVE_MAX_CELLS"] = 2000
