"""Telling people (消息通知): inbox rows and their pushes, written in the caller's transaction.

A use case that changes an incident calls ``notify`` (one message) or ``tell`` (many, as
the sweep does for a batch) before it commits: the inbox rows (``notifications``) and one
outbox row per live device of each person are committed with the change or not at all
(the outbox pattern; the worker's dispatcher sends them, to a registration token or a
Firebase installation id as the device registered). The same ``cause`` never tells a
person twice (a unique index), so a repeated sweep or a retried request adds nothing.
``tell`` costs four statements whatever the number of messages (``setwise``).
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from server.domain.incidents import supervising_level
from server.domain.notifications import KIND_LABELS, URGENT_KINDS, quiet_until
from server.domain.territory import LEVEL_LABELS, ancestor_ids, level_rank
from server.extensions import db
from server.models import Device, Incident, Notification, OutboxMessage, Task, User

from .setwise import insert_rows

# A push whose deadline is past or unknown lives this long; one never lives shorter than MIN_TTL.
DEFAULT_TTL = timedelta(hours=24)
MIN_TTL = timedelta(minutes=5)


@dataclass(frozen=True)
class Subject:
    """What a message says of its incident: number, category (zh/en) and address; of what
    is no one incident (a hotspot), no number: ``id`` None."""

    id: int | None
    category: str
    category_en: str
    address: str | None = None

    @classmethod
    def of(cls, incident: Incident) -> Subject:
        return cls(incident.id, incident.category.name, incident.category.name_en, incident.address)


@dataclass(frozen=True)
class Tell:
    """One message of ``kind`` about ``subject`` to ``user_ids``, once per person and ``cause``."""

    user_ids: tuple[int, ...]
    kind: str
    subject: Subject
    cause: str
    task_id: int | None = None
    level: str | None = None
    deadline: datetime | None = None
    # more string fields of the push's data payload (what a message of no incident points at)
    payload: tuple[tuple[str, str], ...] = ()


def supervising_region(region_path: str, level: str) -> tuple[int, str]:
    """(region id, role) of the managers who supervise a case at ``level`` in the cell at
    ``region_path``: the region at the supervising level on its path (grid → its community)."""
    role = supervising_level(level)
    return ancestor_ids(region_path)[level_rank(role)], role


def supervisors(places: Iterable[tuple[int, str]]) -> dict[tuple[int, str], list[int]]:
    """The active managers of each (region id, role) in ``places``, in one query."""
    places = set(places)
    found: dict[tuple[int, str], list[int]] = {place: [] for place in places}
    if not places:
        return found
    rows = db.session.execute(select(User.id, User.region_id, User.role).where(
        User.region_id.in_({region for region, _ in places}), User.role.in_({role for _, role in places}),
        User.is_active).order_by(User.id))
    for row in rows:
        if (row.region_id, row.role) in found:
            found[(row.region_id, row.role)].append(row.id)
    return found


def level_supervisors(incident: Incident, level: str) -> list[int]:
    """The active managers who supervise the case when it is handled at ``level``."""
    place = supervising_region(incident.region_path, level)
    return supervisors([place])[place]


def department_handlers(department_ids: Iterable[int]) -> dict[int, list[int]]:
    """The active handlers of each department, in one query."""
    found: dict[int, list[int]] = {department: [] for department in set(department_ids)}
    if found:
        for row in db.session.execute(select(User.id, User.department_id).where(
                User.role == "department", User.department_id.in_(found), User.is_active).order_by(User.id)):
            found[row.department_id].append(row.id)
    return found


def task_recipients(task: Task) -> list[int]:
    """Who is told of a task: its grid worker, or the active handlers of its department."""
    if task.assignee_id is not None:
        return [task.assignee_id]
    return department_handlers([task.department_id])[task.department_id]


def level_change(subject: Subject, stage_no: int, level: str, deadline: datetime | None, *, taking: Iterable[int],
                 left: Iterable[int], told_in: str, told_out: str | None = None,
                 actor_id: int | None = None) -> list[Tell]:
    """The messages of a case moving to ``level`` (stage ``stage_no``, due at ``deadline``):
    ``told_in`` to those ``taking`` it; with ``told_out``, to those it ``left`` (the level
    left, the handler whose task ended) who do not take it. Never to the actor."""
    cause = f"incident:{subject.id}:stage:{stage_no}"
    taking = [u for u in taking if u != actor_id]
    tells = [Tell(tuple(taking), told_in, subject, f"{cause}:in", level=level, deadline=deadline)]
    if told_out:
        out = set(left) - set(taking) - {actor_id}
        tells.append(Tell(tuple(sorted(out)), told_out, subject, f"{cause}:out", level=level))
    return tells


def _texts(tell: Tell) -> tuple[str, str, str, str]:
    zh, en = KIND_LABELS[tell.kind]
    subject = tell.subject
    where = f" · {subject.address}" if subject.address else ""
    number = "" if subject.id is None else f"#{subject.id} "
    body, body_en = f"{number}{subject.category}{where}", f"{number}{subject.category_en}{where}"
    if tell.level is not None:
        level_zh, level_en = LEVEL_LABELS[tell.level]
        body, body_en = f"{body}（{level_zh}）", f"{body_en} ({level_en})"
    return zh, en, body, body_en


def notify(user_ids: Iterable[int], kind: str, incident: Incident, *, now: datetime, cause: str,
           task: Task | None = None, level: str | None = None, deadline: datetime | None = None) -> int:
    """Tell each of ``user_ids`` (once per ``cause``) and queue a push to each of their live
    phones. Returns how many people were told now (not before)."""
    return tell([Tell(tuple(user_ids), kind, Subject.of(incident), cause, task.id if task else None, level,
                      deadline)], now)


def tell(tells: Iterable[Tell], now: datetime) -> int:
    """Write the inbox rows of ``tells`` (skipping a person already told of a cause) and
    queue a push to every live phone of each person told now; how many inbox rows were
    written."""
    by_key: dict[tuple[int, str], Tell] = {}
    for message in tells:
        for user_id in message.user_ids:
            by_key.setdefault((user_id, message.cause), message)
    if not by_key:
        return 0
    rows = []
    for (user_id, cause), message in sorted(by_key.items(), key=lambda item: item[0]):
        title, title_en, body, body_en = _texts(message)
        rows.append({
            "user_id": user_id, "kind": message.kind, "incident_id": message.subject.id, "task_id": message.task_id,
            "level": message.level, "deadline": message.deadline, "title": title, "title_en": title_en,
            "body": body, "body_en": body_en, "urgent": message.kind in URGENT_KINDS, "cause": cause,
            "created_at": now})
    written = db.session.execute(insert_rows(Notification.__table__, rows).on_conflict_do_nothing(
        index_elements=["user_id", "cause"]).returning(Notification.id, Notification.user_id, Notification.cause)).all()
    if not written:
        return 0
    told = {(row.user_id, row.cause): row.id for row in written}
    people = {user_id for user_id, _ in told}
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    quiet = {}
    if any(message.kind not in URGENT_KINDS for key, message in by_key.items() if key in told):
        quiet = {u.id: quiet_until(now, zone, u.quiet_from, u.quiet_to) for u in db.session.execute(
            select(User.id, User.quiet_from, User.quiet_to).where(User.id.in_(people), User.quiet_from.is_not(None)))}
    phones: dict[int, list[int]] = {}
    for device in db.session.execute(select(Device.id, Device.user_id).where(
            Device.user_id.in_(people), Device.disabled_at.is_(None)).order_by(Device.id)):
        phones.setdefault(device.user_id, []).append(device.id)
    outbox = []
    for (user_id, cause), notification_id in told.items():
        message = by_key[(user_id, cause)]
        outbox += _pushes(message, notification_id, phones.get(user_id, ()), now,
                          None if message.kind in URGENT_KINDS else quiet.get(user_id))
    if outbox:
        db.session.execute(insert_rows(OutboxMessage.__table__, outbox))
    return len(told)


def _pushes(message: Tell, notification_id: int, devices: Iterable[int], now: datetime,
            quiet_end: datetime | None) -> list[dict]:
    """The outbox rows of one inbox row: one per phone, held back until ``quiet_end`` if
    given, living until the deadline (at least ``MIN_TTL``) or ``DEFAULT_TTL``."""
    deadline = message.deadline
    expires = deadline if deadline is not None and deadline - now >= MIN_TTL else now + DEFAULT_TTL
    not_before = quiet_end or now
    if not_before >= expires:
        return []  # it would expire before the quiet hours end: the inbox has it
    title, title_en = KIND_LABELS[message.kind]
    rows = []
    for device_id in devices:
        message_id = uuid.uuid4()
        rows.append({
            "notification_id": notification_id, "device_id": device_id, "message_id": message_id,
            "high_priority": message.kind in URGENT_KINDS,
            "created_at": now, "not_before": not_before, "next_attempt_at": not_before, "expires_at": expires,
            "payload": {
                "type": message.kind, "message_id": str(message_id), "notification_id": str(notification_id),
                "incident_id": str(message.subject.id or ""), "task_id": str(message.task_id or ""),
                "level": message.level or "", "deadline": deadline.isoformat() if deadline else "",
                "title": title, "title_en": title_en, **dict(message.payload),
            },
        })
    return rows
