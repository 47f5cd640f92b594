"""`flask demo load`, the command `make run` relies on: the LA demo city, once."""
from sqlalchemy import func, select

from server.domain.permissions import SYSTEM
from server.models import Campaign, CampaignTask, Incident, Open311Request, Patrol, PatrolCheckin, Region, User
from server.services import regions


def test_demo_city_loads_once_with_a_user_for_every_role(app, db, tmp_path):
    app.config["DEMO_CREDENTIALS_FILE"] = str(tmp_path / "credentials.txt")
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    counts = dict(db.session.execute(select(Region.level, func.count()).group_by(Region.level)).all())
    assert (counts["city"], counts["district"], counts["street"]) == (1, 12, 99)
    assert counts["community"] >= 10 and counts["grid"] > 1000
    roles = set(db.session.scalars(select(User.role)).all())
    assert roles == {"admin", "city", "district", "street", "community", "grid_worker", "department"}
    saved = (tmp_path / "credentials.txt").read_text().splitlines()
    assert len(saved) == db.session.scalar(select(func.count()).select_from(User)) + 1  # and the Open311 key
    assert saved[-1].split()[:2] == ["open311", "api_key"]
    assert (tmp_path / "credentials.txt").stat().st_mode & 0o777 == 0o600
    community = db.session.scalars(select(Region).where(Region.level == "community").order_by(Region.code)).first()
    assert regions.coverage(SYSTEM, community.id)["summary"]["ok"]
    located = regions.locate(SYSTEM, -118.2468, 34.0505)  # Los Angeles City Hall
    assert [r["level"] for r in located.chain] == ["city", "district", "street", "community", "grid"]
    assert located.chain[2]["name"] == "Downtown Los Angeles"

    statuses = dict(db.session.execute(select(Incident.status, func.count()).group_by(Incident.status)).all())
    assert sum(statuses.values()) == 48 + 1 and {"reported", "accepted", "dispatched", "closed"} <= set(statuses)
    assert db.session.scalar(select(func.count()).where(Incident.source == "open311")) == 1  # a citizen's
    (waiting,) = db.session.scalars(select(Open311Request).where(Open311Request.incident_id.is_(None))).all()
    assert waiting.address_string and f"token {waiting.token}" in first.output
    assert "48 demo incidents" in first.output

    (patrol,) = db.session.scalars(select(Patrol)).all()
    assert patrol.state == "ended" and patrol.points_kept == 720 and patrol.distance_m > 100
    assert db.session.scalar(select(func.count()).select_from(PatrolCheckin)) == 1
    (campaign,) = db.session.scalars(select(Campaign)).all()
    states = dict(db.session.execute(select(CampaignTask.state, func.count()).group_by(CampaignTask.state)).all())
    assert states.get("nothing_found") == 1 and states.get("open", 0) > 100
    assert "worker1 patrolled for two hours (720 GPS fixes" in first.output

    second = runner.invoke(args=["demo", "load"])
    assert second.exit_code == 0 and "already loaded" in second.output
    assert dict(db.session.execute(select(Region.level, func.count()).group_by(Region.level)).all()) == counts
