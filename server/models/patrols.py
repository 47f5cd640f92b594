"""Patrols (巡查, docs/FIELD.md): a grid worker's shift and its GPS points."""
from __future__ import annotations

import uuid
from datetime import date, datetime

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, CheckConstraint, Date, DateTime, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from server.domain.patrols import STATES
from server.extensions import db

from ._base import in_list, utcnow


class Patrol(db.Model):
    """One shift of one grid worker; its track is made from the points kept."""

    __tablename__ = "patrols"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    client_uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)  # starting twice: one patrol
    region_path: Mapped[str] = mapped_column(String(512))  # the worker's area when it started: who may read it
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    track = mapped_column(Geometry("MULTILINESTRING", srid=4326, spatial_index=False), nullable=True)
    distance_m: Mapped[float] = mapped_column(Float, server_default="0")
    points_kept: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # points and track deleted

    __table_args__ = (
        CheckConstraint(in_list("state", STATES), name="state"),
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="period"),
        Index("ix_patrols_user_started", "user_id", "started_at"),
        Index("ix_patrols_to_purge", "ended_at", postgresql_where=text("purged_at IS NULL")),
        # the patrols that may hold points of a day (coverage, missed reports): ended since, or still on
        Index("ix_patrols_ended_at", "ended_at"),
        Index("ix_patrols_on_started", "started_at", postgresql_where=text("ended_at IS NULL")),
    )

    @property
    def scope_path(self) -> str:
        return self.region_path


class PatrolPoint(db.Model):
    """A GPS point of a patrol, one per 5-second slot of the phone's time; ``reason`` says
    why it is not kept (None: kept)."""

    __tablename__ = "patrol_points"

    patrol_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("patrols.id", ondelete="CASCADE"),
                                           primary_key=True)
    slot: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    t: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(String(16))


class PatrolPlace(db.Model):
    """A place to check in at on patrol (打卡点: a school gate, a market, a river bank): a point
    and a radius, in a region; set by its supervisors."""

    __tablename__ = "patrol_places"

    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    region_path: Mapped[str] = mapped_column(String(512))
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str | None] = mapped_column(String(100))
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=False)
    radius_m: Mapped[float] = mapped_column(Float)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("radius_m > 0 AND radius_m <= 1000", name="radius"),
        Index("ix_patrol_places_region", "region_id"),
    )

    @property
    def scope_path(self) -> str:
        return self.region_path


class PatrolCheckin(db.Model):
    """A check-in (打卡) at a place during a patrol: the phone's position, kept until the
    retention period ends (then only the time and the distance stay)."""

    __tablename__ = "patrol_checkins"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    patrol_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("patrols.id", ondelete="CASCADE"))
    place_id: Mapped[int] = mapped_column(ForeignKey("patrol_places.id"))
    client_uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)  # a retry: the same check-in
    t: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=True)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        Index("ix_patrol_checkins_patrol", "patrol_id"),
        Index("ix_patrol_checkins_place_t", "place_id", "t"),
    )


class PatrolCoverage(db.Model):
    """A grid cell's patrol coverage on a local day (docs/FIELD.md "Coverage"): the share of its
    area within 30 m of the day's kept tracks, the minutes spent and metres walked in it, and
    the workers and patrols that walked in it. Only cells walked near have a row."""

    __tablename__ = "patrol_coverage"

    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    share: Mapped[float] = mapped_column(Float)
    minutes: Mapped[float] = mapped_column(Float)
    metres: Mapped[float] = mapped_column(Float)
    workers: Mapped[int] = mapped_column(Integer)
    patrols: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("share >= 0 AND share <= 1", name="share"),)


class PatrolCoverageMark(db.Model):
    """A local day on which a patrol's points changed (a batch stored, a point judged again)
    since the day's coverage was last computed: the worker computes the day again."""

    __tablename__ = "patrol_coverage_marks"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    patrol_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("patrols.id", ondelete="CASCADE"),
                                           primary_key=True)
    # bumped by each batch that marks it again: a computation deletes only the marks it read unchanged
    version: Mapped[int] = mapped_column(BigInteger, server_default="1")
