"""Incident use cases: report (上报), read, and every action of the closed loop.

One function per use case, one commit each. What is allowed and what follows is asked of
``domain.incidents`` (the transitions table); this module loads, applies and records:
every action appends one timeline event in the same transaction as the change.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from geo import crs as geo_crs
from geo.geometry import GeometryError, parse_point, to_db
from server.domain import incidents as rules
from server.domain.categories import clean_attribute_values
from server.domain.escalation import department_takes
from server.domain.permissions import SYSTEM, Actor
from server.domain.territory import ancestor_ids, is_within, level_rank
from server.errors import BadRequest, Conflict, Forbidden, InvalidInput, NotFound, PreconditionRequired
from server.extensions import db
from server.models import (
    Category,
    Department,
    Extension,
    GridAssignment,
    IdempotencyKey,
    Incident,
    IncidentEvent,
    IncidentFollower,
    IncidentPhoto,
    Mediation,
    MediationSession,
    Region,
    Task,
    User,
)
from server.models._base import utcnow

from . import campaigns, deadlines, duty, notify, photos, regions
from .access import authorize_incident, scope_path
from .constraints import violated_constraint

# Offline phones may send reports days late; older than this is refused.
MAX_REPORT_AGE = timedelta(days=90)
# A pending extension request ends with its task, refused with this note.
TASK_ENDED_NOTE = "任务已结束 / the task ended"
# An extension further ahead than this is a typing mistake.
MAX_EXTENSION = timedelta(days=366)
MAX_REPORT_PHOTOS = 9


def incident_not_found() -> NotFound:
    return NotFound("incident.not_found", "No such incident.")


def _version_conflict() -> Conflict:
    return Conflict("incident.version_conflict",
                    "The incident was changed by someone else; reload it and try again.")


# ---------------------------------------------------------------- reading

@dataclass
class IncidentView:
    """An incident with everything its detail page shows, as seen by one actor."""

    incident: Incident
    chain: list = field(default_factory=list)
    timeline: list = field(default_factory=list)
    tasks: list = field(default_factory=list)
    photos: list = field(default_factory=list)
    extensions: list = field(default_factory=list)
    mediation: Mediation | None = None
    followers_count: int = 0
    actions: list = field(default_factory=list)
    show_contact: bool = False
    sees_originals: bool = False

    def __getattr__(self, name):
        return getattr(self.incident, name)

    @property
    def region(self) -> dict:
        """The incident's grid cell: the chain's last region."""
        return self.chain[-1]


def incident_target(incident: Incident) -> rules.IncidentTarget:
    """What the rules need to know about ``incident``: its place, state and people."""
    active = _active_task(incident.id)
    cell_workers = db.session.scalars(
        select(GridAssignment.user_id).where(GridAssignment.region_id == incident.region_id))
    departments = db.session.scalars(
        select(Task.department_id).where(Task.incident_id == incident.id, Task.department_id.is_not(None)).distinct())
    return rules.IncidentTarget(
        scope_path=incident.region_path, level=incident.level, status=incident.status,
        reporter_id=incident.reporter_id, cell_worker_ids=frozenset(cell_workers),
        handler_user_id=active.assignee_id if active else None,
        handler_department_id=active.department_id if active else None,
        department_ids=frozenset(departments),
    )


def _active_task(incident_id: int) -> Task | None:
    return db.session.scalars(select(Task).where(
        Task.incident_id == incident_id, Task.status.in_(rules.ACTIVE_TASK_STATES))).one_or_none()


def _view(actor: Actor, incident: Incident, target: rules.IncidentTarget | None = None) -> IncidentView:
    target = target or incident_target(incident)
    mine = rules.relations(actor, target)
    return IncidentView(
        incident=incident,
        chain=regions.chain_of(incident.region_path),
        timeline=list(db.session.scalars(
            select(IncidentEvent).where(IncidentEvent.incident_id == incident.id).order_by(IncidentEvent.id))),
        tasks=list(db.session.scalars(select(Task).where(Task.incident_id == incident.id).order_by(Task.id))),
        photos=list(db.session.scalars(
            select(IncidentPhoto).where(IncidentPhoto.incident_id == incident.id).order_by(IncidentPhoto.id))),
        extensions=list(db.session.scalars(
            select(Extension).where(Extension.incident_id == incident.id).order_by(Extension.id))),
        mediation=db.session.get(Mediation, incident.id),
        followers_count=db.session.scalar(
            select(func.count()).where(IncidentFollower.incident_id == incident.id)),
        actions=_offered(actor, incident, target),
        show_contact=rules.SUPERVISOR in mine,
        sees_originals=actor.role != "department",
    )


def _offered(actor: Actor, incident: Incident, target: rules.IncidentTarget,
             pending_extension: bool | None = None) -> list[str]:
    """The actions to offer as buttons: the table's, less those with nothing to act on."""
    offered = []
    pending = pending_extension
    if pending is None:
        pending = db.session.scalar(select(Extension.id).where(
            Extension.incident_id == incident.id, Extension.status == "pending")) is not None
    for action in rules.available_actions(actor, target):
        if action in ("approve_extension", "refuse_extension") and not pending:
            continue
        if action == "request_extension" and pending:
            continue
        if action == "mediate" and incident.category.kind != "dispute":
            continue
        if action == "escalate" and deadlines.level_above(incident) is None:
            continue
        if action == "return_down" and deadlines.level_below(incident) is None:
            continue
        offered.append(action)
    return offered


def get_incident(actor: Actor, incident_id: int) -> IncidentView:
    """One incident the actor may see, with its timeline, tasks and photos.
    Errors: incident.not_found."""
    incident = db.session.get(Incident, incident_id)
    if incident is None:
        raise incident_not_found()
    target = incident_target(incident)
    if rules.READER not in rules.relations(actor, target):
        raise incident_not_found()
    return _view(actor, incident, target)


# ---------------------------------------------------------------- reporting

def _idempotency_keys(data: dict, header_key: str | None) -> list[str]:
    keys = []
    if header_key is not None:
        if not (1 <= len(header_key) <= 255) or not header_key.isascii() or not header_key.isprintable():
            raise BadRequest("idempotency.invalid_key", "Idempotency-Key must be 1-255 printable ASCII characters.")
        keys.append("key:" + header_key)
    if data.get("client_uuid") is not None:
        keys.append("uuid:" + str(data["client_uuid"]))
    return keys


def _request_hash(data: dict, files: list[tuple[str, bytes]]) -> str:
    canonical = json.dumps({
        "report": data,
        "photos": sorted((kind, hashlib.sha256(content).hexdigest()) for kind, content in files),
    }, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(actor: Actor, keys: list[str], request_hash: str) -> dict | None:
    """The first answer stored under one of ``keys`` (this actor's); None when there is none.
    Raises idempotency.key_reused when a key belongs to another report."""
    if not keys:
        return None
    rows = db.session.execute(select(IdempotencyKey.request_hash, IdempotencyKey.response).where(
        IdempotencyKey.user_id == actor.user_id, IdempotencyKey.key.in_(keys))).all()
    if rows:
        if any(row.request_hash != request_hash for row in rows):
            raise _key_reused()
        return rows[0].response
    return None


def _replay_after_conflict(actor: Actor, keys: list[str], request_hash: str, client_uuid) -> dict | None:
    """After a unique violation: the answer of the report holding the key or client UUID
    when it is this actor's same report; None when neither explains the violation.
    Errors: idempotency.key_reused."""
    replay = _replay(actor, keys, request_hash)
    if replay is not None:
        return replay
    if client_uuid is not None and db.session.scalar(
            select(Incident.id).where(Incident.client_uuid == client_uuid)) is not None:
        raise _key_reused()  # someone else's report (or one made before keys were kept)
    return None


def _key_reused() -> InvalidInput:
    return InvalidInput("idempotency.key_reused",
                        "This idempotency key or client_uuid was already used for a different report.")


def _live_leaf(code: str) -> Category:
    category = db.session.scalars(select(Category).where(Category.code == code)).one_or_none()
    if category is None or category.is_retired or not category.is_leaf:
        raise InvalidInput("incident.invalid_category", "Choose a live category (a leaf, not a group).",
                           errors={"category": ["Unknown, retired or a group."]})
    return category


def _locate_cell(actor: Actor, location: dict, crs: str) -> tuple:
    """The cell at the report's location (``id``, ``path``, ``workers``) and the WGS84 point."""
    lon, lat = location["coordinates"]
    try:
        parse_point(lon, lat)
    except GeometryError as exc:
        raise InvalidInput(exc.code, exc.message, errors={"location": [exc.message]}) from None
    if crs != "wgs84":
        lon, lat = geo_crs.to_wgs84(lon, lat, crs)
    row = regions.cell_at(lon, lat, scope_path(actor))
    if row is None:
        raise InvalidInput("incident.outside_grid", "The location is not inside any grid cell of your area.",
                           errors={"location": ["Outside every grid cell you cover."]})
    return row, lon, lat


def report_incident(actor: Actor, data: dict, files: list[tuple[str, bytes]], header_key: str | None,
                    *, render) -> tuple[dict, bool]:
    """Report an incident (上报) and, with ``resolve_on_spot``, resolve it at once (即报即处).

    ``files`` are (kind, bytes) photos sent with the report. Returns the answer (made by
    ``render(view)``) and whether it is a replay of an earlier identical report. Errors:
    idempotency.invalid_key (400), auth.forbidden, incident.invalid_category,
    incident.invalid_attributes, incident.outside_grid, incident.occurred_in_future,
    incident.occurred_too_long_ago, incident.after_photo_required, idempotency.key_reused
    (422), photo.* (413/415/422).
    """
    keys = _idempotency_keys(data, header_key)
    request_hash = _request_hash(data, files)
    replay = _replay(actor, keys, request_hash)
    if replay is not None:
        return replay, True

    now = utcnow()
    if actor.role == "department":
        raise Forbidden("auth.forbidden", "Department handlers take cases; grid workers and supervisors report them.")
    category = _live_leaf(data["category"])
    attributes, attribute_errors = clean_attribute_values(category.attributes, data["attributes"])
    if attribute_errors:
        raise InvalidInput("incident.invalid_attributes", "Some attributes do not fit the category.",
                           errors={"attributes": attribute_errors})
    occurred_at = data["occurred_at"] or now
    if occurred_at > now + timedelta(seconds=current_app.config["CLOCK_SKEW_SECONDS"]):
        raise InvalidInput("incident.occurred_in_future", "occurred_at is in the future; check the phone's clock.",
                           errors={"occurred_at": ["In the future."]})
    if occurred_at < now - MAX_REPORT_AGE:
        raise InvalidInput("incident.occurred_too_long_ago", "occurred_at is more than 90 days ago.",
                           errors={"occurred_at": ["More than 90 days ago."]})
    cell, lon, lat = _locate_cell(actor, data["location"], data["crs"])
    if not rules.may_report(actor, cell.path):
        raise Forbidden("auth.forbidden", "You may not report incidents here.")
    if data["resolve_on_spot"]:
        if not any(kind == "after" for kind, _ in files):
            raise InvalidInput("incident.after_photo_required",
                               "Resolving on the spot needs an 'after' photo.", errors={"after": ["Required."]})
        if actor.user_id not in cell.workers:
            raise Forbidden("auth.forbidden", "Only a worker of this grid cell may resolve on the spot.")
    campaign_task = None
    if data.get("campaign_task_id") is not None:  # a finding of an inspection campaign (排查)
        campaign_task = campaigns.task_for_finding(actor, data["campaign_task_id"], category, cell.id)

    if len(files) > MAX_REPORT_PHOTOS:
        raise InvalidInput("incident.too_many_photos", f"A report takes at most {MAX_REPORT_PHOTOS} photos.")
    prepared = photos.prepare(files)
    contact = data.get("contact") or {}
    try:
        incident, reported = open_incident(
            actor, category=category, cell=cell, lon=lon, lat=lat, now=now, source=data["source"],
            description=data["description"], attributes=attributes, occurred_at=occurred_at,
            client_uuid=data.get("client_uuid"), address=data.get("address"), priority=data["priority"],
            contact_name=contact.get("name"), contact_phone=contact.get("phone"),
            campaign_task_id=campaign_task.id if campaign_task else None)
        timeline = [reported]
        if actor.user_id:
            db.session.add(IncidentFollower(incident_id=incident.id, user_id=actor.user_id))
        stored = [photos.record(actor, incident, photo, lon, lat)[0] for photo in prepared]
        if campaign_task is not None:
            campaigns.record_finding(actor, campaign_task, now)
        if data["resolve_on_spot"]:
            _resolve(incident, on_spot=True, now=now)
            timeline.append(_event(incident, actor, "resolve_on_spot", "reported",
                                   note=data.get("resolution_note"), at=now))
        db.session.flush()
        body = render(_fresh_view(actor, incident, cell, timeline, stored))
        for key in keys:
            db.session.add(IdempotencyKey(user_id=actor.user_id, key=key, request_hash=request_hash,
                                          incident_id=incident.id, response=body))
        db.session.commit()
    except IntegrityError:
        # A retry, or a concurrent duplicate that won the race on client_uuid or a key:
        # answer as the first one was answered.
        db.session.rollback()
        replay = _replay_after_conflict(actor, keys, request_hash, data.get("client_uuid"))
        if replay is None:
            raise
        return replay, True
    except Exception:
        db.session.rollback()
        raise
    return body, False


def open_incident(actor: Actor, *, category: Category, cell, lon: float, lat: float, now: datetime, source: str,
                  description: str, attributes: dict, occurred_at: datetime, client_uuid=None, address=None,
                  priority: str | None = None, contact_name=None, contact_phone=None, campaign_task_id=None,
                  event_data: dict | None = None) -> tuple[Incident, IncidentEvent]:
    """A new incident (待受理) in ``cell`` at its category's start level, its first stage begun
    and its ``report`` event written, flushed in the caller's transaction (which commits).
    The reporter is ``actor`` (none for the system: a citizen's report). Raises IntegrityError
    when ``client_uuid`` is taken (a retry, or someone else's report)."""
    incident = Incident(
        client_uuid=client_uuid or uuid.uuid4(), category_id=category.id, status="reported",
        level=category.start_level, region_id=cell.id, region_path=cell.path, geom=to_db(parse_point(lon, lat)),
        address=address, description=description, priority=priority or category.default_priority, source=source,
        attributes=attributes, reporter_id=actor.user_id or None, contact_name=contact_name,
        contact_phone=contact_phone, occurred_at=occurred_at, reported_at=now, campaign_task_id=campaign_task_id,
    )
    deadlines.begin_stage(incident, now, category=category)
    db.session.add(incident)
    db.session.flush()  # the client_uuid of a retry (or of someone else's report) stops here
    return incident, _event(incident, actor, "report", None, note=None, at=now, data=event_data)


def record_citizen_update(incident: Incident, note: str | None, data: dict, now: datetime) -> IncidentEvent:
    """A citizen's word on their case (Open311's updates, docs/OPEN311.md): a ``citizen_update``
    event on its timeline, the state unchanged; flushed in the caller's transaction."""
    event = _event(incident, SYSTEM, "citizen_update", incident.status, note=note, at=now, data=data)
    db.session.flush()
    return event


def _fresh_view(actor: Actor, incident: Incident, cell, timeline: list[IncidentEvent],
                stored_photos: list[IncidentPhoto]) -> IncidentView:
    """The view of an incident reported in this transaction, from what was just written.

    It equals what ``get_incident`` would show (tests hold the two equal): a new report has
    no task, extension or mediation yet, its reporter as its one follower, and the people of
    its cell as they were when it was located.
    """
    target = rules.IncidentTarget(
        scope_path=incident.region_path, level=incident.level, status=incident.status,
        reporter_id=incident.reporter_id, cell_worker_ids=frozenset(cell.workers),
        handler_user_id=None, handler_department_id=None, department_ids=frozenset())
    return IncidentView(
        incident=incident, chain=cell.chain, timeline=timeline, photos=sorted(stored_photos, key=_by_id),
        followers_count=1 if incident.reporter_id else 0,
        actions=_offered(actor, incident, target, pending_extension=False),
        show_contact=rules.SUPERVISOR in rules.relations(actor, target),
        sees_originals=actor.role != "department",
    )


def _by_id(row) -> int:
    return row.id


# ---------------------------------------------------------------- the closed loop

def _event(incident: Incident, actor: Actor, action: str, from_status: str | None, *, note: str | None,
           at: datetime, from_level: str | None = None, data: dict | None = None) -> IncidentEvent:
    event = IncidentEvent(
        incident_id=incident.id, at=at, actor_id=actor.user_id or None, action=action, from_status=from_status,
        to_status=incident.status, from_level=from_level or (incident.level if from_status else None),
        to_level=incident.level, note=note, data=data or {},
    )
    db.session.add(event)
    return event


def _resolve(incident: Incident, *, on_spot: bool, now: datetime) -> None:
    incident.status = "resolved"
    incident.resolved_at = now
    incident.resolved_level = "grid" if on_spot else incident.level
    incident.resolved_on_spot = on_spot


@dataclass
class _Step:
    """One action being applied: the handlers below read and change it."""

    actor: Actor
    incident: Incident
    target: rules.IncidentTarget
    data: dict
    now: datetime
    extra: dict = field(default_factory=dict)  # goes into the event's data


def _need(step: _Step, name: str, message: str, code: str = "incident.missing_field"):
    value = step.data.get(name)
    if value is None:
        raise InvalidInput(code, message, errors={name: ["Required for this action."]})
    return value


def _need_reason(step: _Step) -> str:
    return _need(step, "note", "Give a reason (note) for this action.", "incident.reason_required")


def _cancel_active_task(step: _Step, status: str = "cancelled") -> Task | None:
    """End the task that is out (if any); a pending extension request ends with it."""
    task = _active_task(step.incident.id)
    if task is not None:
        task.status = status
        task.finished_at = step.now
        db.session.execute(update(Extension).where(
            Extension.incident_id == step.incident.id, Extension.status == "pending",
        ).values(status="refused", decided_at=step.now, decision_note=TASK_ENDED_NOTE))
        db.session.flush()  # before a new active task is inserted (one active per incident)
    return task


def _last_handler_task(incident_id: int) -> Task | None:
    return db.session.scalars(select(Task).where(Task.incident_id == incident_id, Task.status == "done")
                              .order_by(Task.id.desc()).limit(1)).one_or_none()


def _still_fits(incident: Incident, task: Task) -> bool:
    """May the holder of an earlier task still take the case (as ``_dispatch`` requires)?"""
    if task.assignee_id is not None:
        return _worker_may_take(incident, db.session.get(User, task.assignee_id))
    return _department_may_take(incident, db.session.get(Department, task.department_id))


# Whom a case may be dispatched to; ``dispatch_targets`` is the SQL form of the same rule.
def _worker_may_take(incident: Incident, worker: User | None) -> bool:
    """An active grid worker whose area holds the case's cell (that is what lets them see it)."""
    return (worker is not None and worker.is_active and worker.role == "grid_worker"
            and is_within(incident.region_path, worker.region.path))


def _department_may_take(incident: Incident, department: Department | None) -> bool:
    """A live department whose area contains the case (its region's or any above it)."""
    return (department is not None and department.retired_at is None
            and is_within(incident.region_path, department.region.path))


@dataclass
class DispatchTargets:
    workers: list
    departments: list


def dispatch_targets(actor: Actor, incident_id: int) -> DispatchTargets:
    """Whom the actor may dispatch the incident to: the grid workers and departments the
    dispatch accepts for it, nearest area first — those of regions above the actor's scope
    too (a community dispatches to its street's departments). Errors: incident.not_found,
    auth.forbidden (the actor may not dispatch it)."""
    incident = db.session.get(Incident, incident_id)
    if incident is None:
        raise incident_not_found()
    authorize_incident(actor, "dispatch", incident_target(incident), not_found=incident_not_found())
    holds = literal(incident.region_path).startswith(Region.path)  # paths are server-made: no wildcards
    nearest = func.length(Region.path).desc()
    workers = db.session.scalars(
        select(User).join(Region, Region.id == User.region_id)
        .where(User.role == "grid_worker", User.is_active.is_(True), holds)
        .order_by(nearest, User.display_name, User.id)).all()
    departments = db.session.scalars(
        select(Department).join(Region, Region.id == Department.region_id)
        .where(Department.retired_at.is_(None), holds)
        .order_by(nearest, Department.name, Department.id)).all()
    return DispatchTargets(list(workers), list(departments))


def _back_to_handler(step: _Step) -> None:
    """Rework or reopen: the handler who resolved it gets it back, already acknowledged.
    Without one who still fits (resolved on the spot, moved, retired) a supervisor
    dispatches anew from ``accepted``."""
    done = _last_handler_task(step.incident.id)
    if done is None or not _still_fits(step.incident, done):
        step.incident.status = "accepted"
        return
    task = Task(incident_id=step.incident.id, assignee_id=done.assignee_id, department_id=done.department_id,
                status="acknowledged", level=step.incident.level, instructions=step.data.get("note"),
                created_by=step.actor.user_id or None, created_at=step.now, ack_deadline=step.now,
                acknowledged_at=step.now, acknowledged_by=done.acknowledged_by)
    db.session.add(task)
    db.session.flush()
    step.extra["task_id"] = task.id


def _has_after_photo(incident_id: int) -> bool:
    """Is there an ``after`` photo newer than the last rework or reopen (the earlier ones
    showed work that was not accepted)?"""
    since = db.session.scalar(select(func.max(IncidentEvent.at)).where(
        IncidentEvent.incident_id == incident_id, IncidentEvent.action.in_(("rework", "reopen"))))
    stmt = select(func.count()).where(IncidentPhoto.incident_id == incident_id, IncidentPhoto.kind == "after")
    if since is not None:
        stmt = stmt.where(IncidentPhoto.uploaded_at > since)
    return db.session.scalar(stmt) > 0


def _unresolve(incident: Incident) -> None:
    incident.resolved_at = None
    incident.resolved_level = None
    incident.resolved_on_spot = False


def _accept(step: _Step) -> None:
    step.incident.accepted_at = step.now


def _reject(step: _Step) -> None:
    _need_reason(step)


def _merge(step: _Step) -> None:
    original_id = _need(step, "original_id", "Name the original incident (original_id).")
    invalid = InvalidInput("incident.invalid_original", "The original must be another open incident you can see.",
                           errors={"original_id": ["Not another open incident you can see."]})
    original = db.session.get(Incident, original_id)
    if original is None or original.id == step.incident.id or not rules.is_open(original.status):
        raise invalid
    if rules.READER not in rules.relations(step.actor, incident_target(original)):
        raise invalid
    incident = step.incident
    incident.merged_into_id = original.id
    _cancel_active_task(step)
    # whoever followed the duplicate now follows the original
    db.session.execute(pg_insert(IncidentFollower).from_select(
        ["incident_id", "user_id"],
        select(literal(original.id), IncidentFollower.user_id).where(IncidentFollower.incident_id == incident.id),
    ).on_conflict_do_nothing())
    original.updated_at = step.now  # a new version: phones and stale writers notice
    _event(original, step.actor, "merged_in", original.status, note=step.data.get("note"), at=step.now,
           data={"duplicate_id": incident.id})
    step.extra["original_id"] = original.id


def _dispatch(step: _Step) -> None:
    incident, data = step.incident, step.data
    if (data.get("assignee_id") is None) == (data.get("department_id") is None):
        raise InvalidInput("incident.assignee_required", "Dispatch to one grid worker or one department.",
                           errors={"assignee_id": ["Give exactly one of assignee_id and department_id."]})
    invalid = InvalidInput("incident.invalid_assignee",
                           "The assignee must be an active grid worker covering the incident, or a live "
                           "department whose area contains it.")
    if data.get("assignee_id") is not None:
        worker = db.session.get(User, data["assignee_id"])
        if not _worker_may_take(incident, worker):
            raise invalid
        step.extra["assignee_id"] = worker.id
    else:
        department = db.session.get(Department, data["department_id"])
        if not _department_may_take(incident, department):
            raise invalid
        step.extra["department_id"] = department.id
    previous = _cancel_active_task(step)
    ack_by = (step.now + timedelta(minutes=data["ack_minutes"]) if data.get("ack_minutes")
              else deadlines.task_ack_deadline(incident, step.now))
    task = Task(incident_id=incident.id, assignee_id=data.get("assignee_id"),
                department_id=data.get("department_id"), status="open", level=incident.level,
                instructions=data.get("note"), created_by=step.actor.user_id or None, created_at=step.now,
                ack_deadline=ack_by)
    db.session.add(task)
    db.session.flush()
    incident.dispatched_at = step.now
    step.extra["task_id"] = task.id
    notify.notify(_others(step, notify.task_recipients(task)), "task", incident, now=step.now,
                  cause=f"task:{task.id}", task=task, level=incident.level, deadline=task.ack_deadline)
    if previous is not None:
        step.extra["replaces_task_id"] = previous.id


def _decline(step: _Step) -> None:
    _need_reason(step)
    _cancel_active_task(step, status="declined")


def _acknowledge(step: _Step) -> None:
    task = _active_task(step.incident.id)
    task.status = "acknowledged"
    task.acknowledged_at = step.now
    task.acknowledged_by = step.actor.user_id
    step.extra["task_id"] = task.id


def _start(step: _Step) -> None:
    pass


def _resolve_action(step: _Step) -> None:
    if step.incident.category.requires_after_photo and not _has_after_photo(step.incident.id):
        raise InvalidInput("incident.after_photo_required",
                           "This category needs an 'after' photo before it is reported resolved.")
    task = _cancel_active_task(step, status="done")
    if task is not None:
        step.extra["task_id"] = task.id
    _resolve(step.incident, on_spot=False, now=step.now)


def _resolve_on_spot(step: _Step) -> None:
    if not _has_after_photo(step.incident.id):
        raise InvalidInput("incident.after_photo_required", "Resolving on the spot needs an 'after' photo.")
    _resolve(step.incident, on_spot=True, now=step.now)


def _verify(step: _Step) -> None:
    step.incident.closed_at = step.now


def _rework(step: _Step) -> None:
    _need_reason(step)
    step.incident.rework_count += 1
    _unresolve(step.incident)
    _back_to_handler(step)


def _suspend(step: _Step) -> None:
    _need_reason(step)
    step.incident.suspended_from = step.target.status
    step.incident.suspended_at = step.now
    deadlines.pause_stage(step.incident, step.now)


def _resume(step: _Step) -> None:
    incident = step.incident
    paused = step.now - incident.suspended_at
    deadlines.resume_stage(incident, step.now)  # 挂起 stopped the clock
    task = _active_task(incident.id)
    if task is not None and task.acknowledged_at is None:
        task.ack_deadline += paused
    step.extra["paused_seconds"] = int(paused.total_seconds())
    incident.suspended_from = None
    incident.suspended_at = None


def _request_extension(step: _Step) -> None:
    reason = _need_reason(step)
    until = _need(step, "until", "Say until when (until).")
    floor = max(step.now, step.incident.due_at or step.now)
    if not floor < until <= step.now + MAX_EXTENSION:
        raise InvalidInput("incident.invalid_extension",
                           "The new deadline must be later than the current one and within a year.",
                           errors={"until": ["Not after the current deadline, or more than a year ahead."]})
    if db.session.scalar(select(Extension.id).where(Extension.incident_id == step.incident.id,
                                                    Extension.status == "pending")) is not None:
        raise Conflict("incident.extension_pending", "An extension request is already waiting for a decision.")
    extension = Extension(incident_id=step.incident.id, requested_by=step.actor.user_id, requested_at=step.now,
                          until=until, reason=reason)
    db.session.add(extension)
    db.session.flush()
    step.extra.update(extension_id=extension.id, until=until.isoformat())


def _pending_extension(step: _Step) -> Extension:
    extension = db.session.scalars(select(Extension).where(Extension.incident_id == step.incident.id,
                                                           Extension.status == "pending")).one_or_none()
    if extension is None:
        raise Conflict("incident.no_pending_extension", "There is no extension request to decide.")
    extension.decided_by = step.actor.user_id or None
    extension.decided_at = step.now
    extension.decision_note = step.data.get("note")
    step.extra["extension_id"] = extension.id
    return extension


def _approve_extension(step: _Step) -> None:
    extension = _pending_extension(step)
    extension.status = "approved"
    deadlines.extend_stage(step.incident, extension.until)
    step.incident.extension_count += 1
    step.extra["until"] = extension.until.isoformat()


def _refuse_extension(step: _Step) -> None:
    _pending_extension(step).status = "refused"


def _others(step: _Step, user_ids) -> list[int]:
    """``user_ids`` less the actor: nobody is told of what they did themselves."""
    return [u for u in user_ids if u != step.actor.user_id]


def _move_level(step: _Step, level: str, told_in: str, told_out: str | None = None) -> None:
    """The case goes to ``level``: the task out is cancelled, the new level's supervisors
    take it (told ``told_in``), a new stage starts there; with ``told_out``, the level left
    and the handler whose task ended are told too."""
    incident = step.incident
    previous_task = _cancel_active_task(step)
    from_level = incident.level
    step.extra.update(from_level=from_level, to_level=level)
    incident.level = level
    deadlines.next_stage(incident, step.now)
    left = notify.level_supervisors(incident, from_level) if told_out else []
    left += notify.task_recipients(previous_task) if told_out and previous_task is not None else []
    notify.tell(notify.level_change(notify.Subject.of(incident), incident.stage_no, level, incident.due_at,
                                    taking=notify.level_supervisors(incident, level), left=left, told_in=told_in,
                                    told_out=told_out, actor_id=step.actor.user_id), step.now)


def _escalate(step: _Step) -> None:
    """升级: one level up, with a reason; at the policy's top level there is no higher one."""
    step.extra["reason"] = _need_reason(step)
    above = deadlines.level_above(step.incident)
    if above is None:
        raise Conflict("incident.at_top_level", "The case is at the highest level its policy allows; "
                                                "it can be flagged for supervision (督办), not escalated.")
    step.incident.escalation_count += 1
    _move_level(step, above, "escalated_in", "escalated_out")


def _return_down(step: _Step) -> None:
    """下派: one level down, with instructions for the level below."""
    _need(step, "note", "Give instructions for the level below (note).", "incident.reason_required")
    below = deadlines.level_below(step.incident)
    if below is None:
        raise Conflict("incident.at_lowest_level", "The case is already at the grid level.")
    _move_level(step, below, "returned")


def _callback(step: _Step) -> None:
    if step.incident.satisfaction is not None:
        raise Conflict("incident.callback_done", "The call-back of this closing is already recorded.")
    step.incident.satisfaction = _need(step, "satisfaction", "Give the satisfaction score (1-5).")
    step.extra["satisfaction"] = step.incident.satisfaction


def _reopen(step: _Step) -> None:
    """A new round after a dissatisfied call-back: a fresh resolve deadline; the score
    stays on the timeline and the next closing gets its own call-back."""
    incident = step.incident
    incident.reopen_count += 1
    incident.closed_at = None
    incident.satisfaction = None
    _unresolve(incident)
    deadlines.next_stage(incident, step.now)
    _back_to_handler(step)


def _comment(step: _Step) -> None:
    _need(step, "note", "Write the comment (note).")


_APPLY = {
    "accept": _accept, "reject": _reject, "merge": _merge, "dispatch": _dispatch, "decline": _decline,
    "acknowledge": _acknowledge, "start": _start, "resolve": _resolve_action, "resolve_on_spot": _resolve_on_spot,
    "verify": _verify, "rework": _rework, "suspend": _suspend, "resume": _resume,
    "escalate": _escalate, "return_down": _return_down,
    "request_extension": _request_extension, "approve_extension": _approve_extension,
    "refuse_extension": _refuse_extension, "callback": _callback, "reopen": _reopen, "comment": _comment,
}
assert set(_APPLY) == set(rules.ACTIONS) - rules.OWN_ENDPOINT_ACTIONS, "every action needs a handler"


def _load_for(actor: Actor, incident_id: int, action: str, version: int | None,
              *, version_optional: bool = False) -> tuple[Incident, rules.IncidentTarget]:
    incident = db.session.get(Incident, incident_id)
    if incident is None:
        raise incident_not_found()
    target = incident_target(incident)
    authorize_incident(actor, action, target, not_found=incident_not_found())
    if version is None and not version_optional:
        raise PreconditionRequired("incident.version_required",
                                   "Send the version you read (in the body or as If-Match).")
    if version is not None and version != incident.version:
        raise _version_conflict()
    return incident, target


def _apply_action(actor: Actor, incident: Incident, target: rules.IncidentTarget, action: str, data: dict,
                  apply, now: datetime) -> None:
    """Apply one action in the open transaction: check the state, run ``apply``, append the
    event (and the reopen a dissatisfied call-back brings). No commit."""
    try:
        new_status = rules.transition(incident.status, action, previous=incident.suspended_from)
    except rules.TransitionRefused as exc:
        raise Conflict(exc.code, exc.message) from None
    step = _Step(actor=actor, incident=incident, target=target, data=data, now=now)
    from_status, from_level = incident.status, incident.level
    incident.status = new_status
    apply(step)
    if action != "comment":  # a comment is only an event: no new version to collide with
        incident.updated_at = step.now
    _event(incident, actor, action, from_status, note=data.get("note"), at=step.now, from_level=from_level,
           data=step.extra)
    if action == "callback" and step.incident.satisfaction <= rules.DISSATISFIED_AT_MOST:
        step.extra = {}
        incident.status = rules.transition("closed", "reopen")
        _reopen(step)
        _event(incident, actor, "reopen", "closed", note="回访不满意 / dissatisfied call-back", at=step.now,
               data=step.extra)
    if action == "escalate":
        dispatch_by_policy(incident, now)
    elif action in ("accept", "return_down"):
        auto_dispatch(incident, now)


def auto_dispatch(incident: Incident, now: datetime) -> bool:
    """自动派遣: a case accepted at grid level whose policy says ``auto_dispatch`` goes at once to
    the cell's available grid worker (server/domain/duty.py); with none available, the
    supervisors of its level are told that it waits for them. True when it was dispatched."""
    if incident.status != "accepted" or incident.level != "grid" or _active_task(incident.id) is not None:
        return False
    if not deadlines.policy_for(incident.category, incident.region_path)["auto_dispatch"]:
        return False
    worker = duty.assignee_for(incident.region_id, now)
    if worker is None:
        notify.notify(notify.level_supervisors(incident, incident.level), "dispatch_waiting", incident, now=now,
                      cause=f"incident:{incident.id}:stage:{incident.stage_no}:dispatch_waiting", level=incident.level)
        return False
    _apply_action(SYSTEM, incident, incident_target(incident), "dispatch",
                  {"assignee_id": worker, "note": "自动派遣 / dispatched automatically"}, _dispatch, now)
    return True


def dispatch_by_policy(incident: Incident, now: datetime) -> bool:
    """After an escalation: when the policy sends cases of this kind at the new level to a
    department, the system dispatches the case to the nearest live one on its path at or
    above that level. True when it did."""
    kind = incident.category.department_kind
    if incident.status != "accepted" or kind is None or not department_takes(
            deadlines.policy_for(incident.category, incident.region_path), incident.level):
        return False
    ids = ancestor_ids(incident.region_path)[:level_rank(incident.level) + 1]
    department = db.session.scalars(
        select(Department).join(Region, Region.id == Department.region_id)
        .where(Department.kind == kind, Department.retired_at.is_(None), Department.region_id.in_(ids))
        .order_by(func.length(Region.path).desc(), Department.id).limit(1)).first()
    if department is None:
        return False
    _apply_action(SYSTEM, incident, incident_target(incident), "dispatch",
                  {"department_id": department.id, "note": "升级后按策略派遣 / dispatched by the policy"}, _dispatch, now)
    return True


def _take(actor: Actor, incident: Incident, target: rules.IncidentTarget, action: str, data: dict,
          apply) -> None:
    """Apply one action and commit once; a stale version or a lost race is a 409."""
    try:
        _apply_action(actor, incident, target, action, data, apply, utcnow())
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise _version_conflict() from None
    except IntegrityError as exc:
        db.session.rollback()
        if violated_constraint(exc) == "uq_incident_extensions_pending":
            raise Conflict("incident.extension_pending",
                           "An extension request is already waiting for a decision.") from None
        if violated_constraint(exc) == "uq_tasks_active":
            raise _version_conflict() from None
        raise
    except Exception:
        db.session.rollback()
        raise


def act(actor: Actor, incident_id: int, action: str, data: dict, *, if_match: int | None = None) -> IncidentView:
    """Take ``action`` on an incident (立案, 派遣, 签收, 处置反馈, 核查结案, 返工, 挂起, 延期, 回访…).

    ``data`` holds the version read (or ``if_match``) and what the action needs (see
    docs/INCIDENTS.md). Errors: incident.unknown_action, incident.not_found (404);
    auth.forbidden (403); incident.invalid_transition, incident.version_conflict,
    incident.extension_pending, incident.no_pending_extension (409);
    incident.version_required (428); incident.reason_required, incident.missing_field,
    incident.invalid_assignee, incident.assignee_required, incident.invalid_original,
    incident.invalid_extension, incident.after_photo_required (422).
    """
    apply = _APPLY.get(action)
    if apply is None:
        raise NotFound("incident.unknown_action", f"There is no action {action[:40]!r}.")
    version = data.get("version") if data.get("version") is not None else if_match
    incident, target = _load_for(actor, incident_id, action, version, version_optional=action == "comment")
    _take(actor, incident, target, action, data, apply)
    return _view(actor, incident)


# ---------------------------------------------------------------- mediation (矛盾纠纷)

def _dispute(actor: Actor, incident_id: int, version: int | None) -> tuple[Incident, rules.IncidentTarget]:
    incident, target = _load_for(actor, incident_id, "mediate", version)
    if incident.category.kind != "dispute":
        raise Conflict("incident.not_a_dispute", "Only disputes (矛盾纠纷) carry mediation records.")
    return incident, target


def record_mediation(actor: Actor, incident_id: int, data: dict, *, if_match: int | None = None) -> IncidentView:
    """Record or update a dispute's mediation: mode, parties, agreement reached.
    Errors as ``act``, and incident.not_a_dispute (409)."""
    version = data.pop("version", None) or if_match
    incident, target = _dispute(actor, incident_id, version)

    def apply(step: _Step) -> None:
        mediation = db.session.get(Mediation, incident.id)
        if mediation is None:
            mediation = Mediation(incident_id=incident.id)
            db.session.add(mediation)
        for name in ("mode", "parties_count", "agreement_reached", "summary"):
            setattr(mediation, name, data[name] if name in data else getattr(mediation, name))
        step.extra.update({k: data.get(k) for k in ("mode", "parties_count", "agreement_reached")})

    _take(actor, incident, target, "mediate", {"note": data.get("summary")}, apply)
    return _view(actor, incident)


def add_mediation_session(actor: Actor, incident_id: int, data: dict,
                          *, if_match: int | None = None) -> IncidentView:
    """Add a mediation session (date, outcome, note) to a dispute.
    Errors as ``record_mediation``, and incident.no_mediation (409)."""
    version = data.pop("version", None) or if_match
    incident, target = _dispute(actor, incident_id, version)
    if db.session.get(Mediation, incident.id) is None:
        raise Conflict("incident.no_mediation", "Record the mediation (mode, parties) before its sessions.")

    def apply(step: _Step) -> None:
        session = MediationSession(incident_id=incident.id, held_on=data["held_on"], outcome=data["outcome"],
                                   note=data.get("note"), recorded_by=actor.user_id or None)
        db.session.add(session)
        db.session.flush()
        step.extra.update(session_id=session.id, held_on=data["held_on"].isoformat(), outcome=data["outcome"])

    _take(actor, incident, target, "mediate", {"note": data.get("note")}, apply)
    db.session.expire(db.session.get(Mediation, incident.id))
    return _view(actor, incident)

