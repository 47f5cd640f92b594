"""Pages of a SELECT: the items of one page and the total count."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select

from server.extensions import db


@dataclass
class Page:
    items: list
    total: int
    page: int
    page_size: int


def paginate(stmt: Select, page: int, page_size: int) -> Page:
    """Run ``stmt`` (already ordered) for one page; ``total`` counts every match."""
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    items = db.session.scalars(stmt.limit(page_size).offset((page - 1) * page_size)).unique().all()
    return Page(items=list(items), total=total, page=page, page_size=page_size)
