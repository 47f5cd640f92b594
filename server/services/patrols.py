"""Patrols (巡查, docs/FIELD.md): a grid worker starts and ends a shift; the phone uploads
its GPS points in batches, late and out of order; the track is made from the points kept.

Write rights: the grid worker whose patrol it is. Read: the worker and the managers of the
area the worker had when the patrol started (a track is personal data).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from geoalchemy2 import WKBElement
from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from geo.geometry import from_db, to_geojson
from server.domain.patrols import GAP_MINUTES, Fix, judge, slot
from server.domain.permissions import PATROL_MANAGE, PATROL_READ, Actor
from server.errors import Conflict, InvalidInput, NotFound
from server.extensions import db
from server.models import Patrol, PatrolPoint, User
from server.models._base import utcnow

from .access import authorize
from .coverage import mark_changed


MAX_START_AGE = timedelta(days=7)  # a phone offline for a week still starts its patrol afterwards


def _not_found() -> NotFound:
    return NotFound("patrol.not_found", "No such patrol.")


def start_patrol(actor: Actor, data: dict) -> tuple[Patrol, bool]:
    """Start the actor's patrol (``client_uuid`` makes a repeat the same patrol). Returns the
    patrol and whether it is new. Errors: auth.forbidden (not a grid worker),
    patrol.already_on (another patrol of the actor is on: end it first)."""
    now = utcnow()
    started_at = data.get("started_at") or now
    _check_not_ahead(started_at, now, "started_at")
    if started_at < now - MAX_START_AGE:
        raise InvalidInput("request.invalid", "A patrol is started within a week of its beginning.",
                           errors={"started_at": [f"Not more than {MAX_START_AGE.days} days ago."]})
    existing = db.session.scalars(select(Patrol).where(Patrol.client_uuid == data["client_uuid"])).one_or_none()
    if existing is not None:
        authorize(actor, PATROL_MANAGE, existing, not_found=_not_found())
        return existing, False
    user = db.session.get(User, actor.user_id)
    patrol = Patrol(user_id=actor.user_id, client_uuid=data["client_uuid"], region_path=user.region.path, state="on",
                    started_at=started_at)
    authorize(actor, PATROL_MANAGE, patrol, not_found=_not_found())
    on = db.session.scalars(select(Patrol.id).where(Patrol.user_id == actor.user_id, Patrol.state == "on")
                            .with_for_update()).first()
    if on is not None:
        raise Conflict("patrol.already_on", f"Patrol {on} is still on: end it first.", errors={"patrol_id": [on]})
    stmt = insert(Patrol).values(user_id=patrol.user_id, client_uuid=patrol.client_uuid,
                                 region_path=patrol.region_path, state="on", started_at=started_at, updated_at=now)
    new_id = db.session.scalar(stmt.on_conflict_do_nothing(index_elements=["client_uuid"]).returning(Patrol.id))
    db.session.commit()
    if new_id is None:  # the same start raced in: the patrol it made
        return start_patrol(actor, data)
    return db.session.get(Patrol, new_id), True


def end_patrol(actor: Actor, patrol_id: int, ended_at: datetime | None) -> Patrol:
    """End the actor's patrol (again: the same answer). Errors: patrol.not_found,
    auth.forbidden, request.invalid (an end before the start or ahead of the clock)."""
    patrol = _get_for_update(actor, patrol_id, PATROL_MANAGE)
    if patrol.state != "on":
        db.session.commit()
        return patrol
    now = utcnow()
    ended_at = ended_at or now
    _check_not_ahead(ended_at, now, "ended_at")
    if ended_at < patrol.started_at:
        raise InvalidInput("request.invalid", "A patrol ends after it starts.",
                           errors={"ended_at": ["Must not be before the patrol's start."]})
    patrol.state, patrol.ended_at = "ended", ended_at
    _make_track(patrol.id)
    db.session.commit()
    return patrol


def add_points(actor: Actor, patrol_id: int, points: list[dict]) -> dict:
    """Store a batch of GPS points (any order; one per 5-second slot: a point in a slot
    already held is a duplicate), judge the whole patrol's points again in time order, and
    make its track again once it has ended. Errors: patrol.not_found, auth.forbidden,
    patrol.closed (ended more than PATROL_LATE_HOURS ago)."""
    patrol = _get_for_update(actor, patrol_id, PATROL_MANAGE)
    now = utcnow()
    late = timedelta(hours=current_app.config["PATROL_LATE_HOURS"])
    if patrol.ended_at is not None and now - patrol.ended_at > late:
        raise Conflict("patrol.closed", "The patrol ended too long ago to take points.")
    skew = timedelta(seconds=current_app.config["CLOCK_SKEW_SECONDS"])
    last = (patrol.ended_at + skew) if patrol.ended_at else now + skew
    rows, refused = {}, 0
    for p in points:
        if not patrol.started_at - skew <= p["t"] <= last:
            refused += 1
            continue
        rows.setdefault(slot(p["t"]), p)  # the first of a slot in the batch
    stored = 0
    if rows:
        stmt = insert(PatrolPoint).values([
            {"patrol_id": patrol.id, "slot": s, "t": p["t"], "accuracy_m": p.get("accuracy_m"),
             "geom": func.ST_SetSRID(func.ST_MakePoint(p["lon"], p["lat"]), 4326)}
            for s, p in rows.items()])
        new_slots = db.session.scalars(stmt.on_conflict_do_nothing().returning(PatrolPoint.slot)).all()
        stored = len(new_slots)
    if stored:
        judged_again = _judge(patrol.id)
        mark_changed(patrol.id, [*new_slots, *judged_again])  # the days whose coverage is to be computed again
        if patrol.state != "on":
            _make_track(patrol.id)
    db.session.commit()
    return {"stored": stored, "duplicates": len(points) - refused - stored, "refused": refused}


def get_patrol(actor: Actor, patrol_id: int) -> dict:
    """A patrol with its track as GeoJSON (made now, not stored, while the patrol is on).
    Errors: patrol.not_found."""
    patrol = db.session.get(Patrol, patrol_id)
    authorize(actor, PATROL_READ, patrol, not_found=_not_found())
    answer = {name: getattr(patrol, name) for name in ("id", "user_id", "state", "started_at", "ended_at",
                                                      "distance_m", "points_kept")}
    track = patrol.track
    if patrol.state == "on":  # made now, not stored (a read writes nothing)
        made = db.session.execute(_READ_TRACK, {"id": patrol.id, "gap": GAP_MINUTES}).one()
        track = WKBElement(bytes(made.track), srid=4326) if made.track is not None else None
        answer.update(distance_m=made.distance_m, points_kept=made.points_kept)
    shape = from_db(track)
    answer["track"] = to_geojson(shape) if shape is not None else None
    return answer


def _get_for_update(actor: Actor, patrol_id: int, action: str) -> Patrol:
    patrol = db.session.scalars(select(Patrol).where(Patrol.id == patrol_id).with_for_update()).one_or_none()
    authorize(actor, action, patrol, not_found=_not_found())
    return patrol


def _check_not_ahead(moment: datetime, now: datetime, field: str) -> None:
    if moment > now + timedelta(seconds=current_app.config["CLOCK_SKEW_SECONDS"]):
        raise InvalidInput("request.invalid", "That time is in the future.", errors={field: ["Not ahead of now."]})


def _judge(patrol_id: int) -> list[int]:
    """Judge every point of the patrol in time order; write the reasons that changed and
    return their slots."""
    rows = db.session.execute(text(
        "SELECT slot, t AS at, ST_X(geom) AS lon, ST_Y(geom) AS lat, accuracy_m, reason FROM patrol_points "
        "WHERE patrol_id = :id ORDER BY t"), {"id": patrol_id}).all()
    reasons = judge([Fix(r.at, r.lon, r.lat, r.accuracy_m) for r in rows], current_app.config["PATROL_MAX_ACCURACY_M"])
    changed = [{"s": r.slot, "reason": reason} for r, reason in zip(rows, reasons) if r.reason != reason]
    if changed:
        points = PatrolPoint.__table__
        db.session.execute(update(points).where(points.c.patrol_id == patrol_id, points.c.slot == bindparam("s"))
                           .values(reason=bindparam("reason")), changed)
    return [c["s"] for c in changed]


# the kept points in time order, split where none was kept for GAP_MINUTES, each piece of two
# points or more a line: the track, its length on the spheroid, the points kept
_TRACK = """
WITH kept AS (
    SELECT t, geom, CASE WHEN t - lag(t) OVER (ORDER BY t) > make_interval(mins => :gap) THEN 1 ELSE 0 END AS cut
    FROM patrol_points WHERE patrol_id = :id AND reason IS NULL
), pieces AS (
    SELECT t, geom, sum(cut) OVER (ORDER BY t) AS piece FROM kept
), lines AS (
    SELECT ST_MakeLine(geom ORDER BY t) AS line, count(*) AS n FROM pieces GROUP BY piece
)
SELECT ST_Multi(ST_Collect(line) FILTER (WHERE n > 1)) AS track,
       COALESCE(sum(ST_Length(line::geography)) FILTER (WHERE n > 1), 0) AS distance_m,
       COALESCE(sum(n), 0) AS points_kept
FROM lines
"""
_STORE_TRACK = text(f"UPDATE patrols SET (track, distance_m, points_kept) = ({_TRACK}) WHERE id = :id")
_READ_TRACK = text(f"SELECT ST_AsBinary(track) AS track, distance_m, points_kept FROM ({_TRACK}) AS made")


def _make_track(patrol_id: int) -> None:
    """Store the track of an ended patrol (an on patrol's is made when it is read)."""
    db.session.execute(_STORE_TRACK, {"id": patrol_id, "gap": GAP_MINUTES})
    db.session.expire_all()
