"""`flask incidents replay`: a 311-style CSV posted through the real HTTP API as grid workers."""
from __future__ import annotations

import csv
import json
import socket
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from geo.geometry import from_db
from server.config import PROJECT_ROOT
from server.models import AuthSession, Incident
from server.services.replay import REFUSALS, Mapping

MAPPING = PROJECT_ROOT / "server" / "seed" / "la311-mapping.json"
LA_2017 = PROJECT_ROOT.parent / "shared" / "data" / "la" / "la311-2017-12-subset.csv"
LA = ZoneInfo("America/Los_Angeles")
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
COLUMNS = ["SRNumber", "CreatedDate", "ClosedDate", "RequestType", "RequestSource", "Address", "Latitude",
           "Longitude"]


def _when(days_ago: int, hour: int = 10) -> datetime:
    """A recent local LA time (the API refuses reports over 90 days old), away from DST changes."""
    day = (datetime.now(LA) - timedelta(days=days_ago)).date()
    return datetime(day.year, day.month, day.day, hour, 15, 30, tzinfo=LA)


def _row(sr, created, rtype, lat, lon, closed=None, address="100 TEST ST, 90001"):
    def fmt(moment):
        return moment.strftime(TIME_FORMAT) if isinstance(moment, datetime) else (moment or "")
    return {"SRNumber": sr, "CreatedDate": fmt(created), "ClosedDate": fmt(closed), "RequestType": rtype,
            "RequestSource": "Call", "Address": address, "Latitude": lat, "Longitude": lon}


def _write_csv(path, rows) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _replay(app, base_url, csv_path, out, *extra):
    result = app.test_cli_runner().invoke(args=[
        "incidents", "replay", str(csv_path), "--mapping", str(MAPPING), "--base-url", base_url,
        "--report", str(out), *extra])
    counts = json.loads(out.read_text()) if out.exists() and out.stat().st_size else None
    return result, counts


def _refused(**nonzero) -> dict:
    return {reason: nonzero.get(reason, 0) for reason in REFUSALS}


GOOD = {  # SRNumber → (local created time, RequestType, category code, lat, lon, cell)
    "1-100": (_when(2), "Bulky Items", "0102", "34.01", "-118.39", "G1"),
    "1-101": (_when(1, 9), "Graffiti Removal", "0109", "34.04", "-118.38", "G1"),
    "1-102": (_when(3, 22), "Single Streetlight Issue", "0202", "34.02", "-118.36", "G2"),  # no primary: by scope
}


@pytest.fixture
def small_csv(tmp_path):
    rows = [_row(sr, created, rtype, lat, lon, closed=created + timedelta(days=1))
            for sr, (created, rtype, _, lat, lon, _) in GOOD.items()]
    rows += [
        _row("1-200", _when(2), "Bulky Items", "", ""),  # no coordinates
        _row("1-201", _when(2), "Bulky Items", "0", "0"),  # the 0,0 placeholder
        _row("1-202", _when(2), "Graffiti Removal", "34.02", "-118.39", closed=_when(3)),  # closed before created
        _row("1-203", _when(2), "Report Water Waste", "34.02", "-118.39"),  # not in the mapping
        _row("1-204", _when(2), "Bulky Items", "34.02", "-118.32"),  # inside the city, in no cell
        _row("1-205", _when(2), "Bulky Items", "34.02", "-118.27"),  # in G3, whose community has no worker
        _row("1-206", "yesterday", "Bulky Items", "34.02", "-118.39"),  # not the mapping's time format
    ]
    path = tmp_path / "la311.csv"
    _write_csv(path, rows)
    return path


def test_replay_posts_each_good_row_once_as_the_cells_worker_and_a_rerun_only_replays(
        app, db, tree, live_server, small_csv, tmp_path):
    result, counts = _replay(app, live_server, small_csv, tmp_path / "first.json")

    assert result.exit_code == 0, result.output
    assert counts["rows"] == 10
    assert counts["refused"] == _refused(no_coordinates=2, unmapped_type=1, bad_time=1, closed_before_created=1,
                                         outside_grid=1, no_worker=1)
    assert counts["posted"] == {"created": 3, "replayed": 0, "errors": {}}
    assert (counts["unreachable"], counts["unsent"], counts["server_errors"]) == (0, 0, 0)
    assert "created" in result.output and "no_coordinates" in result.output

    mapping = Mapping.load(MAPPING)
    incidents = {i.client_uuid: i for i in db.session.scalars(select(Incident))}
    assert len(incidents) == 3
    for sr, (created, rtype, code, lat, lon, cell) in GOOD.items():
        incident = incidents[mapping.client_uuid(sr)]
        assert incident.reporter_id == tree["grid_worker"].id
        assert incident.category.code == code
        assert incident.occurred_at == created
        assert incident.region_id == tree[cell].id
        assert from_db(incident.geom).coords[0] == (float(lon), float(lat))
        assert incident.source == "phone" and incident.address == "100 TEST ST, 90001"
        assert incident.description == f"{rtype} (MyLA311 {sr}, via Call)"

    again, counts = _replay(app, live_server, small_csv, tmp_path / "second.json")

    assert again.exit_code == 0, again.output
    assert counts["posted"] == {"created": 0, "replayed": 3, "errors": {}}
    assert sum(counts["refused"].values()) == 7
    db.session.expire_all()
    assert len(db.session.scalars(select(Incident)).all()) == 3
    sessions = db.session.scalars(select(AuthSession).where(AuthSession.user_id == tree["grid_worker"].id)).all()
    assert sessions and all(s.revoked_reason == "replay_done" for s in sessions)  # the minted tokens are dead


def test_replay_stops_and_fails_when_the_server_is_unreachable(app, db, tree, small_csv, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"

    result, counts = _replay(app, dead, small_csv, tmp_path / "dead.json", "--concurrency", "1")

    assert result.exit_code == 1
    assert (counts["unreachable"], counts["unsent"]) == (1, 2)
    assert counts["posted"] == {"created": 0, "replayed": 0, "errors": {}}
    assert db.session.scalars(select(Incident)).first() is None


def test_replay_accounts_for_every_row_of_real_la_data(app, db, tree, live_server, tmp_path):
    with LA_2017.open(newline="") as f:
        rows = [row for _, row in zip(range(300), csv.DictReader(f))]
    without_coordinates = sum(1 for r in rows if not r["Latitude"].strip() or not r["Longitude"].strip()
                              or float(r["Latitude"]) == 0 == float(r["Longitude"]))
    assert without_coordinates  # the fixture keeps its point: real rows without coordinates

    result, counts = _replay(app, live_server, LA_2017, tmp_path / "la.json", "--limit", "300")

    assert result.exit_code == 0, result.output
    assert counts["rows"] == 300
    posted = counts["posted"]
    assert (sum(counts["refused"].values()) + posted["created"] + posted["replayed"]
            + sum(posted["errors"].values()) + counts["unreachable"] + counts["unsent"]) == 300
    assert counts["refused"]["no_coordinates"] == without_coordinates
