"""Builders for incident test data: categories, incidents and tasks written straight
through the ORM (no service rules), each committed; and ``settle()`` for sync tests."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta

from shapely.geometry import Point
from sqlalchemy import select, text

from geo.geometry import to_db
from server.extensions import db
from server.models import Category, Department, Incident, Region, Task, User
from server.models._base import utcnow


def make_category(code: str, parent: Category | None = None, **kw) -> Category:
    """A group (no ``parent``) or a leaf under ``parent``."""
    values = {"name": f"分类{code}", "name_en": f"Category {code}", "kind": "event"} | kw
    category = Category(code=code, parent_id=parent.id if parent else None, **values)
    db.session.add(category)
    db.session.commit()
    return category


def point_in(cell: Region, fx: float = 0.5, fy: float = 0.5) -> Point:
    """A point inside ``cell``'s bounding box (fractions of its width and height; cells
    built by tests.builders are boxes)."""
    minx, miny, maxx, maxy = _bounds(cell)
    return Point(minx + (maxx - minx) * fx, miny + (maxy - miny) * fy)


def _bounds(cell: Region) -> tuple[float, float, float, float]:
    row = db.session.execute(select(
        Region.geom.ST_XMin(), Region.geom.ST_YMin(), Region.geom.ST_XMax(), Region.geom.ST_YMax(),
    ).where(Region.id == cell.id)).one()
    return tuple(row)


def make_incident(category: Category, cell: Region, reporter: User | None, status: str = "reported",
                  level: str = "grid", *, at: Point | None = None, **kw) -> Incident:
    """An incident in ``cell`` (at its centre unless ``at``), reported now unless told."""
    now = utcnow()
    values = {
        "client_uuid": uuid.uuid4(), "description": f"问题 {category.code}", "priority": category.default_priority,
        "source": "phone", "occurred_at": now, "reported_at": now,
    } | kw
    incident = Incident(category_id=category.id, status=status, level=level, region_id=cell.id,
                        region_path=cell.path, geom=to_db(at or point_in(cell)),
                        reporter_id=reporter.id if reporter else None, **values)
    db.session.add(incident)
    db.session.commit()
    return incident


def make_task(incident: Incident, assignee: User | None = None, department: Department | None = None,
              status: str = "open", ack_deadline: datetime | None = None, **kw) -> Task:
    """A dispatch of ``incident`` to a worker or a department (exactly one of them)."""
    task = Task(incident_id=incident.id, assignee_id=assignee.id if assignee else None,
                department_id=department.id if department else None, status=status, level=incident.level,
                ack_deadline=ack_deadline or utcnow() + timedelta(hours=1), **kw)
    db.session.add(task)
    db.session.commit()
    return task


def settle(timeout: float = 20.0) -> None:
    """Wait until every transaction running now has finished (other sessions on the
    cluster hold xmin back; a phone would simply sync again later)."""
    db.session.commit()
    target = db.session.scalar(text("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::numeric"))
    deadline = time.monotonic() + timeout
    while db.session.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::numeric")) < target:
        db.session.commit()
        assert time.monotonic() < deadline, "a transaction elsewhere on the cluster stays open"
        time.sleep(0.05)
    db.session.commit()


def map_cases(tree) -> dict:
    """Open cases in G1 (one overdue, one on time), one due soon in G2, one closed in G2, one in G3
    (the other district), and one in G2 dispatched to the street's police station."""
    from tests.builders import standard_categories

    fight = standard_categories()["0702"]
    noise = standard_categories()["0701"]
    now = utcnow()
    late = dict(status="accepted", due_at=now - timedelta(hours=1), yellow_at=now - timedelta(hours=3))
    on_time = dict(status="accepted", due_at=now + timedelta(hours=5), yellow_at=now + timedelta(hours=4))
    soon = dict(status="accepted", due_at=now + timedelta(hours=1), yellow_at=now - timedelta(minutes=5))
    made = {
        "late": make_incident(fight, tree["G1"], tree["grid_worker"], at=point_in(tree["G1"], 0.3, 0.3), **late),
        "on_time": make_incident(noise, tree["G1"], tree["grid_worker"], at=point_in(tree["G1"], 0.6, 0.6),
                                 **on_time),
        "soon": make_incident(fight, tree["G2"], tree["grid_worker"], at=point_in(tree["G2"], 0.4, 0.5), **soon),
        "closed": make_incident(fight, tree["G2"], tree["grid_worker"], status="closed",
                                at=point_in(tree["G2"], 0.7, 0.2)),
        "elsewhere": make_incident(fight, tree["G3"], None, at=point_in(tree["G3"]), **late),
        "police": make_incident(noise, tree["G2"], None, at=point_in(tree["G2"], 0.2, 0.8), **on_time),
    }
    made["police"].status = "dispatched"
    make_task(made["police"], department=tree.department)
    return made
