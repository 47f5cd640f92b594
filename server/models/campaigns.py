"""Inspection campaigns (排查) and their tasks, one per grid cell (docs/FIELD.md)."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, SmallInteger, String, Text, UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.domain.campaigns import CAMPAIGN_STATES, ESCALATION_LEVELS, TASK_STATES
from server.extensions import db

from ._base import in_list, utcnow
from .people import User
from .territory import Region


class Campaign(db.Model):
    """A sweep of a region for problems of some category groups, by a deadline."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    # the launcher's id for it: launching twice is one campaign
    client_uuid: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    region_path: Mapped[str] = mapped_column(String(512))  # the region's, for scope
    title: Mapped[str] = mapped_column(String(200))
    # the category groups (大类) it looks for: findings must be leaves of these
    category_group_ids: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), server_default="open")
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    region: Mapped[Region] = relationship(lazy="joined", innerjoin=True)
    creator: Mapped[User] = relationship(foreign_keys=[created_by], lazy="joined", innerjoin=True)

    __table_args__ = (
        CheckConstraint(in_list("state", CAMPAIGN_STATES), name="state"),
        CheckConstraint("cardinality(category_group_ids) > 0", name="category_groups"),
        Index("ix_campaigns_region_path", "region_path", postgresql_ops={"region_path": "text_pattern_ops"}),
    )

    @property
    def scope_path(self) -> str:
        return self.region_path


class CampaignTask(db.Model):
    """One grid cell's part of a campaign: inspected by its worker, answered with findings
    or nothing found (零报告), or overdue."""

    __tablename__ = "campaign_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    cell_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    cell_path: Mapped[str] = mapped_column(String(512))  # the cell's, for scope
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: nobody covered the cell
    state: Mapped[str] = mapped_column(String(16), server_default="open")
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # found or nothing found
    finished_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    late: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))  # finished after the deadline
    note: Mapped[str | None] = mapped_column(Text)
    # the nothing-found photo, in the blob store under its SHA-256 (as incident photos)
    photo_sha256: Mapped[str | None] = mapped_column(String(64))
    photo_content_type: Mapped[str | None] = mapped_column(String(32))
    photo_size_bytes: Mapped[int | None] = mapped_column(Integer)
    photo_taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # EXIF, not trusted
    # overdue escalation: the stage told last (0 none, 1 community, 2 street, 3 district) and
    # when the next is due (None when none is: finished, cancelled, or past the last stage)
    overdue_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalation_stage: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    next_escalation_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    campaign: Mapped[Campaign] = relationship(lazy="joined", innerjoin=True)
    cell: Mapped[Region] = relationship(lazy="joined", innerjoin=True)
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="joined")

    __table_args__ = (
        CheckConstraint(in_list("state", TASK_STATES), name="state"),
        CheckConstraint(f"escalation_stage BETWEEN 0 AND {len(ESCALATION_LEVELS)}", name="escalation_stage"),
        CheckConstraint("(state = 'nothing_found') <= (photo_sha256 IS NOT NULL)", name="nothing_found_photo"),
        UniqueConstraint("campaign_id", "cell_id", name="uq_campaign_tasks_campaign_cell"),
        Index("ix_campaign_tasks_campaign_state", "campaign_id", "state"),
        Index("ix_campaign_tasks_cell_path", "cell_path", postgresql_ops={"cell_path": "text_pattern_ops"}),
        Index("ix_campaign_tasks_assignee_to_do", "assignee_id",
              postgresql_where=text("state IN ('open', 'overdue')")),
        # the sweep's question: which tasks owe an escalation stage now
        Index("ix_campaign_tasks_escalation_due", "next_escalation_at",
              postgresql_where=text("next_escalation_at IS NOT NULL")),
    )

    @property
    def scope_path(self) -> str:
        return self.cell_path
