"""Escalation settings and notifications: policy overrides per region, calendar days set
by admins, the inbox, the push outbox and every delivery attempt (docs/ESCALATION.md)."""
from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.domain.notifications import KINDS, OUTBOX_STATES
from server.domain.territory import LEVELS
from server.extensions import db

from ._base import in_list, utcnow
from .incidents import Category
from .territory import Region


class EscalationOverride(db.Model):
    """A region's change to the escalation policy, for one category or (category None) all."""

    __tablename__ = "escalation_overrides"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    policy: Mapped[dict] = mapped_column(JSONB)  # a partial policy, as a category's
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    region: Mapped[Region] = relationship(lazy="joined", innerjoin=True)
    category: Mapped[Category | None] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        Index("uq_escalation_overrides_region_category", "region_id", text("coalesce(category_id, 0)"), unique=True),
    )


class CalendarDay(db.Model):
    """An admin's word on one day: a work day or not (holidays, make-up days, local closures)."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    name: Mapped[str | None] = mapped_column(String(100))
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Notification(db.Model):
    """One thing one person is told (the phone's inbox); pushed through ``OutboxMessage`` rows."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(32))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    level: Mapped[str | None] = mapped_column(String(16))
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    title: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    body_en: Mapped[str | None] = mapped_column(Text)
    urgent: Mapped[bool] = mapped_column(Boolean)
    # what caused it (e.g. "incident:7:stage:2:escalated_in"): the same cause never tells a person twice
    cause: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(in_list("kind", KINDS), name="kind"),
        CheckConstraint(in_list("level", LEVELS), name="level"),
        Index("uq_notifications_user_cause", "user_id", "cause", unique=True),
        Index("ix_notifications_user_created", "user_id", "id"),
        Index("ix_notifications_incident", "incident_id", postgresql_where=text("incident_id IS NOT NULL")),
        Index("ix_notifications_task", "task_id", postgresql_where=text("task_id IS NOT NULL")),
    )


class OutboxMessage(db.Model):
    """One push of one notification to one device, sent by the worker's dispatcher."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    # the FCM message's data.message_id: a phone drops a second copy of the same id
    message_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True, default=uuid.uuid4)
    payload: Mapped[dict] = mapped_column(JSONB)  # the data payload (strings only, as FCM requires)
    high_priority: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)  # quiet hours
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # TTL: the deadline
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    fcm_name: Mapped[str | None] = mapped_column(String(300))  # projects/…/messages/…, FCM's receipt
    last_error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        CheckConstraint(in_list("status", OUTBOX_STATES), name="status"),
        Index("ix_outbox_due", "next_attempt_at", postgresql_where=text("status = 'pending'")),
        Index("ix_outbox_leased", "lease_until", postgresql_where=text("status = 'sending'")),
        Index("ix_outbox_notification", "notification_id"),
        Index("ix_outbox_device", "device_id"),
    )


class OutboxAttempt(db.Model):
    """One try at sending one outbox message, whatever came of it."""

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))  # sent, retry, failed, dead
    http_status: Mapped[int | None] = mapped_column(SmallInteger)
    error_code: Mapped[str | None] = mapped_column(String(64))  # FCM's: UNREGISTERED, QUOTA_EXCEEDED, …
    detail: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_outbox_attempts_outbox", "outbox_id"),)


class HotspotAlert(db.Model):
    """An early warning (预警) raised for a cell turning hot for a category group: once per
    cell and group within a window, so a place that stays hot is not announced again and again."""

    __tablename__ = "hotspot_alerts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))  # the cell
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))  # the category group
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reports: Mapped[int] = mapped_column(Integer)
    baseline_mean: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (Index("ix_hotspot_alerts_place", "region_id", "category_id", "window_end"),)
