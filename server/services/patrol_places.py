"""Places to check in at on patrol (打卡点) and check-ins (docs/FIELD.md "Check-ins").

A supervisor sets a place (a point and a radius of up to 1 km); it belongs to the grid cell
its point lies in, so it is seen by whoever's scope holds that cell. A grid worker on patrol
checks in with the phone's position: within the radius plus the fix's accuracy, the check-in
is recorded, else 422 patrol.outside_geofence. The same ``client_uuid`` again is the same
check-in (a retry). Check-ins follow the patrol's time rules (offline phones send them late).
"""
from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from geo.geometry import GeometryError, parse_point, to_db
from server.domain.permissions import PATROL_MANAGE, PLACE_MANAGE, PLACE_READ, Actor
from server.errors import Conflict, InvalidInput, NotFound
from server.extensions import db
from server.models import PatrolCheckin, PatrolPlace
from server.models._base import utcnow

from .access import authorize, scope_path, within_scope
from .patrols import get_for_update, time_window
from .regions import cell_at


def _place_not_found() -> NotFound:
    return NotFound("place.not_found", "No such place.")


def _point(location: dict, field: str = "location") -> tuple[float, float]:
    lon, lat = location["coordinates"]
    try:
        parse_point(lon, lat)
    except GeometryError as exc:
        raise InvalidInput(exc.code, exc.message, errors={field: [exc.message]}) from None
    return lon, lat


def create_place(actor: Actor, data: dict) -> PatrolPlace:
    """Set a place in a grid cell of the actor's scope. Errors: place.outside_grid (422),
    auth.forbidden (not a manager)."""
    lon, lat = _point(data["location"])
    cell = cell_at(lon, lat, scope_path(actor))
    if cell is None:
        raise InvalidInput("place.outside_grid", "The place is not inside any grid cell of your area.",
                           errors={"location": ["Outside every grid cell of your area."]})
    place = PatrolPlace(region_id=cell.id, region_path=cell.path, name=data["name"], name_en=data.get("name_en"),
                        geom=to_db(parse_point(lon, lat)), radius_m=data["radius_m"], created_by=actor.user_id,
                        created_at=utcnow())
    authorize(actor, PLACE_MANAGE, place, not_found=_place_not_found())
    db.session.add(place)
    db.session.commit()
    return place


def list_places(actor: Actor, region_path: str | None = None) -> list[PatrolPlace]:
    """The live places in the actor's scope (under ``region_path`` if given), by name."""
    stmt = select(PatrolPlace).where(PatrolPlace.retired_at.is_(None), within_scope(actor, PatrolPlace.region_path))
    if region_path is not None:
        stmt = stmt.where(PatrolPlace.region_path.startswith(region_path, autoescape=True))
    return list(db.session.scalars(stmt.order_by(PatrolPlace.name, PatrolPlace.id)))


def retire_place(actor: Actor, place_id: int) -> None:
    """Retire a place (again: nothing more); its check-ins stay. Errors: place.not_found,
    auth.forbidden."""
    place = db.session.get(PatrolPlace, place_id)
    authorize(actor, PLACE_MANAGE, place, not_found=_place_not_found())
    if place.retired_at is None:
        place.retired_at = utcnow()
    db.session.commit()


def check_in(actor: Actor, patrol_id: int, data: dict) -> tuple[PatrolCheckin, bool]:
    """Check in at a place on the actor's patrol. Returns the check-in and whether it is new.
    Errors: patrol.not_found, place.not_found (404), auth.forbidden (403), patrol.closed (409),
    patrol.outside_patrol, patrol.inaccurate_fix, patrol.outside_geofence (422)."""
    patrol = get_for_update(actor, patrol_id, PATROL_MANAGE)
    existing = _same(data["client_uuid"], patrol.id)
    if existing is not None:
        db.session.commit()
        return existing, False
    first, last = time_window(patrol, utcnow())
    t = data["t"] or utcnow()
    if not first <= t <= last:
        raise InvalidInput("patrol.outside_patrol", "The check-in's time is outside the patrol.",
                           errors={"t": ["Between the patrol's start and its end."]})
    place = db.session.get(PatrolPlace, data["place_id"])
    if place is None or place.retired_at is not None:
        raise _place_not_found()
    authorize(actor, PLACE_READ, place, not_found=_place_not_found())
    lon, lat = _point(data["location"])
    accuracy = data.get("accuracy_m")
    limit = current_app.config["PATROL_MAX_ACCURACY_M"]
    if accuracy is not None and accuracy > limit:
        raise InvalidInput("patrol.inaccurate_fix", f"The position is too rough to check in (worse than {limit:g} m).",
                           errors={"accuracy_m": [f"At most {limit:g} m."]})
    distance = db.session.scalar(text(
        "SELECT ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography) "
        "FROM patrol_places WHERE id = :id"), {"id": place.id, "lon": lon, "lat": lat})
    if distance > place.radius_m + (accuracy or 0):
        raise InvalidInput("patrol.outside_geofence",
                           f"You are {distance:.0f} m from {place.name}; check in within {place.radius_m:g} m.",
                           errors={"location": [f"{distance:.0f} m away; the place's radius is {place.radius_m:g} m."]})
    checkin = PatrolCheckin(patrol_id=patrol.id, place_id=place.id, client_uuid=data["client_uuid"], t=t,
                            geom=func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326), accuracy_m=accuracy,
                            distance_m=round(distance, 1), created_at=utcnow())
    db.session.add(checkin)
    try:
        db.session.commit()
    except IntegrityError:  # the same client_uuid raced in on another patrol (this one is locked)
        db.session.rollback()
        if _same(data["client_uuid"], patrol.id) is None:
            raise
    return checkin, True


def _same(client_uuid, patrol_id: int) -> PatrolCheckin | None:
    """The check-in made with ``client_uuid`` on this patrol; on another, 409."""
    existing = db.session.scalars(select(PatrolCheckin).where(PatrolCheckin.client_uuid == client_uuid)).one_or_none()
    if existing is not None and existing.patrol_id != patrol_id:
        raise Conflict("patrol.checkin_elsewhere", "That client_uuid is a check-in of another patrol.")
    return existing
