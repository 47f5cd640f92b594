"""The citizens' channel, Open311 GeoReport v2 (docs/OPEN311.md): client apps and their keys,
the requests they sent, the updates they posted, the per-minute usage of each key and of
each address reading without one."""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from server.extensions import db

from ._base import utcnow


class Open311Client(db.Model):
    """A client app allowed to post: its key is kept only as a SHA-256 and a prefix to name it by."""

    __tablename__ = "open311_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    contact: Mapped[str | None] = mapped_column(String(200))  # its maintainer's, for the operators
    key_prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    rate_per_minute: Mapped[int] = mapped_column(Integer, server_default="60")
    issued_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # none: by the command line
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint("rate_per_minute BETWEEN 1 AND 100000", name="rate"),)


class Open311Usage(db.Model):
    """How many keyed calls a client made in one minute: the rate limit, shared by every web process."""

    __tablename__ = "open311_usage"

    client_id: Mapped[int] = mapped_column(ForeignKey("open311_clients.id", ondelete="CASCADE"), primary_key=True)
    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, server_default="0")

    __table_args__ = (Index("ix_open311_usage_minute", "minute"),)


class Open311ReadUsage(db.Model):
    """How many reads without a key came from one address in one minute: the anonymous reads'
    rate limit, shared by every web process. UNLOGGED: a count lost in a crash costs nothing,
    and counting writes no WAL."""

    __tablename__ = "open311_read_usage"

    client_ip: Mapped[str] = mapped_column(String(64), primary_key=True)
    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, server_default="0")

    __table_args__ = (Index("ix_open311_read_usage_minute", "minute"), {"prefixes": ["UNLOGGED"]})


class Open311Request(db.Model):
    """One request a client posted. Located at once, it is an incident; sent with an address
    only, it waits here (the fields below kept) until an operator places it or dismisses it."""

    __tablename__ = "open311_requests"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("open311_clients.id"))
    token: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True, default=uuid.uuid4)
    # SHA-256 of the client and its normalised form: a retry within a day is answered once;
    # emptied when older, so the same form later is a new request
    request_hash: Mapped[str | None] = mapped_column(String(64))
    answer: Mapped[list] = mapped_column(JSONB)  # what the client was told, for its retries
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    incident_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("incidents.id"), unique=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"))
    media_url: Mapped[str | None] = mapped_column(String(2000))
    # while unlocated: what the incident will be made of (contact cleared when it is placed or dismissed)
    address_string: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    attributes: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    contact_name: Mapped[str | None] = mapped_column(String(100))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    placed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    placed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    dismissed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dismissed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    dismiss_reason: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        CheckConstraint("incident_id IS NOT NULL OR address_string IS NOT NULL", name="located_or_addressed"),
        CheckConstraint("char_length(description) <= 4000", name="description_length"),
        Index("uq_open311_requests_retry", "client_id", "request_hash", unique=True,
              postgresql_where=text("request_hash IS NOT NULL")),
        Index("ix_open311_requests_unlocated", "received_at",
              postgresql_where=text("incident_id IS NULL AND dismissed_at IS NULL")),
    )


class Open311Update(db.Model):
    """A citizen's update to a request, posted by a client (mySociety's extension): also a
    ``citizen_update`` event on the incident's timeline."""

    __tablename__ = "open311_updates"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("open311_clients.id"))
    update_id: Mapped[str] = mapped_column(String(100))  # the client's id for it: posting it again is the same update
    incident_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("incidents.id"))
    event_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("incident_events.id"))
    request_hash: Mapped[str] = mapped_column(String(64))
    answer: Mapped[list] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        Index("uq_open311_updates_client_update", "client_id", "update_id", unique=True),
        Index("ix_open311_updates_incident", "incident_id"),
    )

