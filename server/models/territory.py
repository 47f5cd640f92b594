from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import CheckConstraint, Computed, DateTime, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.domain.territory import LEVELS
from server.extensions import db

from ._base import in_list, utcnow


class Region(db.Model):
    """A node of the territory tree: city, district, street, community or grid cell."""

    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    # ids from the root down to this region: "/1/5/77/"; subtree = LIKE '/1/5/%'
    path: Mapped[str] = mapped_column(String(512), server_default="/")
    # deferred: lists and chains rarely need the polygon; load it with undefer()
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False, deferred=True)
    # a point inside the polygon, kept by the database: where a map draws the region's cluster
    centre = mapped_column(Geometry("POINT", srid=4326, spatial_index=False),
                           Computed("ST_PointOnSurface(geom)", persisted=True), deferred=True)
    area_m2: Mapped[float] = mapped_column(Float)
    # attributes of the source feature, kept as imported (foreign ids, names…)
    properties: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    parent: Mapped[Region | None] = relationship(remote_side=[id])

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        CheckConstraint(in_list("level", LEVELS), name="level"),
        CheckConstraint("ST_IsValid(geom)", name="geom_valid"),
        Index("ix_regions_path", "path", postgresql_ops={"path": "text_pattern_ops"}),
        Index("ix_regions_geom", "geom", postgresql_using="gist"),
        # locate() looks only at live grid cells
        Index("ix_regions_live_grid_geom", "geom", postgresql_using="gist",
              postgresql_where=text("level = 'grid' AND retired_at IS NULL")),
        Index("ix_regions_level", "level"),
    )

    @property
    def scope_path(self) -> str:
        return self.path

    @property
    def is_retired(self) -> bool:
        return self.retired_at is not None
