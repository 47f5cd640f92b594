"""Incident photos: checked, fingerprinted, compared with the incident, stored, served.

The type comes from the bytes (``server.imaging``), never from a name. Each photo is
kept twice in the blob store (``server.storage``) under its SHA-256: the original, for
staff of the territory, and a re-encoded copy without any metadata (no GPS), for
department handlers and, later, citizens. EXIF time and place are shown beside the
incident's own, as a distance and a delay, and never trusted.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flask import current_app
from pyproj import Geod
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from geo.geometry import from_db
from server import imaging
from server.domain import incidents as rules
from server.domain.permissions import Actor
from server.errors import Conflict, DomainError, Forbidden, NotFound, PayloadTooLarge
from server.extensions import db
from server.models import Incident, IncidentPhoto
from server.models._base import utcnow
from server.storage import BlobStore, photo_key, store_from_config

_GEOD = Geod(ellps="WGS84")


def blob_store() -> BlobStore:
    """The application's photo store, made once per app from its config."""
    store = current_app.extensions.get("fengqiao.photo_store")
    if store is None:
        store = current_app.extensions["fengqiao.photo_store"] = store_from_config(current_app.config)
    return store


def _photo_error(exc: imaging.ImageError) -> DomainError:
    error = DomainError(exc.code, exc.message)
    error.status = exc.status
    return error


def _check(data: bytes) -> imaging.ImageInfo:
    limit = current_app.config["PHOTO_MAX_BYTES"]
    if len(data) > limit:
        raise PayloadTooLarge("photo.too_large", f"A photo may be at most {limit // (1024 * 1024)} MiB.")
    try:
        return imaging.inspect(data, max_pixels=current_app.config["PHOTO_MAX_PIXELS"],
                               local_tz=ZoneInfo(current_app.config["TIMEZONE"]))
    except imaging.ImageError as exc:
        raise _photo_error(exc) from None


def _store(data: bytes, sha256: str, info: imaging.ImageInfo) -> None:
    store = blob_store()
    original, public = photo_key(sha256, "orig"), photo_key(sha256, "public")
    if not store.exists(original):
        store.put(original, data, info.content_type)
    if not store.exists(public):
        store.put(public, imaging.public_variant(data), "image/jpeg")


def _add(actor: Actor, incident: Incident, kind: str, data: bytes) -> tuple[IncidentPhoto, bool]:
    """Check, store and record one photo (no commit); the same bytes again → the same photo."""
    info = _check(data)
    sha256 = hashlib.sha256(data).hexdigest()
    existing = db.session.scalars(select(IncidentPhoto).where(
        IncidentPhoto.incident_id == incident.id, IncidentPhoto.kind == kind,
        IncidentPhoto.sha256 == sha256)).one_or_none()
    if existing is not None:
        return existing, False
    _store(data, sha256, info)
    now = utcnow()
    photo = IncidentPhoto(incident_id=incident.id, kind=kind, content_type=info.content_type, size_bytes=len(data),
                          sha256=sha256, width=info.width, height=info.height, taken_at=info.taken_at,
                          exif_lon=info.lon, exif_lat=info.lat, uploaded_by=actor.user_id or None, uploaded_at=now)
    if info.lon is not None:
        point = from_db(incident.geom)
        photo.distance_m = round(_GEOD.inv(point.x, point.y, info.lon, info.lat)[2], 1)
    if info.taken_at is not None:
        photo.delay_seconds = int((now - info.taken_at).total_seconds())
    db.session.add(photo)
    db.session.flush()
    return photo, True


def attach_photos(actor: Actor, incident: Incident, files: list[tuple[str, bytes]]) -> None:
    """Add the photos sent with a report (no commit: the report commits)."""
    for kind, data in files:
        _add(actor, incident, kind, data)


def _readable(actor: Actor, incident_id: int) -> tuple[Incident, frozenset[str]]:
    from .incidents import incident_not_found, incident_target

    incident = db.session.get(Incident, incident_id)
    mine = frozenset() if incident is None else rules.relations(actor, incident_target(incident))
    if rules.READER not in mine:
        raise incident_not_found()
    return incident, mine


def upload_photo(actor: Actor, incident_id: int, kind: str, data: bytes) -> tuple[IncidentPhoto, bool]:
    """Add a photo to an open incident: its reporter, handler or a supervisor may.
    Returns the photo and whether it is new. Errors: incident.not_found, auth.forbidden,
    photo.incident_closed (409), photo.too_large (413), photo.unsupported_type (415), photo.corrupt,
    photo.too_many_pixels (422)."""
    incident, mine = _readable(actor, incident_id)
    if not (mine & {rules.SUPERVISOR, rules.HANDLER} or incident.reporter_id == actor.user_id):
        raise Forbidden("auth.forbidden", "Only the reporter, the handler or a supervisor may add photos.")
    if rules.is_closed(incident.status):
        raise Conflict("photo.incident_closed", "The incident is closed; it takes no more photos.")
    try:
        photo, created = _add(actor, incident, kind, data)
        db.session.commit()
    except IntegrityError:  # the same upload, concurrently: the other one stored it
        db.session.rollback()
        sha256 = hashlib.sha256(data).hexdigest()
        photo = db.session.scalars(select(IncidentPhoto).where(
            IncidentPhoto.incident_id == incident_id, IncidentPhoto.kind == kind,
            IncidentPhoto.sha256 == sha256)).one()
        created = False
    return photo, created


@dataclass(frozen=True)
class PhotoContent:
    data: bytes
    content_type: str
    etag: str


def photo_content(actor: Actor, incident_id: int, photo_id: int) -> PhotoContent:
    """The image of a photo: the original for territory staff, the copy without
    metadata for everyone else. Errors: incident.not_found, photo.not_found."""
    _readable(actor, incident_id)
    photo = db.session.get(IncidentPhoto, photo_id)
    if photo is None or photo.incident_id != incident_id:
        raise NotFound("photo.not_found", "No such photo.")
    if actor.role == "department":
        return PhotoContent(blob_store().get(photo_key(photo.sha256, "public")), "image/jpeg",
                            photo.sha256[:32] + "-public")
    return PhotoContent(blob_store().get(photo_key(photo.sha256, "orig")), photo.content_type, photo.sha256[:32])
