"""Incident photos: checked, fingerprinted, compared with the incident, stored, served.

The type comes from the bytes (``server.imaging``), never from a name. Each photo is
kept twice in the blob store (``server.storage``) under its SHA-256: the original, for
staff of the territory, and a re-encoded copy without any metadata (no GPS), for
department handlers and, later, citizens. EXIF time and place are shown beside the
incident's own, as a distance and a delay, and never trusted.
"""
from __future__ import annotations

import hashlib
import logging
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
from server.errors import Conflict, DomainError, NotFound, PayloadTooLarge
from server.extensions import db
from server.models import Incident, IncidentPhoto
from server.models._base import utcnow
from server.services.access import authorize_incident
from server.storage import BlobNotFound, BlobStore, photo_key, store_from_config

_GEOD = Geod(ellps="WGS84")
log = logging.getLogger(__name__)


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


# EXIF clocks outside these years are broken clocks: the time is not shown at all.
_SANE_YEARS = range(1990, 2100)


def _check(data: bytes) -> imaging.ImageInfo:
    limit = current_app.config["PHOTO_MAX_BYTES"]
    if len(data) > limit:
        raise PayloadTooLarge("photo.too_large", f"A photo may be at most {limit // (1024 * 1024)} MiB.")
    try:
        return imaging.inspect(data, max_pixels=current_app.config["PHOTO_MAX_PIXELS"],
                               local_tz=ZoneInfo(current_app.config["TIMEZONE"]))
    except imaging.ImageError as exc:
        raise _photo_error(exc) from None


def sane_taken_at(taken_at):
    """An EXIF time as shown: None when absent or from a broken clock."""
    return taken_at if taken_at is not None and taken_at.year in _SANE_YEARS else None


@dataclass(frozen=True)
class Prepared:
    """A photo checked and in the blob store, not yet recorded."""

    kind: str
    size_bytes: int
    sha256: str
    info: imaging.ImageInfo


def prepare(files: list[tuple[str, bytes]]) -> list[Prepared]:
    """Check each (kind, bytes) photo and put it (original and public copy) in the blob
    store, before any database work: decoding and storing take time a transaction
    should not be held open for. Blobs are content-addressed, so a photo stored for a
    request that then fails costs space, never a wrong answer."""
    prepared = []
    store = blob_store()
    for kind, data in files:
        info = _check(data)
        sha256 = hashlib.sha256(data).hexdigest()
        original, public = photo_key(sha256, "orig"), photo_key(sha256, "public")
        if not store.exists(original):
            store.put(original, data, info.content_type)
        if not store.exists(public):
            try:
                copy = imaging.public_variant(data)
            except imaging.ImageError as exc:
                raise _photo_error(exc) from None
            store.put(public, copy, "image/jpeg")
        prepared.append(Prepared(kind, len(data), sha256, info))
    return prepared


def record(actor: Actor, incident: Incident, photo: Prepared, lon: float, lat: float) -> tuple[IncidentPhoto, bool]:
    """The row of a prepared photo of ``incident`` at WGS84 ``lon``/``lat`` (no commit);
    the same bytes of the same kind again → the row already there."""
    existing = db.session.scalars(select(IncidentPhoto).where(
        IncidentPhoto.incident_id == incident.id, IncidentPhoto.kind == photo.kind,
        IncidentPhoto.sha256 == photo.sha256)).one_or_none()
    if existing is not None:
        return existing, False
    info, now = photo.info, utcnow()
    taken_at = info.taken_at if info.taken_at is not None and info.taken_at.year in _SANE_YEARS else None
    row = IncidentPhoto(incident_id=incident.id, kind=photo.kind, content_type=info.content_type,
                        size_bytes=photo.size_bytes, sha256=photo.sha256, width=info.width, height=info.height,
                        taken_at=taken_at, exif_lon=info.lon, exif_lat=info.lat,
                        uploaded_by=actor.user_id or None, uploaded_at=now)
    if info.lon is not None:
        row.distance_m = round(_GEOD.inv(lon, lat, info.lon, info.lat)[2], 1)
    if taken_at is not None:
        row.delay_seconds = int((now - taken_at).total_seconds())
    db.session.add(row)
    db.session.flush()
    return row, True


def _incident(actor: Actor, incident_id: int, action: str = rules.READER) -> Incident:
    """The incident, if the actor may see it (404) and take ``action`` on it (403)."""
    from .incidents import incident_not_found, incident_target

    incident = db.session.get(Incident, incident_id)
    if incident is None:
        raise incident_not_found()
    target = incident_target(incident)
    if action == rules.READER:
        if rules.READER not in rules.relations(actor, target):
            raise incident_not_found()
    else:
        authorize_incident(actor, action, target, not_found=incident_not_found())
    return incident


def upload_photo(actor: Actor, incident_id: int, kind: str, data: bytes) -> tuple[IncidentPhoto, bool]:
    """Add a photo to an open incident: its reporter, handler or a supervisor may.
    Returns the photo and whether it is new. Errors: incident.not_found, auth.forbidden,
    photo.incident_closed (409), photo.too_large (413), photo.unsupported_type (415), photo.corrupt,
    photo.too_many_pixels (422)."""
    incident = _incident(actor, incident_id, rules.ADD_PHOTO)
    if rules.is_closed(incident.status):
        raise Conflict("photo.incident_closed", "The incident is closed; it takes no more photos.")
    prepared = prepare([(kind, data)])[0]
    point = from_db(incident.geom)
    try:
        photo, created = record(actor, incident, prepared, point.x, point.y)
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
    _incident(actor, incident_id)
    photo = db.session.get(IncidentPhoto, photo_id)
    if photo is None or photo.incident_id != incident_id:
        raise NotFound("photo.not_found", "No such photo.")
    public = actor.role == "department"
    try:
        data = blob_store().get(photo_key(photo.sha256, "public" if public else "orig"))
    except BlobNotFound:
        log.error("photo %s of incident %s is missing from the blob store", photo.id, incident_id)
        raise NotFound("photo.not_found", "No such photo.") from None
    if public:
        return PhotoContent(data, "image/jpeg", photo.sha256[:32] + "-public")
    return PhotoContent(data, photo.content_type, photo.sha256[:32])
