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
from server.models import Patrol, PatrolCheckin, PatrolPlace, PatrolPoint, User
from server.models._base import utcnow

from .access import authorize, within_scope
from .coverage import mark_changed, retained_since
from .duty import put_on_duty
from .pagination import Page, paginate


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
    if new_id is not None:
        put_on_duty(actor.user_id, True, now)  # out on patrol is on duty
    db.session.commit()
    if new_id is None:  # the same start raced in: the patrol it made
        return start_patrol(actor, data)
    return db.session.get(Patrol, new_id), True


def end_patrol(actor: Actor, patrol_id: int, ended_at: datetime | None) -> Patrol:
    """End the actor's patrol (again: the same answer). Errors: patrol.not_found,
    auth.forbidden, request.invalid (an end before the start or ahead of the clock)."""
    patrol = get_for_update(actor, patrol_id, PATROL_MANAGE)
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
    patrol = get_for_update(actor, patrol_id, PATROL_MANAGE)
    first, last = time_window(patrol, utcnow())
    rows, refused = {}, 0
    for p in points:
        if not first <= p["t"] <= last:
            refused += 1
            continue
        rows.setdefault(slot(p["t"]), p)  # the first of a slot in the batch
    stored = 0
    if rows:
        batch = list(rows.items())
        new_slots = db.session.scalars(_INSERT_POINTS, {
            "id": patrol.id, "slots": [s for s, _ in batch], "ts": [p["t"] for _, p in batch],
            "lons": [p["lon"] for _, p in batch], "lats": [p["lat"] for _, p in batch],
            "accuracies": [p.get("accuracy_m") for _, p in batch]}).all()
        stored = len(new_slots)
    if stored:
        judged_again = _judge(patrol.id, new_slots)
        mark_changed(patrol.id, [*new_slots, *judged_again])  # the days whose coverage is to be computed again
        if patrol.state == "abandoned":  # points the phone held: the end moves to the last of them
            db.session.execute(_ABANDONED_END, {"id": patrol.id, "limit": _max_hours()})
        if patrol.state != "on":
            _make_track(patrol.id)
    db.session.commit()
    return {"stored": stored, "duplicates": len(points) - refused - stored, "refused": refused}


def list_patrols(actor: Actor, f: dict, page: int, page_size: int) -> Page:
    """Patrols the actor may read (a worker's own; a manager's, those of workers of the area),
    newest first, without tracks: by worker, state, and those overlapping [from, to)."""
    if actor.is_manager or actor.is_admin:
        stmt = select(Patrol).where(within_scope(actor, Patrol.region_path))
    else:
        stmt = select(Patrol).where(Patrol.user_id == actor.user_id)
    if f.get("user_id") is not None:
        stmt = stmt.where(Patrol.user_id == f["user_id"])
    if f.get("state") is not None:
        stmt = stmt.where(Patrol.state == f["state"])
    if f.get("from") is not None:
        stmt = stmt.where(func.coalesce(Patrol.ended_at, func.now()) >= f["from"])
    if f.get("to") is not None:
        stmt = stmt.where(Patrol.started_at < f["to"])
    return paginate(stmt.order_by(Patrol.started_at.desc(), Patrol.id.desc()), page, page_size)


# a batch as one statement of arrays (a VALUES row per point took 0.25 s a batch of 1,000 to compile)
_INSERT_POINTS = text(
    "INSERT INTO patrol_points (patrol_id, slot, t, geom, accuracy_m) "
    "SELECT :id, b.slot, b.t, ST_SetSRID(ST_MakePoint(b.lon, b.lat), 4326), b.accuracy "
    "FROM unnest(CAST(:slots AS bigint[]), CAST(:ts AS timestamptz[]), CAST(:lons AS float8[]), "
    "CAST(:lats AS float8[]), CAST(:accuracies AS float8[])) AS b(slot, t, lon, lat, accuracy) "
    "ON CONFLICT DO NOTHING RETURNING slot")


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
    answer["purged"] = patrol.purged_at is not None
    answer["checkins"] = checkins_of(patrol.id)
    return answer


def checkins_of(patrol_id: int) -> list[dict]:
    """A patrol's check-ins in time order, with their places' names."""
    rows = db.session.execute(select(PatrolCheckin.id, PatrolCheckin.place_id, PatrolPlace.name,
                                     PatrolPlace.name_en, PatrolCheckin.t.label("at"), PatrolCheckin.distance_m)
                              .join(PatrolPlace, PatrolPlace.id == PatrolCheckin.place_id)
                              .where(PatrolCheckin.patrol_id == patrol_id).order_by(PatrolCheckin.t, PatrolCheckin.id))
    return [{"id": r.id, "place_id": r.place_id, "place_name": r.name, "place_name_en": r.name_en, "t": r.at,
             "distance_m": r.distance_m} for r in rows]


def get_for_update(actor: Actor, patrol_id: int, action: str) -> Patrol:
    """The patrol, locked against concurrent batches and check-ins, if ``actor`` may ``action``."""
    patrol = db.session.scalars(select(Patrol).where(Patrol.id == patrol_id).with_for_update()).one_or_none()
    authorize(actor, action, patrol, not_found=_not_found())
    return patrol


def time_window(patrol: Patrol, now: datetime) -> tuple[datetime, datetime]:
    """The phone times a patrol takes points and check-ins for: from its start to its end (or
    now), give or take the clock skew allowed to phones; an abandoned patrol's end is only the
    system's guess, so up to PATROL_MAX_HOURS after its start (a phone offline all shift sends
    its points later). Errors: patrol.closed (ended more than PATROL_LATE_HOURS ago)."""
    config = current_app.config
    end = patrol.ended_at
    if patrol.state == "abandoned":
        end = patrol.started_at + timedelta(hours=config["PATROL_MAX_HOURS"])
    if end is not None and now - end > timedelta(hours=config["PATROL_LATE_HOURS"]):
        raise Conflict("patrol.closed", "The patrol ended too long ago to take points or check-ins.")
    skew = timedelta(seconds=config["CLOCK_SKEW_SECONDS"])
    return patrol.started_at - skew, (end or now) + skew


def _check_not_ahead(moment: datetime, now: datetime, field: str) -> None:
    if moment > now + timedelta(seconds=current_app.config["CLOCK_SKEW_SECONDS"]):
        raise InvalidInput("request.invalid", "That time is in the future.", errors={field: ["Not ahead of now."]})


# Judging a batch: a fix's reason depends only on itself and its accurate neighbours in time,
# so a batch can change its own points and the nearest accurate point on each side. Those
# are judged again with a window from the third accurate point before the batch's first slot
# to the third after its last (slots are in time order); the third is context, read but not
# written (its own other neighbour lies outside). Fewer than three on a side: the window
# reaches the patrol's end there and nothing is context. A batch costs its own size, not the
# patrol's.
_CONTEXT = """
SELECT slot FROM patrol_points WHERE patrol_id = :id AND slot {cmp} {edge}
AND (accuracy_m IS NULL OR accuracy_m <= :max_accuracy) ORDER BY slot {order} OFFSET 2 LIMIT 1
"""
_WINDOW = text(f"""
SELECT slot, t AS at, ST_X(geom) AS lon, ST_Y(geom) AS lat, accuracy_m, reason FROM patrol_points
WHERE patrol_id = :id
  AND slot >= COALESCE(({_CONTEXT.format(cmp="<", order="DESC", edge=":first")}), -9223372036854775808)
  AND slot <= COALESCE(({_CONTEXT.format(cmp=">", order="ASC", edge=":last")}), 9223372036854775807)
ORDER BY slot, t
""")


def _judge(patrol_id: int, new_slots: list[int]) -> list[int]:
    """Judge the points a batch (``new_slots``) can change, in time order; write the reasons
    that changed and return their slots."""
    limit = current_app.config["PATROL_MAX_ACCURACY_M"]
    rows = db.session.execute(_WINDOW, {"id": patrol_id, "max_accuracy": limit, "first": min(new_slots),
                                        "last": max(new_slots)}).all()
    reasons = judge([Fix(r.at, r.lon, r.lat, r.accuracy_m) for r in rows], limit)
    accurate = [k for k, r in enumerate(rows) if r.accuracy_m is None or r.accuracy_m <= limit]
    context = set()  # the third accurate point before and after the batch: read, not written
    if sum(1 for k in accurate if rows[k].slot < min(new_slots)) >= 3:
        context.add(accurate[0])
    if sum(1 for k in accurate if rows[k].slot > max(new_slots)) >= 3:
        context.add(accurate[-1])
    changed = [{"s": r.slot, "reason": reason} for k, (r, reason) in enumerate(zip(rows, reasons))
               if r.reason != reason and k not in context]
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


# ---------------------------------------------------------------- kept by the worker

def _max_hours() -> timedelta:
    return timedelta(hours=current_app.config["PATROL_MAX_HOURS"])


# an abandoned patrol ends at its last point within PATROL_MAX_HOURS of its start, never before the start
_ABANDONED_END = text(
    "UPDATE patrols p SET ended_at = GREATEST(p.started_at, COALESCE((SELECT max(t) FROM patrol_points"
    " WHERE patrol_id = p.id AND t <= p.started_at + :limit), p.started_at)) WHERE id = :id")


def close_abandoned(now: datetime) -> int:
    """Patrols left on for longer than PATROL_MAX_HOURS: ended at their last point (at most that
    long after the start; no point: at the start) as ``abandoned``, the track stored; points
    the phone sends later within those hours move the end (``add_points``). Several
    workers at once each take other patrols (SKIP LOCKED). How many were closed."""
    limit = _max_hours()
    ids = db.session.scalars(select(Patrol.id).where(Patrol.ended_at.is_(None), Patrol.started_at < now - limit)
                             .order_by(Patrol.id).limit(500).with_for_update(skip_locked=True)).all()
    for patrol_id in ids:
        db.session.execute(text("UPDATE patrols SET state = 'abandoned', updated_at = :now WHERE id = :id"),
                           {"id": patrol_id, "now": now})
        db.session.execute(_ABANDONED_END, {"id": patrol_id, "limit": limit})
        _make_track(patrol_id)
    db.session.commit()
    return len(ids)


def purge_expired(now: datetime, batch: int = 200, max_batches: int = 50) -> int:
    """Delete the points and the track of patrols ended more than PATROL_RETENTION_DAYS ago (a
    worker's whereabouts are personal data) and the positions of their check-ins; the patrol's
    times and distance stay, as do the check-ins' times and the per-cell coverage figures.
    Never before late batches stop being taken. Batches of ``batch`` patrols, each committed;
    how many were purged."""
    cutoff = retained_since(now)
    purged = 0
    for _ in range(max_batches):
        ids = list(db.session.scalars(select(Patrol.id).where(Patrol.purged_at.is_(None), Patrol.ended_at < cutoff)
                                      .order_by(Patrol.ended_at).limit(batch).with_for_update(skip_locked=True)))
        if not ids:
            break
        db.session.execute(text("DELETE FROM patrol_points WHERE patrol_id = ANY(:ids)"), {"ids": ids})
        db.session.execute(text("UPDATE patrol_checkins SET geom = NULL, accuracy_m = NULL WHERE patrol_id = ANY(:ids)"),
                           {"ids": ids})
        db.session.execute(text("UPDATE patrols SET track = NULL, purged_at = :now WHERE id = ANY(:ids)"),
                           {"ids": ids, "now": now})
        db.session.commit()
        purged += len(ids)
        if len(ids) < batch:
            break
    db.session.commit()
    return purged
