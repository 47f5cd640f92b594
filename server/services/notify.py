"""Telling people (消息通知): inbox rows and their pushes, written in the caller's transaction.

A use case that changes an incident calls ``notify`` before it commits: the inbox rows
(``notifications``) and one outbox row per live device of each person are committed with
the change or not at all (the outbox pattern; the worker's dispatcher sends them, to a registration token or a
Firebase installation id as the device registered). The
same ``cause`` never tells a person twice (a unique index), so a repeated sweep or a
retried request adds nothing.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from server.domain.incidents import supervising_level
from server.domain.notifications import KIND_LABELS, URGENT_KINDS, quiet_until
from server.domain.territory import LEVEL_LABELS, ancestor_ids, level_rank
from server.extensions import db
from server.models import Device, Incident, Notification, OutboxMessage, Task, User

# A push whose deadline is past or unknown lives this long; one never lives shorter than MIN_TTL.
DEFAULT_TTL = timedelta(hours=24)
MIN_TTL = timedelta(minutes=5)


def level_supervisors(incident: Incident, level: str) -> list[int]:
    """The active managers who supervise the case when it is handled at ``level``: those of
    the region at the supervising level on the case's path (grid → its community)."""
    role = supervising_level(level)
    region_id = ancestor_ids(incident.region_path)[level_rank(role)]
    return list(db.session.scalars(select(User.id).where(
        User.role == role, User.region_id == region_id, User.is_active)))


def task_recipients(task: Task) -> list[int]:
    """Who is told of a task: its grid worker, or the active handlers of its department."""
    if task.assignee_id is not None:
        return [task.assignee_id]
    return list(db.session.scalars(select(User.id).where(
        User.role == "department", User.department_id == task.department_id, User.is_active)))


def _texts(kind: str, incident: Incident, level: str | None) -> tuple[str, str, str, str]:
    zh, en = KIND_LABELS[kind]
    category = incident.category
    where = incident.address or ""
    body = f"#{incident.id} {category.name}{' · ' + where if where else ''}"
    body_en = f"#{incident.id} {category.name_en}{' · ' + where if where else ''}"
    if level is not None:
        level_zh, level_en = LEVEL_LABELS[level]
        body, body_en = f"{body}（{level_zh}）", f"{body_en} ({level_en})"
    return zh, en, body, body_en


def notify(user_ids: Iterable[int], kind: str, incident: Incident, *, now: datetime, cause: str,
           task: Task | None = None, level: str | None = None, deadline: datetime | None = None) -> int:
    """Tell each of ``user_ids`` (once per ``cause``) and queue a push to each of their live
    phones. Returns how many people were told now (not before)."""
    users = sorted(set(user_ids))
    if not users:
        return 0
    title, title_en, body, body_en = _texts(kind, incident, level)
    urgent = kind in URGENT_KINDS
    rows = db.session.execute(insert(Notification).values([{
        "user_id": user_id, "kind": kind, "incident_id": incident.id, "task_id": task.id if task else None,
        "level": level, "deadline": deadline, "title": title, "title_en": title_en, "body": body,
        "body_en": body_en, "urgent": urgent, "cause": cause, "created_at": now,
    } for user_id in users]).on_conflict_do_nothing(index_elements=["user_id", "cause"]).returning(
        Notification.id, Notification.user_id)).all()
    if not rows:
        return 0
    told = {row.user_id: row.id for row in rows}
    expires = deadline if deadline is not None and deadline - now >= MIN_TTL else now + DEFAULT_TTL
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    quiet = {} if urgent else {
        u.id: quiet_until(now, zone, u.quiet_from, u.quiet_to)
        for u in db.session.execute(select(User.id, User.quiet_from, User.quiet_to).where(User.id.in_(told)))}
    devices = db.session.execute(select(Device.id, Device.user_id).where(
        Device.user_id.in_(told), Device.disabled_at.is_(None))).all()
    outbox = []
    for device in devices:
        not_before = quiet.get(device.user_id) or now
        if not_before >= expires:
            continue  # it would expire before the quiet hours end: the inbox has it
        message_id = uuid.uuid4()
        outbox.append({
            "notification_id": told[device.user_id], "device_id": device.id, "message_id": message_id,
            "high_priority": urgent,
            "created_at": now, "not_before": not_before, "next_attempt_at": not_before, "expires_at": expires,
            "payload": {
                "type": kind, "message_id": str(message_id), "notification_id": str(told[device.user_id]),
                "incident_id": str(incident.id),
                "task_id": str(task.id) if task else "", "level": level or "",
                "deadline": deadline.isoformat() if deadline else "", "title": title, "title_en": title_en,
            },
        })
    if outbox:
        db.session.execute(insert(OutboxMessage), outbox)
    return len(told)
