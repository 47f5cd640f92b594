"""Export jobs: large exports asked for, run by the worker, fetched when ready (docs/STATS.md)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, SmallInteger, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.domain.export_jobs import FORMATS, KINDS, STATES
from server.extensions import db

from ._base import in_list, utcnow


class ExportJob(db.Model):
    """One export asked for by ``user_id``: what (kind, format, filters, lang), where it
    stands (state, rows done of rows total), and its file once done."""

    __tablename__ = "export_jobs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(8))
    lang: Mapped[str] = mapped_column(String(2))
    filters: Mapped[dict] = mapped_column(JSONB)  # the synchronous endpoint's query, as checked
    state: Mapped[str] = mapped_column(String(16), server_default="queued")
    attempt: Mapped[int] = mapped_column(SmallInteger, server_default="0")  # runs begun: a run's lease
    rows_done: Mapped[int] = mapped_column(Integer, server_default="0")
    rows_total: Mapped[int | None] = mapped_column(Integer)  # counted before the first row
    error_code: Mapped[str | None] = mapped_column(String(64))
    storage_key: Mapped[str | None] = mapped_column(String(200))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    progress_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the run's last sign of life
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(in_list("kind", KINDS), name="kind"),
        CheckConstraint(in_list("format", FORMATS), name="format"),
        CheckConstraint(in_list("lang", ("zh", "en")), name="lang"),
        CheckConstraint(in_list("state", STATES), name="state"),
        Index("ix_export_jobs_user", "user_id", "id"),
        Index("ix_export_jobs_queued", "id", postgresql_where=text("state = 'queued'")),
        Index("ix_export_jobs_running", "progress_at", postgresql_where=text("state = 'running'")),
        Index("ix_export_jobs_expiring", "expires_at", postgresql_where=text("state IN ('done', 'failed')")),
    )
