"""Who takes new work in a grid cell (docs/FIELD.md, "Workload and duty").

One question, ``assignee_for``, so that the rule can grow (off duty, on leave, too many
open tasks) without its callers changing.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, select

from server.extensions import db
from server.models import GridAssignment, User


def assignee_for(cell_id: int, now: datetime) -> int | None:
    """The grid worker who takes new work in the cell ``cell_id`` at ``now``: its primary
    worker (A岗), else its first backup (B岗) by user id; None when no active worker covers it.
    ``now`` is unused for now: duty and leave will need it."""
    return db.session.scalar(
        select(GridAssignment.user_id).join(User, User.id == GridAssignment.user_id)
        .where(GridAssignment.region_id == cell_id, User.is_active, User.role == "grid_worker")
        .order_by(case((GridAssignment.duty == "primary", 0), else_=1), GridAssignment.user_id).limit(1))
