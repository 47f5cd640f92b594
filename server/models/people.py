from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import BigInteger, Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Time, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.domain.people import DEPARTMENT_KINDS, DEVICE_PLATFORMS, DEVICE_TOKEN_KINDS, DUTIES, ROLES
from server.extensions import db

from ._base import in_list, utcnow
from .territory import Region


class Department(db.Model):
    """A functional department (职能部门) belonging to a region: police station, 城管…"""

    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)
    # what it does (police, urban management…): categories name the kind that takes them
    kind: Mapped[str | None] = mapped_column(String(32))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    region: Mapped[Region] = relationship(lazy="joined", innerjoin=True)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (CheckConstraint(in_list("kind", DEPARTMENT_KINDS), name="kind"),)

    @property
    def scope_path(self) -> str:
        return self.region.path


class User(db.Model):
    """A person who signs in: one role, one scope region."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # quiet hours (local time, may cross midnight): reminders that are not urgent wait
    quiet_from: Mapped[time | None] = mapped_column(Time)
    quiet_to: Mapped[time | None] = mapped_column(Time)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    region: Mapped[Region] = relationship(lazy="joined", innerjoin=True)
    department: Mapped[Department | None] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint(in_list("role", ROLES), name="role"),
        CheckConstraint("(role = 'department') = (department_id IS NOT NULL)", name="department_role"),
        Index("uq_users_username_lower", text("lower(username)"), unique=True),
    )

    @property
    def scope_path(self) -> str:
        return self.region.path


class GridAssignment(db.Model):
    """A grid worker covering a grid cell, as primary (A岗) or backup (B岗)."""

    __tablename__ = "grid_assignments"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), primary_key=True, index=True)
    duty: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    region: Mapped[Region] = relationship(lazy="joined", innerjoin=True)

    __table_args__ = (
        CheckConstraint(in_list("duty", DUTIES), name="duty"),
        # one primary worker per cell; any number of backups
        Index("uq_grid_assignments_primary", "region_id", unique=True, postgresql_where=text("duty = 'primary'")),
    )


class WorkerDuty(db.Model):
    """A grid worker's last word on duty (上岗 / 离岗); no row: on duty."""

    __tablename__ = "worker_duty"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    on_duty: Mapped[bool] = mapped_column(Boolean)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Leave(db.Model):
    """Leave (请假) recorded by a supervisor: the worker is given no new work in it."""

    __tablename__ = "leaves"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancelled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="period"),
        Index("ix_leaves_user_period", "user_id", "ends_at", postgresql_where=text("cancelled_at IS NULL")),
    )


class Device(db.Model):
    """A phone's push address (FCM registration token or Firebase installation id)."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token: Mapped[str] = mapped_column(String(4096), unique=True)
    token_kind: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str] = mapped_column(String(16))
    app_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # set when FCM answers UNREGISTERED/INVALID_ARGUMENT: the device gets no more pushes
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disabled_reason: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        CheckConstraint(in_list("platform", DEVICE_PLATFORMS), name="platform"),
        CheckConstraint(in_list("token_kind", DEVICE_TOKEN_KINDS), name="token_kind"),
    )
