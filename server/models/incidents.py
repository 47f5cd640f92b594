"""Categories, incidents and everything that hangs off an incident.

Rows that phones sync carry ``sync_xid``: the id of the transaction that last wrote them
(set by a trigger, see migration 0002); ``services.sync`` pages through it.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger, Boolean, CheckConstraint, Date, DateTime, Float, ForeignKey, Index, Integer, SmallInteger, String,
    Text, UniqueConstraint, text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.domain.categories import KINDS
from server.domain.escalation import ACK_STEPS, RUNNING_STATES
from server.domain.incidents import (
    EXTENSION_STATES, MEDIATION_MODES, OPEN_STATES, PHOTO_KINDS, PRIORITIES, SESSION_OUTCOMES, SOURCES, STATES,
    TASK_STATES,
)
from server.domain.people import DEPARTMENT_KINDS
from server.domain.territory import LEVELS
from server.extensions import db

from ._base import XID8, in_list, utcnow
from .people import Department, User
from .territory import Region


def _sync_xid():
    return mapped_column(XID8, server_default=text("pg_current_xact_id()"), nullable=False, deferred=True)


class Category(db.Model):
    """A kind of problem (事件/部件 分类): a group (大类) or a leaf (小类) under one."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    default_priority: Mapped[str] = mapped_column(String(8), server_default="normal")
    start_level: Mapped[str] = mapped_column(String(16), server_default="grid")
    department_kind: Mapped[str | None] = mapped_column(String(32))
    requires_after_photo: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # offered to citizens through Open311
    public: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    keywords: Mapped[list[str]] = mapped_column(ARRAY(String(50)), server_default=text("'{}'"))
    description: Mapped[str | None] = mapped_column(Text)
    # typed extra fields of a report (forms, Open311 service definitions)
    attributes: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    # escalation policy: per-level acknowledge/resolve limits, time basis, yellow share, top level
    policy: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    sort_order: Mapped[int] = mapped_column(Integer, server_default="0")
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    sync_xid = _sync_xid()

    parent: Mapped[Category | None] = relationship(remote_side=[id])

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint(in_list("kind", KINDS), name="kind"),
        CheckConstraint(in_list("default_priority", PRIORITIES), name="default_priority"),
        CheckConstraint(in_list("start_level", LEVELS), name="start_level"),
        CheckConstraint(in_list("department_kind", DEPARTMENT_KINDS), name="department_kind"),
        Index("ix_categories_sync_xid", "sync_xid"),
    )

    @property
    def is_leaf(self) -> bool:
        return self.parent_id is not None

    @property
    def is_retired(self) -> bool:
        return self.retired_at is not None


class Incident(db.Model):
    """A problem reported in a grid cell (事件/案件), moving through the closed loop."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # the phone's own id for the report: a retry with it never makes a second incident
    client_uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    status: Mapped[str] = mapped_column(String(16))
    # the level handling the case now, and the level it was resolved at (就地化解率)
    level: Mapped[str] = mapped_column(String(16))
    resolved_level: Mapped[str | None] = mapped_column(String(16))
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))  # the grid cell
    region_path: Mapped[str] = mapped_column(String(512))  # the cell's path, for subtree scope
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    address: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    attributes: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # given only for hotline/citizen reports; masked in lists and exports
    contact_name: Mapped[str | None] = mapped_column(String(100))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # resolve deadline of the current level (natural time here; the escalation engine owns it)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_on_spot: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    rework_count: Mapped[int] = mapped_column(Integer, server_default="0")
    extension_count: Mapped[int] = mapped_column(Integer, server_default="0")
    reopen_count: Mapped[int] = mapped_column(Integer, server_default="0")
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    # while suspended: the status to resume to, and since when (timers paused)
    suspended_from: Mapped[str | None] = mapped_column(String(16))
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the stage at the current level (docs/ESCALATION.md): numbered, with its start, yellow
    # instant and the policy's top level; a reminder and supervision (督办) happen once a stage
    stage_no: Mapped[int] = mapped_column(Integer, server_default="1")
    stage_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    yellow_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    top_level: Mapped[str | None] = mapped_column(String(16))
    reminded_stage: Mapped[int] = mapped_column(Integer, server_default="0")
    supervised_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalation_count: Mapped[int] = mapped_column(Integer, server_default="0")
    # while suspended: what the stage had left, in minutes of its time basis
    paused_yellow_minutes: Mapped[float | None] = mapped_column(Float)
    paused_due_minutes: Mapped[float | None] = mapped_column(Float)
    # reported as a finding of an inspection campaign's task (排查, docs/FIELD.md)
    campaign_task_id: Mapped[int | None] = mapped_column(ForeignKey("campaign_tasks.id"))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    sync_xid = _sync_xid()

    category: Mapped[Category] = relationship(lazy="joined", innerjoin=True)
    region: Mapped[Region] = relationship(lazy="joined", innerjoin=True)
    reporter: Mapped[User | None] = relationship(lazy="joined")

    # eager_defaults: an INSERT returns the server defaults (counters, attributes) instead of
    # leaving them to be loaded by another query when first read
    __mapper_args__ = {"version_id_col": version, "eager_defaults": True}
    __table_args__ = (
        CheckConstraint(in_list("status", STATES), name="status"),
        CheckConstraint(in_list("level", LEVELS), name="level"),
        CheckConstraint(in_list("resolved_level", LEVELS), name="resolved_level"),
        CheckConstraint(in_list("top_level", LEVELS), name="top_level"),
        CheckConstraint(in_list("priority", PRIORITIES), name="priority"),
        CheckConstraint(in_list("source", SOURCES), name="source"),
        CheckConstraint("satisfaction BETWEEN 1 AND 5", name="satisfaction"),
        CheckConstraint("char_length(description) <= 4000", name="description_length"),
        Index("ix_incidents_region_path", "region_path", postgresql_ops={"region_path": "text_pattern_ops"}),
        Index("ix_incidents_geom", "geom", postgresql_using="gist"),
        Index("ix_incidents_status", "status"),
        Index("ix_incidents_category_status", "category_id", "status"),
        Index("ix_incidents_reported_at", "reported_at"),
        Index("ix_incidents_reporter", "reporter_id"),
        Index("ix_incidents_sync_xid", "sync_xid"),
        Index("ix_incidents_merged_into", "merged_into_id", postgresql_where=text("merged_into_id IS NOT NULL")),
        # the cases under supervision by place (the street office's list of 督办 cases)
        Index("ix_incidents_supervised_path", "region_path", postgresql_ops={"region_path": "text_pattern_ops"},
              postgresql_where=text("supervised_at IS NOT NULL")),
        Index("ix_incidents_campaign_task", "campaign_task_id", postgresql_where=text("campaign_task_id IS NOT NULL")),
        # the escalation sweep's two questions: which running cases are overdue, which
        # passed their yellow instant without a reminder in this stage
        Index("ix_incidents_sweep_due", "due_at", postgresql_where=text(in_list("status", sorted(RUNNING_STATES)))),
        Index("ix_incidents_sweep_yellow", "yellow_at", postgresql_where=text(
            f"{in_list('status', sorted(RUNNING_STATES))} AND reminded_stage < stage_no")),
        # the map's open cases of a set of cells, with what their counts, points, lights, the
        # filters and the scope need, read from the index alone
        Index("ix_incidents_open_cell", "region_id", postgresql_where=text(in_list("status", sorted(OPEN_STATES))),
              postgresql_include=["status", "yellow_at", "due_at", "category_id", "reported_at", "region_path",
                                  "id", "geom", "priority", "level"]),
    )

    @property
    def scope_path(self) -> str:
        return self.region_path


class IncidentEvent(db.Model):
    """One line of an incident's timeline: append-only, one per action."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    from_level: Mapped[str | None] = mapped_column(String(16))
    to_level: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))

    actor: Mapped[User | None] = relationship(lazy="joined")

    __table_args__ = (
        Index("ix_incident_events_incident", "incident_id", "id"),
        # evaluation (docs/STATS.md): the cases something happened to in a period
        Index("ix_incident_events_at", "at"),
    )


class IncidentMilestones(db.Model):
    """A case's milestones as its timeline says them (docs/STATS.md, "Milestones"): one row
    per incident, written by triggers in the transaction that writes the incident or an event
    (migrations 0011, 0012), never by the application. An event added moves the row forward; an
    event corrected or removed, or the case moved to another cell, makes the row again from
    the whole timeline (``incident_milestones_refresh``)."""

    __tablename__ = "incident_milestones"

    incident_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("incidents.id", ondelete="CASCADE"),
                                             primary_key=True)
    region_path: Mapped[str] = mapped_column(String(512))  # the incident's, kept with it
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # the report or the latest event
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the first 立案
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the first 派遣
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the last 处置反馈
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the last 核查结案
    reworks: Mapped[int] = mapped_column(Integer, server_default="0")
    extensions: Mapped[int] = mapped_column(Integer, server_default="0")  # approved
    escalations: Mapped[int] = mapped_column(Integer, server_default="0")
    overdue_escalations: Mapped[int] = mapped_column(Integer, server_default="0")  # by the sweep (no actor)
    handled_levels: Mapped[list[str]] = mapped_column(ARRAY(String(16)), server_default=text("'{}'"))
    escalated_from: Mapped[list[str]] = mapped_column(ARRAY(String(16)), server_default=text("'{}'"))
    # the incident's now, copied by the trigger on its update (migration 0012)
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_level: Mapped[str | None] = mapped_column(String(16))
    category_id: Mapped[int] = mapped_column(Integer)
    callback_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the last 回访 with a score
    satisfaction: Mapped[int | None] = mapped_column(SmallInteger)  # its score (1–5)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the first 签收

    __table_args__ = (
        # a region's cases alive in a period: path prefix, then the latest activity
        Index("ix_incident_milestones_region", "region_path", "last_at",
              postgresql_ops={"region_path": "text_pattern_ops"}),
    )


class Task(db.Model):
    """A dispatch (派遣) of an incident to a grid worker or a department."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    level: Mapped[str] = mapped_column(String(16))  # the incident's level when dispatched
    instructions: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ack_deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # how many of the unacknowledged-task steps (re-push, backup, supervisors) were taken
    ack_steps: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    sync_xid = _sync_xid()

    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="joined")
    department: Mapped[Department | None] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint(in_list("status", TASK_STATES), name="status"),
        CheckConstraint("(assignee_id IS NULL) <> (department_id IS NULL)", name="one_assignee"),
        CheckConstraint(f"ack_steps BETWEEN 0 AND {len(ACK_STEPS)}", name="ack_steps"),
        # at most one task out at a time: two dispatches racing cannot both win
        Index("uq_tasks_active", "incident_id", unique=True,
              postgresql_where=text("status IN ('open', 'acknowledged')")),
        Index("ix_tasks_incident", "incident_id"),
        Index("ix_tasks_assignee_active", "assignee_id", postgresql_where=text("status IN ('open', 'acknowledged')")),
        Index("ix_tasks_department_active", "department_id",
              postgresql_where=text("status IN ('open', 'acknowledged')")),
        Index("ix_tasks_sync_xid", "sync_xid"),
        Index("ix_tasks_ack_due", "ack_deadline", postgresql_where=text("status = 'open'")),
    )


class IncidentPhoto(db.Model):
    """A photo of an incident; the bytes live in the blob store under its SHA-256."""

    __tablename__ = "incident_photos"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    kind: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # what the photo's EXIF says, shown beside the incident's own place and time
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    exif_lon: Mapped[float | None] = mapped_column(Float)
    exif_lat: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    delay_seconds: Mapped[int | None] = mapped_column(Integer)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        CheckConstraint(in_list("kind", PHOTO_KINDS), name="kind"),
        # an upload retried is the same photo
        UniqueConstraint("incident_id", "kind", "sha256", name="uq_incident_photos_incident_kind_sha256"),
    )


class IncidentFollower(db.Model):
    """Someone who hears of an incident's progress: its reporter, and reporters of duplicates."""

    __tablename__ = "incident_followers"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IdempotencyKey(db.Model):
    """The first answer to a report, kept under the client's key for replays."""

    __tablename__ = "idempotency_keys"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    response: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    __table_args__ = (Index("ix_idempotency_keys_incident", "incident_id"),)


class Extension(db.Model):
    """A handler's request for more time (延期), decided by a supervisor."""

    __tablename__ = "incident_extensions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(in_list("status", EXTENSION_STATES), name="status"),
        Index("uq_incident_extensions_pending", "incident_id", unique=True,
              postgresql_where=text("status = 'pending'")),
    )


class Mediation(db.Model):
    """The mediation record of a dispute (矛盾纠纷调解)."""

    __tablename__ = "mediations"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    parties_count: Mapped[int] = mapped_column(Integer)
    agreement_reached: Mapped[bool | None] = mapped_column(Boolean)
    summary: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    sessions: Mapped[list[MediationSession]] = relationship(order_by="MediationSession.held_on, MediationSession.id",
                                                            lazy="selectin")

    __table_args__ = (
        CheckConstraint(in_list("mode", MEDIATION_MODES), name="mode"),
        CheckConstraint("parties_count >= 2", name="parties_count"),
    )


class MediationSession(db.Model):
    """One mediation meeting: when, and how it ended."""

    __tablename__ = "mediation_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("mediations.incident_id"), index=True)
    held_on: Mapped[date] = mapped_column(Date)
    outcome: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (CheckConstraint(in_list("outcome", SESSION_OUTCOMES), name="outcome"),)
