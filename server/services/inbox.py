"""The phone's inbox (消息): what I was told, read marks, and my quiet hours."""
from __future__ import annotations

from datetime import time

from sqlalchemy import func, select, update

from server.domain.permissions import Actor
from server.errors import NotFound
from server.extensions import db
from server.models import Notification, User
from server.models._base import utcnow

from .pagination import Page, paginate


def list_notifications(actor: Actor, page: int, page_size: int, *, unread: bool | None = None) -> Page:
    """My notifications, newest first; the page also counts my unread ones (``unread``)."""
    stmt = select(Notification).where(Notification.user_id == actor.user_id)
    if unread is True:
        stmt = stmt.where(Notification.read_at.is_(None))
    elif unread is False:
        stmt = stmt.where(Notification.read_at.is_not(None))
    result = paginate(stmt.order_by(Notification.id.desc()), page, page_size)
    result.unread = db.session.scalar(select(func.count()).where(
        Notification.user_id == actor.user_id, Notification.read_at.is_(None)))
    return result


def mark_read(actor: Actor, notification_id: int) -> Notification:
    """Mark one of my notifications read (again: no change). Errors: notification.not_found."""
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != actor.user_id:
        raise NotFound("notification.not_found", "No such notification of yours.")
    if notification.read_at is None:
        notification.read_at = utcnow()
        db.session.commit()
    return notification


def mark_all_read(actor: Actor, up_to_id: int) -> int:
    """Mark my unread notifications up to ``up_to_id`` read (what the phone has shown);
    returns how many."""
    count = db.session.execute(update(Notification).where(
        Notification.user_id == actor.user_id, Notification.read_at.is_(None), Notification.id <= up_to_id,
    ).values(read_at=utcnow())).rowcount
    db.session.commit()
    return count


def quiet_hours(actor: Actor) -> dict:
    user = db.session.get(User, actor.user_id)
    return {"quiet_from": user.quiet_from, "quiet_to": user.quiet_to}


def set_quiet_hours(actor: Actor, quiet_from: time | None, quiet_to: time | None) -> dict:
    """Set (or, both None, clear) my quiet hours: reminders that are not urgent wait till they end."""
    user = db.session.get(User, actor.user_id)
    user.quiet_from, user.quiet_to = quiet_from, quiet_to
    db.session.commit()
    return quiet_hours(actor)
